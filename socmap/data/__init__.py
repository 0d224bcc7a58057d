"""socmap.data."""
