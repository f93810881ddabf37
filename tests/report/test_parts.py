"""The report's parts against independent computations: Pareto fronts, guidance grids, tables, plots."""

from __future__ import annotations

import csv
import io
import itertools
import re

import numpy as np
import pytest

from imgx.report import plots
from imgx.report.grids import ImageEmbedder, artifact_galleries, guidance_grids
from imgx.report.tables import Table, fmt_value


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.integers(0, 12, size=(25, 2)).astype(float)  # ties on purpose
        pts = [plots.Point(x, y) for x, y in xy]
        front = plots.pareto_front(pts)
        dominated = {i for i, p in enumerate(pts) for q in pts
                     if q.x <= p.x and q.y >= p.y and (q.x < p.x or q.y > p.y)}
        expected = {(p.x, p.y) for i, p in enumerate(pts) if i not in dominated}
        assert {(p.x, p.y) for p in front} == expected
        assert [p.x for p in front] == sorted(p.x for p in front)


def test_pareto_front_lower_is_better_quality():
    pts = [plots.Point(1, 5), plots.Point(2, 3), plots.Point(3, 4)]
    assert [(p.x, p.y) for p in plots.pareto_front(pts, maximize_y=False)] == [(1, 5), (2, 3)]


def test_guidance_grids_put_each_output_in_its_cell(tmp_path):
    from imgx.imageio import save_png

    out = tmp_path
    outputs = []
    for inp, prompt, ig, g in itertools.product(["a.png", "b.png"], ["p1", "<p2>"], [1.0, 1.5], [5.0, 7.5, 10.0]):
        name = f"{inp[0]}_{prompt.strip('<>')}_{ig}_{g}.png"
        save_png(np.full((4, 4, 3), int(g * 10), np.uint8), out / "images", name)
        outputs.append({"case_id": f"c{ig}{g}", "image_guidance_scale": str(ig), "guidance_scale": str(g),
                        "scheduler": "ddim", "prompt": prompt, "seed": "1143681234", "input_path": inp,
                        "path": f"images/{name}"})
    grids, left = guidance_grids(outputs, ImageEmbedder(out), random_cases={"c1.05.0"})
    assert left == 0
    assert len(grids) == 4
    for gg in grids:
        assert gg.row_values == ["1", "1.5"]
        assert gg.col_values == ["5", "7.5", "10"]
        assert len(gg.cells) == 6
        assert all(e.ok for e in gg.cells.values())
        assert gg.fixed == {"scheduler": "ddim", "seed": "1143681234"}  # seeds exact, no exponent
        assert gg.random_weights
        # cells hold the image for their own guidance pair (content encodes g)
        assert gg.cells[("1", "10")].uri != gg.cells[("1", "5")].uri
    few, left = guidance_grids(outputs, ImageEmbedder(out), set(), budget=7)
    assert len(few) == 1
    assert left == 18


def test_artifact_galleries_shapes(tmp_path):
    from imgx.imageio import save_png

    for n in ("g.png", "e1.png", "e2.png"):
        save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "images", n)
    art = {"grid": "images/g.png", "grid_rows": ["in", "out"], "fixed_noise": ["images/e1.png", "images/e2.png"],
           "triplet": {"gray": "images/g.png", "gone": "images/zz.png"}, "note": "not an image", "n": 3}
    gals = {g.title: g for g in artifact_galleries(art, ImageEmbedder(tmp_path), epochs=[5, 10])}
    assert set(gals) == {"grid", "fixed noise", "triplet"}
    assert gals["grid"].row_labels == ["in", "out"]
    assert [f.caption for f in gals["fixed noise"].figures] == ["epoch 5", "epoch 10"]
    assert [f.image.ok for f in gals["triplet"].figures] == [True, False]


