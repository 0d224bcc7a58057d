"""socmap.demo."""
