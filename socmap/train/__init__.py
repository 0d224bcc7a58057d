"""socmap.train."""
