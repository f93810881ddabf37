"""pytester for the plugin tests, and tiny suite texts.

``pytest_plugins = ["pytester"]`` is only allowed in the top-level conftest; loading it here, when this
conftest registers, works whether or not the top-level conftest already did.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


TINY_CASE = """
  - id: {id}
    task: colorize
    model: {{name: encoder-decoder}}
    data: {{name: photos, image_size: 16, train: 128, test: 32}}
    train: {{epochs: 1, batch_size: 32}}
    metrics: [mse, psnr, ssim]
    gates: {gates}
"""


def suite_text(*cases: str, name: str = "tiny") -> str:
    """A suite with the given case blocks."""
    return f"suite: {name}\nseed: 0\ncases:\n" + "".join(cases)


def tiny_case(case_id: str, gates: str = "{}", extra: str = "") -> str:
    """One fast colorize case (about a second on CPU); ``extra`` adds indented YAML lines."""
    return TINY_CASE.format(id=case_id, gates=gates) + "".join(f"    {line}\n" for line in extra.splitlines() if line)


@pytest.fixture(scope="session", autouse=True)
def _warm_imports(tmp_path_factory):
    """Run one tiny case in this process first.

    In-process pytester runs restore ``sys.modules`` after each test; modules first imported inside an
    inner run (torch, scikit-image...) would be dropped and re-imported, which C extensions do not survive.
    """
    from imgx.runner import run_suite

    folder = tmp_path_factory.mktemp("warm")
    suite = folder / "warm.yaml"
    suite.write_text(suite_text(tiny_case("warm", extra="metrics: [mse, psnr, ssim, latency]")), encoding="utf-8")
    run_suite(suite, folder / "run", quiet=True, report=True, argv=["warm"])
