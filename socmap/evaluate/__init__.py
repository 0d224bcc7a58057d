"""socmap.evaluate."""
