"""The report package imports in one direction: model -> builders -> pages; compare never imports the report."""

from __future__ import annotations

import ast
from pathlib import Path

import imgx

PACKAGE = Path(imgx.__file__).parent
# Lower layers never import higher ones (issue 25 part 4): a site reuses the model and builders unchanged.
LAYERS = {
    "tables": 0, "plots": 0, "grids": 0, "render": 1,
    "model": 1,
    "panels": 2, "sections": 2, "headline": 2, "compare_report": 2, "summary": 3,
    "html": 4,
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_compare_does_not_import_the_report():
    assert not {n for n in _imports(PACKAGE / "compare.py") if n.startswith("imgx.report")}


def test_report_modules_import_only_lower_layers():
    for path in sorted((PACKAGE / "report").glob("*.py")):
        if path.stem == "__init__":
            continue
        assert path.stem in LAYERS, f"{path.name}: place it in a layer of this test"
        for name in _imports(path):
            parts = name.split(".")
            if parts[:2] == ["imgx", "report"] and len(parts) > 2 and parts[2] in LAYERS:
                assert LAYERS[parts[2]] < LAYERS[path.stem], f"{path.name} imports {name}: against the layers"


def test_the_site_reuses_the_report_and_the_report_never_imports_the_site():
    site = {n for path in (PACKAGE / "site").glob("*.py") for n in _imports(path)}
    assert {"imgx.report.render", "imgx.report.tables", "imgx.report.plots"} <= site
    for path in (PACKAGE / "report").glob("*.py"):
        assert not {n for n in _imports(path) if n.startswith("imgx.site")}, path.name
