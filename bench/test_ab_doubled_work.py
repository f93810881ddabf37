"""``imgx ab`` measures a doubled workload as about 2x slower: a timing claim, so it lives here, not in the tests.

The repository is the one ``tests/test_ab.py`` builds: a user's colorizer whose second commit runs its convolution
stack twice. Both trees are timed interleaved in worker processes on this machine (8 rounds of 3 calls); the issue's
goal is a regression verdict with a ratio near 2 and a bootstrap CI that excludes 1. The deterministic half (FLOPs
exactly doubled, same outputs, the worktree removed) is checked in the fast tier.
"""

from __future__ import annotations

from tests.test_ab import make_repo, rows_of, run_cli


def test_doubled_work_is_about_twice_as_slow_with_a_ci_excluding_1(tmp_path):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "ab"
    proc = run_cli(repo, "v1", "v2", "suite.yaml", "--rounds", "8", "--calls", "3", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lat = rows_of(out)["latency_ms_p50"]
    spread = lat["candidate_spread"]
    print(f"\nimgx ab, doubled work: ratio {spread['ratio']:.3f} (CI {spread['ratio_ci_low']:.3f}-"
          f"{spread.get('ratio_ci_high', float('nan')):.3f})")
    assert lat["verdict"] == "regression"
    assert 1.5 < spread["ratio"] < 2.8 and spread["ratio_ci_low"] > 1.0, spread
    assert "imgx ab: ❌ 1 slower" in (out / "summary.md").read_text()
