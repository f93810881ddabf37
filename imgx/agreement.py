"""Hardware comparisons across the cases of one sweep point: output agreement and speed-up.

Cases that differ only in how they run (device, dtype, attention, compile, channels_last, cpu_threads) see
the same seeds, so their outputs can be compared image for image. Within each such group the first case in
plan order (the first value of every hardware axis, e.g. ``cpu`` + ``float32``) is the reference; every other
case gets ``psnr`` and ``ssim`` of its outputs against the reference's and a ``speedup`` (reference latency
p50 / its own), each with ``reference`` naming the reference combination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgx.imageio import arrays_to_unit
from imgx.results import ok_values

HARDWARE_AXES = ("device", "dtype", "attention", "compile", "channels_last", "cpu_threads")


def _label(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items() if k in HARDWARE_AXES) or "reference"


def _images(out: Path, record: dict[str, Any]) -> dict[tuple, np.ndarray]:
    found = {}
    for o in record.get("outputs", []):
        if o.get("valid", True) and o.get("path"):
            key = (o.get("input_name") or o.get("input_path"), o.get("prompt"), o.get("seed"))
            with Image.open(out / o["path"]) as img:
                found[key] = np.asarray(img.convert("RGB"))
    return found


def _latency(record: dict[str, Any]) -> float | None:
    return ok_values(record.get("rows", [])).get("latency_ms_p50")


def derived_rows(out: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agreement and speed-up rows (``results.csv`` shape) for groups of hardware variants; [] when none."""

    from imgx.metrics.pixel import psnr, ssim

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        if rec["task"] != "edit" or not any(k in HARDWARE_AXES for k in rec.get("params", {})):
            continue
        rest = tuple(sorted((k, repr(v)) for k, v in rec["params"].items() if k not in HARDWARE_AXES))
        groups.setdefault((rec["base_id"], rest), []).append(rec)
    rows = []
    for members in groups.values():
        members.sort(key=lambda r: r["index"])
        ref = members[0]
        if ref["status"] != "ok" or len(members) < 2:
            continue
        ref_images, ref_latency, label = _images(out, ref), _latency(ref), _label(ref["params"])
        for rec in members[1:]:
            if rec["status"] != "ok":
                continue
            common = {"case_id": rec["case_id"], "suite": rec["suite"], "task": rec["task"], "model": rec["model"],
                      "device": rec["device"], "dtype": rec["dtype"], "reference": label, **rec["params"]}
            images = _images(out, rec)
            keys = [k for k in images if k in ref_images and images[k].shape == ref_images[k].shape]
            if keys:
                a = arrays_to_unit([images[k] for k in keys])
                b = arrays_to_unit([ref_images[k] for k in keys])
                for name, fn in (("psnr", psnr), ("ssim", ssim)):
                    values = fn(a, b).clamp(max=100.0) if name == "psnr" else fn(a, b)
                    rows.append({**common, "metric": name, "value": float(values.mean()), "unit": "dB" if name ==
                                 "psnr" else "", "n": len(keys), "status": "ok",
                                 "detail": "output agreement with the reference combination (psnr capped at 100 dB "
                                           "for identical images)"})
            latency = _latency(rec)
            if latency and ref_latency:
                rows.append({**common, "metric": "speedup", "value": ref_latency / latency, "unit": "x",
                             "status": "ok", "detail": f"latency p50 {ref_latency:.1f} ms (reference) / "
                                                       f"{latency:.1f} ms"})
    return rows
