"""socmap.mapping."""
