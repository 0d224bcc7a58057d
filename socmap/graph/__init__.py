"""socmap.graph."""
