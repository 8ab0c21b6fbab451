"""A tiny sentiment scorer shipped as a handler image (examples/sentiment-image)."""
