"""Suite files: load and validate YAML (``load``), expand sweeps into cases (``expand``)."""

from imgx.suite.expand import Case, expand
from imgx.suite.load import load_suite

__all__ = ["Case", "expand", "load_suite"]
