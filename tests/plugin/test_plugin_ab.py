"""``--imgx-ab BASE_REF``: the plugin runs ``imgx ab`` for the selected cases and fails the slower one."""

from __future__ import annotations

from tests.test_ab import make_repo


def test_pytest_plugin_imgx_ab_fails_the_slower_case(pytester):
    make_repo(pytester.path)  # the working tree is v2: twice the work of v1
    result = pytester.runpytest("suite.yaml", "--imgx-ab", "v1", "--imgx-out", "out")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*latency_ms_p50*", "*regression: colorizer: regression: slower past the tolerance*"])
    assert (pytester.path / "out" / "summary.md").is_file()