def test_long_lists_and_the_byte_budget(tmp_path):
    from imgx.imageio import save_png

    paths = []
    for i in range(40):
        save_png(np.full((4, 4, 3), i, np.uint8), tmp_path / "images", f"e{i}.png")
        paths.append(f"images/e{i}.png")
    (g,) = artifact_galleries({"epochs": paths}, ImageEmbedder(tmp_path), epochs=list(range(1, 41)))
    captions = [f.caption for f in g.figures]
    assert len(captions) == 24
    assert captions[0] == "epoch 1"
    assert captions[-1] == "epoch 40"
    emb = ImageEmbedder(tmp_path, byte_budget=1)
    assert emb.embed(paths[0]).ok  # the first image passes, then the budget is spent
    later = emb.embed(paths[1])
    assert not later.ok
    assert "budget" in later.note
    assert emb.over_budget == 1


def test_images_are_downscaled_and_compressed(tmp_path):
    from imgx.imageio import save_png

    rng = np.random.default_rng(1)
    save_png(rng.integers(0, 255, (1200, 600, 3), dtype=np.uint8), tmp_path / "images", "big.png")
    e = ImageEmbedder(tmp_path).embed("images/big.png", max_side=300)
    assert (e.width, e.height) == (150, 300)
    assert e.ok
    assert not e.pixelated
    assert len(e.uri) < (tmp_path / "images/big.png").stat().st_size / 10


def test_table_values_sort_and_download_exactly():
    t = Table("t", ["name", "value"], filename="t.csv")
    t.add(['a "quoted", name\nwith newline', 0.123456789])
    t.add(["b", None])
    t.add(["c", 12])
    assert t.rows[0][1].text == "0.1235"
    assert t.rows[0][1].sort == repr(0.123456789)
    assert t.numeric == {1}
    back = list(csv.reader(io.StringIO(t.csv_text)))
    assert back == [["name", "value"], ['a "quoted", name\nwith newline', "0.123456789"], ["b", ""], ["c", "12"]]
    assert t.csv_uri.startswith("data:text/csv;charset=utf-8,")
    assert "\n" not in t.csv_uri
    assert '"' not in t.csv_uri


@pytest.mark.parametrize(("value", "text"), [(None, ""), (True, "true"), (3, "3"), (0.5, "0.5"), (1234.5678, "1235"),
                                             (1e-5, "1.000e-05"), (2.5e7, "2.500e+07"), ("0.123456", "0.1235"),
                                             ("ddim", "ddim"), (float("nan"), "nan")])
def test_fmt_value(value, text):
    assert fmt_value(value) == text


def test_plots_are_unique_escaped_svg():
    a = plots.scatter_plot([plots.Point(1, 2, "<script>$x$</script>", "g&1")], "x", "y")
    b = plots.scatter_plot([plots.Point(1, 2, "<script>$x$</script>", "g&1")], "x", "y")
    assert a.startswith("<svg")
    assert 'class="plot"' in a
    assert "<script>" not in a
    assert "&lt;script&gt;" in a
    assert "g&amp;1" in a
    ids = lambda s: set(re.findall(r'id="([^"]+)"', s))  # noqa: E731
    assert ids(a)
    assert not (ids(a) & ids(b))


def test_cpu_vs_cuda_speed_up_by_dtype():
    from imgx.report.sections import device_block
    from tests.report.fixtures import record, row

    recs = []
    for i, (device, dtype, p50) in enumerate([("cpu", "float32", 1000.0), ("cuda", "float16", 50.0),
                                              ("cuda", "float32", 200.0)]):
        for steps in (10, 20):
            params = {"device": device, "dtype": dtype, "num_inference_steps": steps}
            recs.append(record(f"edit[{device},{dtype},{steps}]", "edit", i, device=device, dtype=dtype,
                               params=params, rows=[row("latency_ms_p50", p50 * steps / 10, unit="ms"),
                                                    row("latency_ms_p90", p50 * steps / 5, unit="ms")]))
    block = device_block(recs)
    speed = {(r[1].text, r[2].text): r[6].text for r in block.table.rows}
    assert speed == {("cpu", "float32"): "", ("cuda", "float16"): "20.0x", ("cuda", "float32"): "5.0x"}
    assert "20.0x" in str(block.svg)  # the bar label is the median speed-up of that device and dtype
    assert device_block([r for r in recs if r["device"] == "cpu"]) is None  # one device: nothing to compare
