"""imgx: a benchmark and evaluation harness for image-to-image models."""

from imgx.scoring import score

__version__ = "0.1.0"
__all__ = ["score"]
