"""The templates: Jinja2 with autoescape on, shared by every page (run report, comparison, site)."""

from __future__ import annotations

from typing import Any

from imgx.report.tables import fmt_value


def _env():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("imgx.report", "templates"),
                      autoescape=select_autoescape(["html", "j2", "htm"], default_for_string=True, default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt_value
    return env


def render(template: str, **context: Any) -> str:
    """Render one of the package templates with autoescape on."""
    return _env().get_template(template).render(**context)
