#!/usr/bin/env bash
# The mixed-precision comparisons of BENCHMARKS.md ("bf16"): ours in fp32 and bf16 against PyTorch eager fp32 and
# bf16 autocast (torch_bench.py with AMP=bf16), each pair back to back in one `controlnet bench --torch DIR
# --torch-amp P` run, ROUNDS times: ControlNet mnist batch 64 on 1 rank x 1 thread (fp32 and bf16), 2 ranks vs DDP
# (bf16), scale64 batch 16 on 1 thread (fp32 and bf16); then this CPU's bf16 ceiling (the fp32 FMA and VDPBF16PS
# peaks, and sgemm vs our bf16 GEMM at the step's top shapes). Prints every run and a summary table.
#
#   scripts/bench-bf16-vs-torch.sh [ROUNDS]        (default 3; about 4 minutes per round on 2 idle cores)
#   REF=/path/to/reference/pytorch scripts/bench-bf16-vs-torch.sh
#
# Needs torch importable by python3 (pip install /opt/wheels/torch-*.whl) and the release build (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"
REF="${REF:-../shared/reference/pytorch}"
BIN=.build/release/controlnet
OUT="${OUT:-runs/bench-bf16-$(date +%Y%m%d-%H%M%S)}"

source scripts/bench/torch-setup.sh torch_bench.py
echo "writing JSON to $OUT; $ROUNDS round(s); $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" info | grep -A2 '^bf16' | tee "$OUT/info.txt"

run() {  # name, then the command
    local name="$1"; shift
    local file="$OUT/$name-$round.json"
    "$@" > "$file" 2> "$OUT/$name-$round.err" || { echo "error: $name failed, see $OUT/$name-$round.err" >&2; exit 1; }
    python3 - "$file" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); t = d["torch"]
print(f'{sys.argv[2]:>22}: ours {d["precision"]} {d["samplesPerSecond"]:6.1f} samples/s, torch {t["amp"]} '
      f'{t["samplesPerSecond"]:6.1f}, ratio {t["oursOverTorch"]:.3f}, peak RSS/rank {d["peakRSSMegabytesPerRankMax"]:.0f} MB '
      f'(torch {t["peakRSSMegabytesRank0"]} MB), load {open("/proc/loadavg").read().split()[0]}')
PY
}

mnist=(--mode controlnet --config mnist --batch-size 64 --steps 7 --threads 1 --torch "$REF")
scale=(--mode controlnet --config scale64 --batch-size 16 --steps 5 --threads 1 --torch "$REF")
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round/$ROUNDS ($(date +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
    run mnist-np1-fp32 "$BIN" bench "${mnist[@]}" --precision fp32 --torch-amp fp32
    run mnist-np1-bf16 "$BIN" bench "${mnist[@]}" --precision bf16 --torch-amp bf16
    run mnist-np2-bf16 mpirun -np 2 --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_CORETYPE \
        "$BIN" bench "${mnist[@]}" --precision bf16 --torch-amp bf16
    run scale64-np1-fp32 "$BIN" bench "${scale[@]}" --precision fp32 --torch-amp fp32
    run scale64-np1-bf16 "$BIN" bench "${scale[@]}" --precision bf16 --torch-amp bf16
done
"$BIN" bench --gemm-shapes --steps 1 --warmup 1 --threads 1 > "$OUT/shapes.json" 2>/dev/null
"$BIN" bench-sgemm --precision bf16 --shapes "$OUT/shapes.json" --top 8 --repeats 3 > "$OUT/ceiling.json"

python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
print("\n| run | ours samples/s (median) | PyTorch samples/s (median) | ours / PyTorch: median (range) | peak RSS per rank, ours / PyTorch (max) |")
print("|---|---|---|---|---|")
for name in ["mnist-np1-fp32", "mnist-np1-bf16", "mnist-np2-bf16", "scale64-np1-fp32", "scale64-np1-bf16"]:
    runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, name + "-*.json")))]
    if not runs: continue
    ours = [r["samplesPerSecond"] for r in runs]; torch = [r["torch"]["samplesPerSecond"] for r in runs]
    ratio = [r["torch"]["oursOverTorch"] for r in runs]
    rss = max(r["peakRSSMegabytesPerRankMax"] for r in runs); trss = max(r["torch"]["peakRSSMegabytesRank0"] or 0 for r in runs)
    print(f"| {name} (torch {runs[0]['torch']['amp']}) | {statistics.median(ours):.1f} | {statistics.median(torch):.1f} | "
          f"**{statistics.median(ratio):.2f}** ({min(ratio):.2f} - {max(ratio):.2f}), {len(runs)} runs | "
          f"{rss:.0f} / {trss:.0f} MB ({rss / trss:.2f}x) |")
c = json.load(open(os.path.join(out, "ceiling.json")))
print(f"\nbf16 ceiling: fp32 FMA peak {c['fmaPeakGflops']:.0f} GFLOP/s, VDPBF16PS peak {c['dpbf16PeakGflops']:.0f} GFLOP/s "
      f"(bf16 kernel in use: {c['bf16Kernel']}); sgemm 2048^3 {c['ceiling2048']['bestGflops']:.0f} GFLOP/s")
print("| shape (step's top GEMMs) | sgemm GFLOP/s | bf16 packed, per variant | bf16 one-call |")
print("|---|---|---|---|")
for b in c["bf16"]:
    v = ", ".join(f"{k} {g:.0f}" for k, g in sorted(b["packedGflops"].items()))
    print(f"| {b['shape']['name']} | {b['sgemmGflops']:.0f} | {v} | {b['oneCallGflops']:.0f} |")
PY
