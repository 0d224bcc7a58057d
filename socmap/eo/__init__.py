"""socmap.eo."""
