"""imgx: a benchmark and evaluation harness for image-to-image models."""

__version__ = "0.1.0"
