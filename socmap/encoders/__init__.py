"""socmap.encoders."""
