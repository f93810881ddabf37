"""Images made elsewhere: ``imgx score``, ``task: score`` and ``imgx.score`` on real folders of images.

Pixel metrics are checked against scikit-image computed independently on the files; FID against the
real-split floor on digits drawn from one distribution; bad folders against exit code 2 and one-line messages.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imgx
from imgx.cli import main
from imgx.errors import ImgxError
from tests.helpers import write_suite

N = 12
SIZE = 24
NOISE = 12.0  # std of the known noise added to the targets, in uint8 levels


def _save(folder: Path, arrays, suffix: str = ".png", start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays, start=start):
        Image.fromarray(a).save(folder / f"img{i:03d}{suffix}")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``truth/`` smooth random images, ``out/`` truth + known Gaussian noise, ``inp/`` their negatives (JPEG-free)."""
    root = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(N, 6, 6, 3), dtype=np.uint8)
    truth = np.stack([np.asarray(Image.fromarray(c).resize((SIZE, SIZE), Image.Resampling.BICUBIC)) for c in coarse])
    out = np.clip(truth + rng.normal(0, NOISE, truth.shape).round(), 0, 255).astype(np.uint8)
    inp = 255 - truth
    return {"truth": _save(root / "truth", truth), "out": _save(root / "out", out), "inp": _save(root / "inp", inp),
            "arrays": {"truth": truth, "out": out, "inp": inp}, "root": root}


def _rows(run: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(run / "results.csv", newline="") as fh:
        return {(r["metric"], r["reference"]): r for r in csv.DictReader(fh)}


def _skimage(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean over images of scikit-image's MSE (on [0,1]), PSNR and SSIM (Gaussian, data range 255)."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    return {"mse": float(np.mean([mean_squared_error(x / 255.0, y / 255.0) for x, y in zip(a, b, strict=True)])),
            "psnr": float(np.mean([peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b, strict=True)])),
            "ssim": float(np.mean([structural_similarity(x, y, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                                         use_sample_covariance=False, data_range=255)
                                   for x, y in zip(a, b, strict=True)]))}


def test_cli_pixel_metrics_equal_skimage_and_write_a_run_directory(folders, tmp_path):
    run = tmp_path / "run"
    code = main(["score", str(folders["out"]), "--target", str(folders["truth"]), "--input", str(folders["inp"]),
                 "--metrics", "mse,psnr", "ssim", "input_ssim", "--out", str(run), "-q"])
    assert code == 0
    rows = _rows(run)
    arrays = folders["arrays"]
    model, identity = _skimage(arrays["truth"], arrays["out"]), _skimage(arrays["truth"], arrays["inp"])
    for metric in ("mse", "psnr", "ssim"):
        assert float(rows[metric, ""]["value"]) == pytest.approx(model[metric], rel=1e-9, abs=1e-12)
        assert float(rows[metric, "identity"]["value"]) == pytest.approx(identity[metric], rel=1e-9, abs=1e-12)
        assert rows[metric, ""]["n"] == str(N) and rows[metric, ""]["task"] == "score"
    # The known noise: MSE on [0,1] near (12/255)^2 (a little less where clipping at 0/255 cut it).
    assert float(rows["mse", ""]["value"]) == pytest.approx((NOISE / 255) ** 2, rel=0.15)
    assert float(rows["input_ssim", ""]["value"]) == pytest.approx(_skimage(arrays["inp"], arrays["out"])["ssim"])
    # outputs.csv: one row per scored file, where it is, with its own values.
    with open(run / "outputs.csv", newline="") as fh:
        per_image = list(csv.DictReader(fh))
    assert [Path(r["path"]) for r in per_image] == sorted(folders["out"].iterdir())
    assert Path(per_image[3]["target_path"]) == folders["truth"] / "img003.png"
    assert float(per_image[3]["mse"]) == pytest.approx(_skimage(arrays["truth"][3:4], arrays["out"][3:4])["mse"])
    # A normal run directory, and the suite it ran, which `imgx run` reproduces.
    assert {"manifest.json", "results.csv", "report.html", "score.yaml", "cases"} <= {p.name for p in run.iterdir()}
    (record,) = [json.loads(p.read_text()) for p in (run / "cases").glob("*.json")]
    assert record["status"] == "ok" and record["task"] == "score"
    assert main(["run", str(run / "score.yaml"), "--out", str(tmp_path / "again"), "-q", "--no-report"]) == 0
    assert _rows(tmp_path / "again")["psnr", ""]["value"] == rows["psnr", ""]["value"]


