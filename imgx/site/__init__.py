"""``imgx site``: many run directories, one static site (index, trends across commits, hardware matrix).

It reads run directories only (manifest and case records, never images) and reuses the run report's parts:
tables, plots, templates and style from :mod:`imgx.report`.
"""

from __future__ import annotations

from imgx.site.build import build_site

__all__ = ["build_site"]
