"""Synthetic run directories written file by file, as the runner would (ledger records, tables, images).

They exercise every part of the report (colorize, generate, edit with a guidance sweep, skipped CUDA cases,
a failed case, unavailable metrics) without running any model, so report tests do not depend on the tasks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from imgx.imageio import safe_name, save_png
from imgx.results import FORMAT, atomic_write_json, write_case, write_tables

EVIL_PROMPT = '<script>alert("x")</script> make it ../../etc/passwd & "quoted"'


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _image(out: Path, rng: np.random.Generator, size: int, *name: object) -> str:
    arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    arr[: size // 2] //= 2  # some structure, so compression has something to do
    path = save_png(arr, out / "images", safe_name(*name))
    return str(path.relative_to(out.resolve()))


def record(case_id: str, task: str, index: int, *, status: str = "ok", detail: str = "",
           params: dict[str, Any] | None = None, device: str = "cpu", dtype: str = "float32",
           rows: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A ledger record shaped like :func:`imgx.results.case_record`'s."""
    rec = {"format": FORMAT, "key": _key(case_id, device, dtype, params), "case_id": case_id,
           "base_id": case_id.split("[")[0], "index": index, "suite": "synthetic", "task": task,
           "model": {"colorize": "encoder-decoder", "generate": "dcgan", "edit": "instruct-pix2pix"}[task],
           "device": device, "dtype": dtype, "seed": 1234 + index, "params": params or {}, "config": {},
           "status": status, "detail": detail, "started": 0.0, "ended": 1.0, "seconds": 1.0, "rows": rows or [],
           "gates": [], "history": [], "outputs": [], "artifacts": {}, "info": {}}
    rec.update(extra)
    return rec


def row(metric: str, value: float | None, reference: str = "", status: str = "ok", detail: str = "",
        ci: float | None = None, n: int | None = 64, unit: str = "") -> dict[str, Any]:
    """A metric row as stored in a record."""
    return {"metric": metric, "value": value, "unit": unit, "reference": reference, "n": n,
            "ci_low": None if ci is None or value is None else value - ci,
            "ci_high": None if ci is None or value is None else value + ci, "status": status, "detail": detail}


