#!/usr/bin/env bash
# The CUDA check a machine with one GPU runs in under 8 minutes: the `gpu` tests, the hardware suite
# (suites/ip2p-hardware.yaml with the tiny pipeline at 512 px, CUDA cases), and the figures appended to
# bench/RESULTS.md with the device named.
#
#   bash bench/gpu_check.sh             # on the GPU machine, from anywhere in the checkout
#   bash bench/gpu_check.sh --dry-run   # check the prerequisites only (works without a GPU)
#
# A bare GPU image may lack diffusers and have no package access: before carrying the checkout there, run
#   pip download diffusers --no-deps -d .whl
# and this script installs it from .whl/ when `import diffusers` fails. Fails loudly when CUDA is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export IMGX_CACHE=${IMGX_CACHE:-$ROOT/.gpu-check/cache}
OUT=${GPU_CHECK_OUT:-$ROOT/.gpu-check}
SUITE=suites/ip2p-hardware.yaml
RESULTS=bench/RESULTS.md

die() { echo "gpu_check: FAIL: $*" >&2; exit 1; }
step() { echo "== gpu_check: $*"; }

step "prerequisites"
command -v "$PY" >/dev/null || die "no $PY on PATH (set PYTHON=...)"
"$PY" -c "import torch" 2>/dev/null || die "torch is not importable with $PY"
[[ -f $SUITE ]] || die "$SUITE is missing"
[[ -w $RESULTS ]] || die "$RESULTS is not writable"
WHEEL=$(ls .whl/diffusers-*.whl 2>/dev/null | head -n 1 || true)
if "$PY" -c "import diffusers" 2>/dev/null; then
  step "diffusers is importable"
elif [[ -n $WHEEL ]]; then
  step "diffusers will be installed from $WHEEL"
else
  die "diffusers is not importable and no wheel in .whl/ (run 'pip download diffusers --no-deps -d .whl' first)"
fi
if [[ $DRY == 1 ]]; then
  "$PY" -c "import imgx" || die "imgx is not importable from $ROOT"
  command -v nvidia-smi >/dev/null && step "nvidia-smi: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)" \
    || step "nvidia-smi: not found (needed on the GPU machine)"
  step "dry run: prerequisites ok; would run pytest -m gpu, imgx run (tiny, 512 px, --device cuda), append to $RESULTS"
  exit 0
fi

command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this is not a GPU machine"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || die "torch.cuda.is_available() is False (torch $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)'))"
DEVICE=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n 1)
step "device: $DEVICE"

if ! "$PY" -c "import diffusers" 2>/dev/null; then
  step "installing diffusers from $WHEEL"
  "$PY" -m pip install -q --no-deps "$WHEEL" || die "could not install $WHEEL"
fi
"$PY" -m pip install -q -e . --no-deps >/dev/null 2>&1 || step "pip install -e . failed; using PYTHONPATH=$ROOT"

step "pytest -m gpu"
"$PY" -m pytest -m gpu -q -p no:cacheprovider tests || die "gpu tests failed"

step "hardware suite: tiny pipeline, 512 px, CUDA cases"
mkdir -p "$OUT"
# GPU_CHECK_COMPILE=0 drops the torch.compile cases (their first compilation takes most of the time).
compile_axis='s#^$#&#'
[[ ${GPU_CHECK_COMPILE:-1} == 0 ]] && compile_axis='s#compile: \[false, true\]#compile: [false]#'
sed -e 's#weights: timbrooks/instruct-pix2pix#weights: tiny#' -e 's#^suite: ip2p-hardware#suite: ip2p-hardware-tiny#' \
  -e "$compile_axis" "$SUITE" > "$OUT/hw-tiny.yaml"
rm -rf "$OUT/run"
set +e
"$PY" -m imgx run "$OUT/hw-tiny.yaml" --out "$OUT/run" --device cuda -q
rc=$?
set -e
[[ $rc -le 1 ]] || die "imgx run exited $rc"
[[ -f $OUT/run/results.csv ]] || die "no results.csv"

step "appending the figures to $RESULTS"
DEVICE="$DEVICE" "$PY" - "$OUT/run/results.csv" "$RESULTS" "$rc" <<'EOF'
import csv, os, sys
from datetime import datetime, timezone

rows = list(csv.DictReader(open(sys.argv[1], newline="")))
cases = list(dict.fromkeys(r["case_id"] for r in rows))
own = {(r["case_id"], r["metric"]): r for r in rows if not r["reference"]}
agree = {(r["case_id"], r["metric"]): r for r in rows if r["reference"] and r["metric"] in ("psnr", "ssim", "speedup")}

def cell(row, fmt):
    if row is None:
        return "n/a"
    return fmt.format(float(row["value"])) if row["value"] else row["status"]

lines = [f"\n## CUDA: {os.environ['DEVICE']} ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, bench/gpu_check.sh)\n",
         "ip2p-hardware with the tiny pipeline (random weights; plumbing and relative settings, not real-model "
         f"latency), 512 px, CUDA cases; imgx run exit {sys.argv[3]}.\n",
         "| case | status | latency p50 | p90 | peak memory | PSNR / SSIM vs reference | speed-up |",
         "|---|---|---|---|---|---|---|"]
status = {r["case_id"]: r["status"] for r in rows if not r["reference"]}
for c in cases:
    lines.append(f"| {c} | {status.get(c, '?')} | {cell(own.get((c, 'latency_ms_p50')), '{:.1f} ms')} | "
                 f"{cell(own.get((c, 'latency_ms_p90')), '{:.1f} ms')} | "
                 f"{cell(own.get((c, 'peak_memory_mb')), '{:.0f} MB')} | "
                 f"{cell(agree.get((c, 'psnr')), '{:.1f} dB')} / {cell(agree.get((c, 'ssim')), '{:.5f}')} | "
                 f"{cell(agree.get((c, 'speedup')), '{:.2f}x')} |")
with open(sys.argv[2], "a", encoding="utf-8") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
step "done: figures appended to $RESULTS (run directory $OUT/run)"
