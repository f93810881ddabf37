"""Superseded ledger records: a resume after a config change keeps the old record on disk but never reads it."""

import csv
import json

from imgx.compare import baseline_data
from imgx.report import write_report
from imgx.results import load_run
from imgx.runner import run_suite
from tests.helpers import write_suite

TWO_CASES = """
suite: tiny
seed: 0
cases:
  - id: colorizer
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 8, train: 64, test: 16}
    train: {epochs: EPOCHS, batch_size: 32, lr: 1.0e-3}
    metrics: [mse]
  - id: other
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 8, train: 64, test: 16}
    train: {epochs: 1, batch_size: 32, lr: 1.0e-3}
    metrics: [mse]
"""


def _suite(tmp_path, epochs: int, text: str = TWO_CASES):
    return write_suite(tmp_path, text.replace("EPOCHS", str(epochs)))


def _mse(records, case_id):
    (rec,) = [r for r in records if r["case_id"] == case_id]
    return next(row["value"] for row in rec["rows"] if row["metric"] == "mse" and not row["reference"])


def test_a_changed_case_supersedes_its_old_record(tmp_path, caplog):
    out = tmp_path / "run"
    first = run_suite(_suite(tmp_path, 1), out, quiet=True, report=False)
    old_key = next(r["key"] for r in first.records if r["case_id"] == "colorizer")
    second = run_suite(_suite(tmp_path, 3), out, quiet=True, report=False)
    assert (second.ran, second.reused) == (1, 1)
    new = next(r for r in second.records if r["case_id"] == "colorizer")
    assert (out / "cases" / f"{old_key}.json").is_file()  # kept on disk

    manifest, records = load_run(out)
    assert sorted(r["case_id"] for r in records) == ["colorizer", "other"]  # one record per case
    assert next(r for r in records if r["case_id"] == "colorizer")["key"] == new["key"]
    assert manifest["superseded"] == [{"case_id": "colorizer", "key": old_key, "file": f"cases/{old_key}.json"}]
    assert json.loads((out / "manifest.json").read_text())["superseded"] == manifest["superseded"]
    assert f"colorizer ({old_key})" in caplog.text  # the console names it once
    with open(out / "results.csv", newline="") as fh:
        assert sum(r["case_id"] == "colorizer" and r["metric"] == "mse" and not r["reference"]
                   for r in csv.DictReader(fh)) == 1
    baseline = baseline_data(out)  # baselines read only the current record
    (mse,) = [m["value"] for m in baseline["cases"]["colorizer"]["metrics"] if m["metric"] == "mse"
              and not m["reference"]]
    assert mse == _mse([new], "colorizer")
    write_report(out)
    assert "1 superseded record kept in <code>cases/</code> but not read" in (out / "report.html").read_text()


def test_a_filtered_resume_keeps_the_unselected_current_records(tmp_path):
    out = tmp_path / "run"
    run_suite(_suite(tmp_path, 1), out, quiet=True, report=False)
    again = run_suite(_suite(tmp_path, 1), out, filters=["other"], quiet=True, report=False)
    assert (again.ran, again.reused) == (0, 1)
    manifest, records = load_run(out)
    assert sorted(r["case_id"] for r in records) == ["colorizer", "other"] and manifest["superseded"] == []


def test_a_case_that_left_the_suite_is_superseded(tmp_path):
    out = tmp_path / "run"
    run_suite(_suite(tmp_path, 1), out, quiet=True, report=False)
    only_other = TWO_CASES[:TWO_CASES.index("  - id: colorizer")] + TWO_CASES[TWO_CASES.index("  - id: other"):]
    run_suite(_suite(tmp_path, 1, only_other), out, quiet=True, report=False)
    manifest, records = load_run(out)
    assert [r["case_id"] for r in records] == ["other"]
    assert [s["case_id"] for s in manifest["superseded"]] == ["colorizer"]


def test_an_old_run_directory_without_case_keys_reads_the_newest_record_of_each_case(tmp_path):
    out = tmp_path / "run"
    run_suite(_suite(tmp_path, 1), out, quiet=True, report=False)
    second = run_suite(_suite(tmp_path, 3), out, quiet=True, report=False)
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("case_keys", "superseded"):
        del manifest[key]
    (out / "manifest.json").write_text(json.dumps(manifest))
    manifest, records = load_run(out)
    assert sorted(r["key"] for r in records) == sorted(r["key"] for r in second.records)
    assert [s["case_id"] for s in manifest["superseded"]] == ["colorizer"]