def make_run(out: Path, *, edit_inputs: int = 2, prompts: tuple[str, ...] = (EVIL_PROMPT, "make it a pencil sketch"),
             guidance: tuple[float, ...] = (1.0, 1.5), text_guidance: tuple[float, ...] = (5.0, 7.5),
             schedulers: tuple[str, ...] = ("ddim", "euler-ancestral"), steps: tuple[int, ...] = (2, 4),
             image_size: int = 32, seed: int = 0, shift: float = 0.0, colorize_cases: int = 1,
             with_cuda: bool = True, with_failed: bool = True) -> Path:
    """Write a complete synthetic run directory at ``out`` and return it.

    ``shift`` moves every quality value (for baseline/candidate pairs in comparison tests).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = []

    # Colorizer: history, gray-copy references, a failing gate, a grid and a missing artifact.
    for c in range(colorize_cases):
        cid = "colorizer" if colorize_cases == 1 else f"colorizer[seed={c}]"
        grid = _image(out, rng, 96, cid, "grid")
        rec = record(cid, "colorize", len(records), params={} if colorize_cases == 1 else {"seed": c}, rows=[
            row("mse", 0.02 - shift / 10, ci=0.001), row("psnr", 18.0 + shift * 10, unit="dB", ci=0.3),
            row("ssim", 0.78 + shift, ci=0.01), row("mse", 0.03, "gray-copy", ci=0.001),
            row("psnr", 16.5, "gray-copy", unit="dB", ci=0.2), row("ssim", 0.84, "gray-copy", ci=0.01),
            row("train_seconds", 12.0, unit="s", n=10)],
            history=[{"epoch": e, "loss": 0.3 / e, "test_loss": 0.35 / e, "seconds": 1.2} for e in range(1, 6)],
            artifacts={"grid": grid, "grid_rows": ["gray input", "output", "target", "error"],
                       "sample": {"gray": grid, "output": "images/does-not-exist.png"}},
            info={"data": {"name": "photos", "train": 512}, "parameters": 12345})
        rec["gates"] = [{"metric": "ssim", "op": ">=", "bound": 0.8, "value": 0.78 + shift,
                         "passed": 0.78 + shift >= 0.8, "detail": f"ssim = {0.78 + shift:.6g}, required >= 0.8"}]
        records.append(rec)

    # GAN: losses and accuracy per epoch, fixed-noise grids across epochs, FID/KID with references.
    epochs = [1, 2, 3]
    records.append(record("gan", "generate", len(records), rows=[
        row("fid", 40.0 - shift * 100, ci=2.0, n=1000, detail="features digits-classifier (64-d), resize bilinear"),
        row("kid", 0.02, ci=0.004, n=1000), row("fid", 180.0, "untrained", ci=5.0, n=1000),
        row("kid", 0.3, "untrained", ci=0.02, n=1000), row("fid", 3.0, "real-split", ci=0.5, n=1000),
        row("kid", 0.001, "real-split", ci=0.0005, n=1000),
        row("fid", None, "inception-v3", status="unavailable", detail="Inception weights not present offline")],
        history=[{"epoch": e, "d_loss": 1.3 / e, "g_loss": 0.7 + e / 10, "d_acc_real": 0.5 + e / 10,
                  "d_acc_fake": 0.6 + e / 20, "seconds": 2.0, "class_coverage": 0.8} for e in epochs],
        artifacts={"samples": _image(out, rng, 56, "gan", "samples"), "untrained": _image(out, rng, 56, "gan", "u"),
                   "fixed_noise": [_image(out, rng, 56, "gan", "epoch", e) for e in epochs]},
        info={"feature_extractor": "digits-classifier", "weights_sha256": "ab" * 32, "real_samples": 1000,
              "fake_samples": 1000}))

    # InstructPix2Pix: a guidance sweep over schedulers and steps, on CPU (and CUDA, skipped).
    inputs = [_image(out, rng, image_size, "input", i) for i in range(edit_inputs)]
    devices = ["cpu", "cuda"] if with_cuda else ["cpu"]
    for device in devices:
        dtype = "float32" if device == "cpu" else "float16"
        for sched in schedulers:
            for st in steps:
                for ig in guidance:
                    for g in text_guidance:
                        params = {"device": device, "image_guidance_scale": ig, "guidance_scale": g,
                                  "num_inference_steps": st, "scheduler": sched}
                        cid = "edit[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"
                        if device == "cuda":
                            records.append(record(cid, "edit", len(records), status="skipped", params=params,
                                                  device=device, dtype=dtype,
                                                  detail="CUDA is not available on this machine"))
                            continue
                        outputs = []
                        for i, src in enumerate(inputs):
                            for k, p in enumerate(prompts):
                                path = _image(out, rng, image_size, cid, p, i)
                                invalid = "black image (NSFW filter?)" if (i, k, ig, g) == (0, 1, 1.0, 5.0) else ""
                                # like the edit task: the embedded photo has no source path, its copy is in images/
                                outputs.append({"prompt": p, "seed": 7, "input_path": "", "path": path,
                                                "input_image": src, "input_name": f"photo-{i}", "scheduler": sched,
                                                "num_inference_steps": st, "guidance_scale": g,
                                                "image_guidance_scale": ig, "valid": not invalid,
                                                "invalid_reason": invalid, "clip_tokens": 7 + k})
                        lat = 50.0 * st * (1.3 if sched == "ddim" else 1.0)
                        q = 0.1 + 0.02 * g / 5 + 0.01 * st - 0.02 * ig + shift
                        records.append(record(cid, "edit", len(records), params=params, device=device, dtype=dtype,
                                              outputs=outputs, info={"random_weights": True, "pipeline": "tiny"},
                                              artifacts={"grid": outputs[0]["path"], "grid_rows": ["input"],
                                                         "outputs": [o["path"] for o in outputs]},
                                              rows=[row("clip_directional_similarity", q),
                                                    row("clip_image_similarity", 0.9 - 0.05 * g / 5 + 0.05 * ig),
                                                    row("clip_score", None, status="unavailable",
                                                        detail="CLIP weights not present offline"),
                                                    row("latency_ms_p50", lat, unit="ms"),
                                                    row("latency_ms_p90", lat * 1.1, unit="ms"),
                                                    row("latency_ms_text_encode", 2.0, unit="ms"),
                                                    row("latency_ms_image_encode", 3.0, unit="ms"),
                                                    row("latency_ms_denoise", lat - 10, unit="ms"),
                                                    row("latency_ms_vae_decode", 5.0, unit="ms")]))
    if with_failed:
        records.append(record("broken", "edit", len(records), status="failed",
                              detail="RuntimeError: <b>boom</b> in ../../unet"))
    for rec in records:
        write_case(out, rec)
    write_tables(out, records)
    atomic_write_json(out / "manifest.json", {
        "format": FORMAT, "imgx_version": "0.1.0", "git_commit": "0123456789abcdef", "suite": "synthetic",
        "suite_path": "suites/synthetic.yaml", "suite_sha256": "f" * 64, "description": "synthetic <run> & co",
        "command": ["imgx", "run", "suites/synthetic.yaml"], "seed": 0, "started": "2026-01-01T10:00:00+00:00",
        "ended": "2026-01-01T10:05:00+00:00", "planned": len(records),
        "environment": {"python": "3.11.7", "cpu": "Test CPU", "torch_threads": 2, "cuda_available": False,
                        "versions": {"torch": "2.14.1", "diffusers": "0.42.1"}}})
    return out
