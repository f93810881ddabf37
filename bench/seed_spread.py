"""The ip2p-guidance `trained` recipe over suite seeds, through `imgx run` as a user runs it (issue 27).

    IMGX_CACHE=/some/cache python bench/seed_spread.py 0 1 2 17 29 [--out DIR]

One run per suite seed of a one-case suite: the recipe and data of suites/ip2p-guidance.yaml's `trained` case,
scored at InstructPix2Pix's defaults (image guidance 1.5, text guidance 7.5, 20 Euler-ancestral steps) on the
held-out crops. Prints, per seed: instruction accuracy, the instructions whose target_mse is below identity's,
the VAE's epochs and reconstruction floor per epoch, training wall and CPU seconds, the denoiser's loss curve;
then min / median / max of the accuracy. Sequential (one training at a time); deterministic per seed on CPU.
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


def suite_text(seed: int) -> str:
    """A one-case suite: the guidance suite's `trained` recipe and data at InstructPix2Pix's defaults."""
    case = next(c for c in yaml.safe_load((ROOT / "suites" / "ip2p-guidance.yaml").read_text())["cases"]
                if c["id"] == "trained")
    return yaml.safe_dump({"suite": "ip2p-seed", "seed": seed, "cases": [{
        "id": "trained", "task": "edit", "model": case["model"], "data": case["data"], "train": case["train"],
        "device": "cpu", "metrics": ["target_mse", "instruction_accuracy"],
        "inference": {"num_inference_steps": 20, "scheduler": "euler-ancestral", "image_guidance_scale": 1.5,
                      "guidance_scale": 7.5, "warmup": 0, "repeats": 1}}]}, sort_keys=False)


def summarize(out: Path) -> dict:
    """Accuracy, instructions beating identity, VAE and denoiser curves and times of one finished run."""
    rows = list(csv.DictReader(open(out / "results.csv", newline="", encoding="utf-8")))
    v = {(r["metric"], r["reference"]): float(r["value"]) for r in rows if r["value"]}
    names = sorted({r["metric"][len("target_mse["):-1] for r in rows if r["metric"].startswith("target_mse[")})
    record = json.loads(next((out / "cases").glob("*.json")).read_text(encoding="utf-8"))
    trained = record["info"]["trained"]
    return {"accuracy": v[("instruction_accuracy", "")], "identity": v[("instruction_accuracy", "identity")],
            "beats": [n for n in names if v[(f"target_mse[{n}]", "")] < v[(f"target_mse[{n}]", "identity")]],
            "instructions": len(names), "vae_floor_test": v.get(("target_mse", "vae-floor")),
            "vae_floor_per_epoch": [round(h["floor"], 4) for h in record["history"]
                                    if h["stage"] == "vae" and "floor" in h],
            "denoiser_loss": [round(h["loss"], 4) for h in record["history"] if h["stage"] == "denoiser"],
            "train_seconds": trained.get("model_train_seconds"),
            "train_cpu_seconds": trained.get("model_train_cpu_seconds"),
            "vae_seconds": trained.get("model_vae_seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="+", type=int)
    parser.add_argument("--out", type=Path, default=Path("seed-spread"))
    args = parser.parse_args()
    accuracies = []
    for seed in args.seeds:
        out = args.out / f"seed-{seed}"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"seed-{seed}.yaml").write_text(suite_text(seed), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "imgx", "run", str(args.out / f"seed-{seed}.yaml"), "--out", str(out),
                        "--quiet", "--no-report"], check=False)
        s = summarize(out)
        accuracies.append(s["accuracy"])
        print(f"suite seed {seed}: " + json.dumps(s), flush=True)
    print(f"instruction accuracy over {len(accuracies)} seeds: min {min(accuracies):.3f} median "
          f"{statistics.median(accuracies):.3f} max {max(accuracies):.3f}")


if __name__ == "__main__":
    main()
