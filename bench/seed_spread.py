"""The recipes trained here, over suite seeds, through `imgx run` as a user runs them (issue 27).

    IMGX_CACHE=/some/cache python bench/seed_spread.py 0 1 2 17 29 [--recipe ip2p|t2i|cyclegan] [--out DIR]

One run per suite seed of a one-case suite cut from the recipe's own suite file, so a change to the suite is what
is measured:

- ``ip2p``: suites/ip2p-guidance.yaml's `trained` case at InstructPix2Pix's defaults (image guidance 1.5, text
  guidance 7.5, 20 Euler-ancestral steps) on its held-out crops. Targets: instruction accuracy >= 0.85 and
  `target_mse` below `identity`'s on >= 6 of 8 instructions.
- ``t2i``: suites/t2i-guidance.yaml's `digits-sd` case at guidance 1, 2, 3 and 7.5 (10 DDIM steps, 10 samples per
  digit). Target: prompt accuracy >= 0.95 at guidance 2-7.5.
- ``cyclegan``: suites/cyclegan.yaml's photo -> sketch case. Target: `target_ssim` above the copy's (`identity`).

Prints per seed the figures, the targets met, the training wall seconds (and for ip2p the VAE's floor and the
denoiser's loss curve); then min / median / max of the headline figure and of the training time. Sequential (one
training at a time); deterministic per seed on one CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _case(suite: str, case_id: str) -> dict:
    return next(c for c in yaml.safe_load((ROOT / "suites" / suite).read_text())["cases"] if c["id"] == case_id)


def suite_text(seed: int, recipe: str = "ip2p") -> str:
    """A one-case suite: the recipe's case from its suite file, at the settings its targets are stated for."""
    if recipe == "ip2p":
        case = _case("ip2p-guidance.yaml", "trained")
        case = {"id": "trained", "task": "edit", "model": case["model"], "data": case["data"],
                "train": case["train"], "device": "cpu", "metrics": ["target_mse", "instruction_accuracy"],
                "inference": {"num_inference_steps": 20, "scheduler": "euler-ancestral", "image_guidance_scale": 1.5,
                              "guidance_scale": 7.5, "warmup": 0, "repeats": 1}}
    elif recipe == "t2i":
        case = _case("t2i-guidance.yaml", "digits-sd")
        case = {**{k: v for k, v in case.items() if k not in ("sweep", "marks")}, "metrics": ["prompt_accuracy"],
                "metric_options": {}, "inference": {"num_inference_steps": 10, "scheduler": "ddim", "warmup": 0,
                                                    "repeats": 1},
                "sweep": {"guidance_scale": [1.0, 2.0, 3.0, 7.5]}}
    elif recipe == "cyclegan":
        suite = yaml.safe_load((ROOT / "suites" / "cyclegan.yaml").read_text())
        case = {**suite["defaults"], **_case("cyclegan.yaml", "cyclegan-sketch-ab")}
    else:
        raise ValueError(f"unknown recipe {recipe!r}")
    return yaml.safe_dump({"suite": f"{recipe}-seed", "seed": seed, "cases": [case]}, sort_keys=False)


def _rows(out: Path) -> dict[tuple[str, str, str], float]:
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        return {(r["case_id"], r["metric"], r["reference"]): float(r["value"]) for r in csv.DictReader(fh)
                if r["value"]}


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "cases").glob("*.json"))]


def _train_seconds(v: dict) -> float:
    return max(x for (_, m, ref), x in v.items() if m == "train_seconds" and ref == "")


def summarize(out: Path, recipe: str = "ip2p") -> dict:
    """The headline figure, whether the targets hold, and the training time of one finished run."""
    v = _rows(out)
    one = {(m, ref): x for (_, m, ref), x in v.items()}  # one-point cases (ip2p, cyclegan): rows by metric
    if recipe == "ip2p":
        names = sorted({m[len("target_mse["):-1] for m, _ in one if m.startswith("target_mse[")})
        beats = [n for n in names if one[(f"target_mse[{n}]", "")] < one[(f"target_mse[{n}]", "identity")]]
        (record,) = _records(out)
        trained = record["info"]["trained"]
        accuracy = one[("instruction_accuracy", "")]
        return {"headline": accuracy, "met": accuracy >= 0.85 and len(beats) >= 6,
                "per_instruction": {n: one.get((f"instruction_accuracy[{n}]", "")) for n in names},
                "beats": beats, "vae_floor_test": one.get(("target_mse", "vae-floor")),
                "denoiser_loss": [round(h["loss"], 4) for h in record["history"] if h["stage"] == "denoiser"],
                "train_seconds": trained.get("model_train_seconds"),
                "train_cpu_seconds": trained.get("model_train_cpu_seconds")}
    if recipe == "t2i":
        accuracy = {float(c.split("guidance_scale=")[1].split("]")[0].split(",")[0]): x
                    for (c, m, ref), x in v.items() if m == "prompt_accuracy" and ref == ""}
        low = min(accuracy[g] for g in accuracy if 2.0 <= g <= 7.5)
        return {"headline": low, "met": low >= 0.95, "prompt_accuracy": accuracy,
                "untrained": next(x for (_, m, ref), x in v.items() if m == "prompt_accuracy" and ref == "untrained"),
                "train_seconds": _train_seconds(v)}
    return {"headline": one[("target_ssim", "")], "met": one[("target_ssim", "")] > one[("target_ssim", "identity")],
            "identity": one[("target_ssim", "identity")], "fid": one[("fid", "")],
            "fid_untrained": one[("fid", "untrained")], "train_seconds": round(_train_seconds(v), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="+", type=int)
    parser.add_argument("--recipe", choices=("ip2p", "t2i", "cyclegan"), default="ip2p")
    parser.add_argument("--out", type=Path, default=Path("seed-spread"))
    args = parser.parse_args()
    headline, seconds = [], []
    for seed in args.seeds:
        out = args.out / f"{args.recipe}-seed-{seed}"
        args.out.mkdir(parents=True, exist_ok=True)
        suite = args.out / f"{args.recipe}-seed-{seed}.yaml"
        suite.write_text(suite_text(seed, args.recipe), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "imgx", "run", str(suite), "--out", str(out), "--quiet", "--no-report"],
                       check=False)
        s = summarize(out, args.recipe)
        headline.append(s["headline"])
        seconds.append(s["train_seconds"])
        print(f"{args.recipe} suite seed {seed}: " + json.dumps(s), flush=True)
    print(f"{args.recipe}, {len(headline)} seeds: headline min {min(headline):.3f} median "
          f"{statistics.median(headline):.3f} max {max(headline):.3f}; training min {min(seconds):.1f} s median "
          f"{statistics.median(seconds):.1f} s max {max(seconds):.1f} s")


if __name__ == "__main__":
    main()