def test_python_function_gives_the_cli_numbers_from_folders_and_arrays(folders, tmp_path):
    assert main(["score", str(folders["out"]), "--target", str(folders["truth"]), "--out", str(tmp_path / "cli"),
                 "-q", "--no-report"]) == 0
    cli = _rows(tmp_path / "cli")
    from_folders = imgx.score(folders["out"], target=folders["truth"], metrics=["mse", "psnr", "ssim"])
    arrays = folders["arrays"]
    from_arrays = imgx.score(arrays["out"], target=arrays["truth"].astype(np.float32) / 255.0,
                             metrics=["mse", "psnr", "ssim"], out=tmp_path / "api")
    assert list(from_folders.columns[:15]) == ["case_id", "suite", "task", "model", "metric", "value", "unit",
                                               "reference", "n", "ci_low", "ci_high", "status", "detail", "device",
                                               "dtype"]
    for metric in ("mse", "psnr", "ssim"):
        assert from_folders[metric] == float(cli[metric, ""]["value"])
        assert from_arrays[metric] == pytest.approx(float(cli[metric, ""]["value"]), rel=1e-12)
    assert from_arrays.attrs["run_dir"] == str(tmp_path / "api") and (tmp_path / "api" / "report.html").exists()
    assert "score" in imgx.__all__
    with pytest.raises(KeyError, match="neither a column nor a metric"):
        from_folders["fid"]


