"""One run directory as the site needs it: a small summary, cached by content so a rebuild re-reads only new runs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgx.errors import RunDirError

log = logging.getLogger("imgx")
CACHE_FORMAT = 1


@dataclass
class RunSummary:
    """What the site shows of one run: identity, where it ran, its verdict and its model metric values."""

    path: str
    suite: str
    commit: str
    commit_date: str
    started: str
    machine: str
    devices: list[str]
    verdict: str
    cases: int
    report: bool
    # (base case, metric, device, value, ci_low, ci_high): the model's rows, ok values only
    values: list[list[Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what this run directory lacks (an older imgx)


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories among ``paths``: each a run directory or a folder holding run directories (any depth)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise RunDirError(f"{p}: no such run directory or folder")
        if (p / "manifest.json").is_file() or (p / "cases").is_dir():
            out.append(p)
            continue
        found = sorted({m.parent for m in p.rglob("manifest.json")} | {c.parent for c in p.rglob("cases")
                                                                       if c.is_dir()})
        if not found:
            raise RunDirError(f"{p}: neither a run directory nor a folder of run directories")
        out += found
    return list(dict.fromkeys(x.resolve() for x in out))


def _fingerprint(run: Path) -> str:
    """Content key of a run's readable state: manifest bytes and each case record's name, size and mtime."""
    h = hashlib.sha256(str(run).encode())
    manifest = run / "manifest.json"
    if manifest.is_file():
        h.update(manifest.read_bytes())
    cases = run / "cases"
    if cases.is_dir():
        for f in sorted(cases.glob("*.json")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _commit_date(commit: str, suite_path: str | None) -> str:
    """The commit's date from the suite's repository (``git show``), '' when it cannot be read."""
    if not commit or not suite_path:
        return ""
    folder = Path(suite_path).parent
    if not folder.is_dir():
        return ""
    try:
        out = subprocess.run(["git", "-C", str(folder), "show", "-s", "--format=%cI", commit],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def machine_of(env: dict[str, Any]) -> str:
    """A machine's name for the site: CPU model and GPU (the fingerprint's parts that decide speed)."""
    parts = [str(env.get("cpu") or "unknown CPU")]
    if env.get("gpu"):
        parts.append(str(env["gpu"]))
    if env.get("hostname"):
        parts.insert(0, str(env["hostname"]))
    return " · ".join(parts)


def summarize(run: Path) -> RunSummary:
    """Read a run directory (manifest and ledger only) into a :class:`RunSummary`."""
    from imgx.results import load_run

    manifest, records = load_run(run)
    env = manifest.get("environment") or {}
    missing = [name for name, ok in (("manifest.json", bool(manifest)), ("a git commit", bool(
        manifest.get("suite_git_commit") or manifest.get("git_commit"))), ("an environment fingerprint", bool(env)))
        if not ok]
    commit = manifest.get("suite_git_commit") or manifest.get("git_commit") or ""
    failed = any(r.get("status") == "failed" for r in records) or any(
        g.get("passed") is False for r in records for g in r.get("gates") or [])
    values = []
    for r in records:
        for row in r.get("rows") or []:
            if row.get("reference") or row.get("status") != "ok" or row.get("value") is None:
                continue
            values.append([r.get("base_id") or r["case_id"], row["metric"], r.get("device") or "",
                           row["value"], row.get("ci_low"), row.get("ci_high"), r["case_id"]])
    return RunSummary(
        path=str(run), suite=manifest.get("suite") or (records[0].get("suite") if records else run.name),
        commit=commit, commit_date=_commit_date(commit, manifest.get("suite_path")),
        started=manifest.get("started") or "", machine=machine_of(env) if env else "unknown machine",
        devices=sorted({str(r.get("device") or "") for r in records}), verdict="fail" if failed else "pass",
        cases=len(records), report=(run / "report.html").is_file(), values=values, missing=missing)


def load_summaries(runs: list[Path], cache: Path) -> tuple[list[RunSummary], int]:
    """Summaries of ``runs``, read from ``cache`` when the run is unchanged; returns them and how many were read."""
    cache.mkdir(parents=True, exist_ok=True)
    out, read = [], 0
    for run in runs:
        key = cache / f"{_fingerprint(run)}.json"
        if key.is_file():
            try:
                data = json.loads(key.read_text(encoding="utf-8"))
                if data.pop("_format", None) == CACHE_FORMAT:
                    out.append(RunSummary(**data))
                    continue
            except (OSError, ValueError, TypeError):
                pass
        summary = summarize(run)
        read += 1
        tmp = key.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"_format": CACHE_FORMAT, **asdict(summary)}), encoding="utf-8")
        os.replace(tmp, key)
        out.append(summary)
    return out, read
