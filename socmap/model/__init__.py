"""socmap.model."""