@pytest.mark.parametrize(("setup", "args", "expected"), [
    ("unmatched", ["--target", "{truth}"], "--target: 1 output(s) have no namesake in the target folder * extra"),
    ("missing", ["--target", "{root}/nowhere"], "--target: */nowhere: no such folder"),
    ("text", ["--target", "{truth}"], "OUTPUTS: * 1 file(s) are not images * notes.txt*"),
    ("ambiguous", ["--target", "{truth}"], "OUTPUTS: * match more than one file * img000.jpg / img000.png*"),
    ("copy", ["--metrics", "fid"], "--metrics: 'fid' needs a reference folder*"),
    ("inside", ["--target", "{truth}", "--out", "{root}/out/run"], "--out */out/run: inside the path folder *"),
])
def test_bad_folders_are_exit_2_with_one_line_each(folders, tmp_path, capsys, setup, args, expected):
    import fnmatch
    import shutil

    out = tmp_path / "out"
    shutil.copytree(folders["out"], out)
    if setup == "unmatched":
        (out / "img000.png").rename(out / "extra.png")
    elif setup == "text":
        (out / "notes.txt").write_text("not an image")
    elif setup == "ambiguous":
        Image.open(out / "img000.png").save(out / "img000.jpg")
    args = [a.format(truth=folders["truth"], root=tmp_path) for a in args]
    assert main(["score", str(out), "--out", str(tmp_path / "run"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(fnmatch.fnmatch(line, f"imgx: error: {expected}") for line in lines), lines
    assert "Traceback" not in "".join(lines) and not (tmp_path / "run").exists() and not (out / "run").exists()


def test_an_unreadable_image_is_exit_2_naming_the_file(folders, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(folders["out"], out)
    (out / "img003.png").write_bytes(b"this is no png")
    assert main(["score", str(out), "--target", str(folders["truth"]), "--out", str(tmp_path / "run"), "-q"]) == 2
    assert "img003.png: not a readable image" in capsys.readouterr().err
    with pytest.raises(ImgxError, match="img003.png: not a readable image"):
        imgx.score(out, target=folders["truth"])


def test_suite_case_validates_names_and_omits_the_model(folders, tmp_path, capsys):
    suite = f"""
    suite: made-elsewhere
    cases:
      - id: vendor
        task: score
        data: {{name: outputs, path: {folders['out']}, target: {folders['truth']}}}
        metrics: [psnr, ssim]
        gates: {{psnr: "> 20"}}
    """
    good = write_suite(tmp_path, suite)
    assert main(["validate", str(good)]) == 0
    bad = write_suite(tmp_path, suite.replace(str(folders["truth"]), str(folders["inp"]) + "/../nothing")
                      .replace("[psnr, ssim]", "[psnr, clip_score]"), "bad.yaml")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:6: cases[0].metrics[1]: 'clip_score' needs a prompts CSV" in err
    assert "bad.yaml:5: cases[0].data.target: " in err and "nothing: no such folder" in err


def test_fid_of_same_distribution_images_sits_at_the_real_split_floor(tmp_path):
    from imgx.data import DATASETS
    from imgx.imageio import tensor_to_array
    from imgx.suite.schema import DataSpec

    digits = DATASETS.get("digits")(DataSpec(name="digits", image_size=28), 0, "generate")
    real = tensor_to_array(digits["train"])[..., 0]
    reference = _save(tmp_path / "ref", real[:120])
    outputs = _save(tmp_path / "out", real[120:180], start=120)  # other images of the same distribution
    inputs = _save(tmp_path / "inp", 255 - real[120:180], start=120)
    prompts = {f"img{i:03d}": f"a handwritten digit {int(digits['train_labels'][i])}" for i in range(120, 180)}
    frame = imgx.score(outputs, input=inputs, reference=reference, prompts=prompts,
                       metrics=["fid", "kid", "prompt_accuracy"], features="digits-classifier")
    # Real digits drawn as their prompts say: the classifier agrees with nearly every prompt.
    assert frame["prompt_accuracy"] > 0.8
    fid = {r.reference: r for r in frame[frame.metric == "fid"].itertuples()}
    assert len(frame[(frame.metric == "kid") & (frame.status == "ok")]) == 3
    assert set(fid) == {"", "real-split", "identity"} and all(r.status == "ok" for r in fid.values())
    floor = fid["real-split"]
    assert floor.ci_low <= fid[""].value <= floor.ci_high, (fid[""].value, floor)
    assert fid["identity"].value > 5 * floor.ci_high  # the negated inputs are far from real digits
    assert "digits-classifier" in fid[""].detail and "held out as the real set" in fid[""].detail


def test_clip_metrics_without_weights_are_unavailable_with_the_reason(folders, tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("file,prompt\n" + "".join(f"img{i:03d}.png,a photo\n" for i in range(N)), encoding="utf-8")
    frame = imgx.score(folders["out"], prompts=prompts, clip_model="imgx-tests/no-such-clip")
    (row,) = frame[frame.metric == "clip_score"].itertuples()
    assert row.status == "unavailable" and "imgx-tests/no-such-clip" in row.detail and np.isnan(row.value)
    # A prompts CSV that misses an output is refused before anything runs.
    prompts.write_text("file,prompt\nimg000,a photo\n", encoding="utf-8")
    with pytest.raises(ImgxError, match=f"prompts: {N - 1} output.s. have no namesake in the prompts CSV"):
        imgx.score(folders["out"], prompts=prompts)


def test_a_copy_of_the_reference_scores_the_floor_not_zero(tmp_path):
    import shutil

    from imgx.data import DATASETS
    from imgx.imageio import tensor_to_array
    from imgx.suite.schema import DataSpec

    digits = DATASETS.get("digits")(DataSpec(name="digits", image_size=28), 0, "generate")
    reference = _save(tmp_path / "ref", tensor_to_array(digits["train"])[:80, ..., 0])
    shutil.copytree(reference, tmp_path / "copy")
    frame = imgx.score(tmp_path / "copy", reference=reference, metrics=["fid"], features="digits-classifier")
    fid = {r.reference: r for r in frame.itertuples()}
    # The 40 copies of the held-out real set are left out; the other 40 are exactly the real-split images.
    # (equal up to float32 features embedded in other batches)
    assert fid[""].value == pytest.approx(fid["real-split"].value, rel=1e-6) and fid[""].value > 0
    assert "WARNING: 40 of 80 images are identical to images of the held-out real set" in fid[""].detail


def test_two_vendors_compare_by_id(folders, tmp_path, capsys):
    noisier = np.clip(folders["arrays"]["truth"] + np.random.default_rng(1).normal(0, 40, (N, SIZE, SIZE, 3)).round(),
                      0, 255).astype(np.uint8)
    other = _save(tmp_path / "vendor-b", noisier)
    for name, outputs in (("a", folders["out"]), ("b", other)):
        assert main(["score", str(outputs), "--target", str(folders["truth"]), "--metrics", "psnr", "--id", "vendor",
                     "--out", str(tmp_path / name), "-q", "--no-report"]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 1
    assert "vendor" in capsys.readouterr().out
    assert main(["score", str(other), "--target", str(folders["truth"]), "--id", "not an id"]) == 2
    assert "imgx: error: --id: " in capsys.readouterr().err


def test_targets_of_another_size_are_resized_to_their_output_and_said_so(folders, tmp_path):
    from skimage.metrics import mean_squared_error

    big = [np.asarray(Image.fromarray(a).resize((2 * SIZE, 2 * SIZE), Image.Resampling.BICUBIC))
           for a in folders["arrays"]["truth"]]
    truth = _save(tmp_path / "big", big, suffix=".jpg")  # another format too: matched by name without suffix
    frame = imgx.score(folders["out"], target=truth, metrics=["target_mse"])
    (row,) = frame.itertuples()
    assert f"{N} target(s) resized (LANCZOS) to their output's size" in row.detail
    expected = np.mean([mean_squared_error(np.asarray(Image.open(truth / f"img{i:03d}.jpg").convert("RGB").resize(
        (SIZE, SIZE), Image.Resampling.LANCZOS)) / 255.0, o / 255.0) for i, o in enumerate(folders["arrays"]["out"])])
    assert row.value == pytest.approx(expected, rel=1e-9)


def test_clip_metrics_with_a_local_clip_equal_a_direct_transformers_computation(folders, tmp_path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from imgx.models.tiny import save_tiny_clip

    clip = save_tiny_clip(tmp_path / "tiny-clip")
    words = ["a red square", "a blue photo", "noise"]
    prompts = {f"img{i:03d}": words[i % 3] for i in range(N)}
    frame = imgx.score(folders["out"], input=folders["inp"], prompts=prompts,
                       metrics=["clip_score", "clip_image_similarity"], clip_model=str(clip))
    rows = {(r.metric, r.reference): r for r in frame.itertuples()}
    assert {("clip_score", ""), ("clip_score", "input-copy"), ("clip_image_similarity", "")} <= set(rows)
    model, processor = CLIPModel.from_pretrained(clip).eval(), CLIPProcessor.from_pretrained(clip)
    outs = [Image.fromarray(a) for a in folders["arrays"]["out"]]
    ins = [Image.fromarray(a) for a in folders["arrays"]["inp"]]
    texts = [prompts[f"img{i:03d}"] for i in range(N)]
    with torch.no_grad():
        direct = model(**processor(text=texts, images=outs, return_tensors="pt", padding=True))
        direct_in = model(**processor(text=texts, images=ins, return_tensors="pt", padding=True))
    cos = torch.nn.functional.cosine_similarity(direct.image_embeds, direct.text_embeds)
    assert rows["clip_score", ""].value == pytest.approx(float((100 * cos.clamp_min(0)).mean()), abs=1e-3)
    similarity = torch.nn.functional.cosine_similarity(direct_in.image_embeds, direct.image_embeds)
    assert rows["clip_image_similarity", ""].value == pytest.approx(float(similarity.mean()), abs=1e-4)
