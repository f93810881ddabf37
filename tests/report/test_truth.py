"""The report tells the truth at the top (issue 25): headline flags, gates named, sweeps and shared models once,
staged curves, FID/KID comparability, and no plot that has nothing to say."""

from __future__ import annotations

from imgx.report.headline import headline_metric, headline_tables, summary_lines
from imgx.report.panels import fold_shared_training, fold_sweeps, metrics_table
from imgx.report.sections import pareto_blocks, tradeoff_block
from tests.report.fixtures import record, row


def _colorizer(ssim: float, gates: list | None = None):
    return record("colorizer", "colorize", 0, rows=[
        row("psnr", 20.0, ci=0.2), row("psnr", 16.9, "gray-copy"), row("ssim", ssim, ci=0.01),
        row("ssim", 0.84, "gray-copy")], gates=gates or [])


def test_a_model_that_loses_to_a_trivial_reference_is_flagged_at_the_top():
    gate = [{"metric": "psnr", "op": ">=", "bound": 18.5, "value": 20.0, "passed": True}]
    losing = _colorizer(0.77, gate)
    (head,) = headline_tables([losing])
    assert head.flagged == ["colorizer"]
    (cells,) = head.table.rows
    text = [c.text for c in cells]
    assert text[1] == "psnr" and text[5] == "gray-copy"  # the gated metric is the headline
    assert text[7] == "+3.1"  # 20.0 - 16.9
    assert "ssim 0.77 vs gray-copy 0.84" in text[8] and cells[8].css.split()[0] == "bad"
    lines = summary_lines([head], [losing])
    # it beats gray-copy on its headline metric (psnr), so the summary says where it loses instead
    assert lines[0] == ("bad", "1 case beats its trivial reference on the headline metric but loses on another "
                               "metric: colorizer.")
    assert head.losing == []
    # a model that beats every floor is not flagged
    (head,) = headline_tables([_colorizer(0.90)])
    assert head.flagged == [] and head.table.rows[0][8].text == "beats gray-copy"


def test_summary_names_the_gates_and_the_cases_without_one():
    gated = _colorizer(0.9, [{"metric": "ssim", "op": ">=", "bound": 0.8, "value": 0.9, "passed": True}])
    other = record("gan", "generate", 1, rows=[row("fid", 20.0), row("fid", 300.0, "untrained")])
    lines = summary_lines(headline_tables([gated, other]), [gated, other])
    assert lines == [("", "1 gate (ssim) in 1 case; no gate in gan: only an error fails it.")]
    lines = summary_lines(headline_tables([other]), [other])
    assert lines[0][0] == "warn" and "No gates" in lines[0][1]


def test_headline_prefers_the_task_metric_and_counts_per_instruction_losses():
    rows = [row("target_mse", 0.09), row("target_mse", 0.08, "identity"), row("input_ssim", 0.2)]
    for name in ("a", "b", "c"):
        rows += [row(f"target_mse[{name}]", 0.05), row(f"target_mse[{name}]", 0.03 if name != "c" else 0.06,
                                                            "identity")]
    rec = record("edit", "edit", 0, rows=rows)
    assert headline_metric(rec) == "target_mse"
    (head,) = headline_tables([rec])
    verdict = head.table.rows[0][8].text
    assert verdict.startswith("does not beat identity") and "target_mse on 2 of 3 instructions" in verdict


def test_not_comparable_fid_and_kid_scale_are_marked_next_to_the_value():
    detail = "extractor=digits-classifier dim=64 weights=sha256:00"
    rec = record("gan", "generate", 0, rows=[row("fid", 40.0, detail=detail, n=32), row("kid", 0.5, detail=detail,
                                                                                          n=500)])
    table = metrics_table(rec, {"digits-classifier"})
    fid, kid = table.rows
    assert fid[2].text.endswith("not comparable") and "32 samples < 64 feature dimensions" in fid[2].title
    assert "not comparable" not in kid[2].text and "KID scale" in kid[-1].text
    table = metrics_table(rec, {"digits-classifier", "inception-v3"})  # another extractor on the same page
    assert "inception-v3" in table.rows[1][2].title


def test_staged_history_is_drawn_per_stage():
    from imgx.report.panels import _history_parts

    history = [{"epoch": 1, "stage": "vae", "loss": 0.5}, {"epoch": 2, "stage": "vae", "loss": 0.3},
               {"epoch": 1, "stage": "denoiser", "loss": 0.9}, {"epoch": 2, "stage": "denoiser", "loss": 0.7}]
    svg, table = _history_parts(history, "edit")
    assert svg.count("<svg") == 2 and "stage vae" in svg and "stage denoiser" in svg
    assert len(table.rows) == 4


def _sweep(n: int = 3):
    history = [{"epoch": 1, "loss": 0.5}]
    recs = [record(f"edit[ig={ig}]", "edit", i, params={"ig": ig}, history=history,
                   info={"trained": {"folder": "/cache/x"}, "ig": ig},
                   rows=[row("target_mse", 0.05 + i / 100), row("target_mse", 0.065, "identity")])
            for i, ig in enumerate((1.0, 1.5, 2.0)[:n])]
    return recs


def test_a_trained_model_and_a_sweep_are_shown_once(tmp_path):
    from imgx.report.grids import ImageEmbedder
    from imgx.report.panels import case_panel

    recs = _sweep()
    pairs = [(case_panel(r, ImageEmbedder(tmp_path), i), r) for i, r in enumerate(recs)]
    fold_shared_training(pairs)
    (first, _), *rest = pairs
    assert first.history is not None and first.info is not None
    for panel, _ in rest:
        assert panel.history is None and panel.history_svg is None and panel.shared_with == first.case_id
        assert [c.text for row in panel.info.rows for c in row][:1] == ["ig"]  # only what differs
    (table,) = fold_sweeps(pairs)
    assert all(p.metrics is None and p.sweep_table == table.id for p, _ in pairs)
    assert table.columns == ["metric", "better", "identity", "ig=1", "ig=1.5", "ig=2"]
    (values,) = table.rows
    assert [c.css for c in values[3:]] == ["", "", "bad"]  # 0.07 does not beat identity's 0.065


def test_pareto_uses_a_quality_where_higher_is_a_better_edit_and_no_one_point_plot():
    recs = _sweep()
    for r in recs:
        r["rows"] += [row("latency_ms_p50", 100.0 + r["index"]), row("input_ssim", 0.9), row("ssim", 0.9)]
    (block,) = pareto_blocks(recs)
    assert "target_mse" in block.title or "target_mse" in block.table.columns
    assert "input_ssim" not in block.table.columns and "ssim" not in block.table.columns
    assert pareto_blocks(recs[:1]) == []  # one point: no plot, no heading
    one = recs[:1]
    one[0]["rows"] += [row("clip_directional_similarity", 0.2), row("clip_image_similarity", 0.8)]
    assert tradeoff_block(one) is None


def test_headline_marks_a_fid_that_is_not_comparable():
    detail = "extractor=digits-classifier dim=64 weights=sha256:00"
    rec = record("gan", "generate", 0, rows=[row("fid", 40.0, detail=detail, n=32),
                                             row("fid", 300.0, "untrained", detail=detail, n=32)])
    (head,) = headline_tables([rec])
    value = head.table.rows[0][3]
    assert value.text == "40 · not comparable" and "32 samples < 64 feature dimensions" in value.title
