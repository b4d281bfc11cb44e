"""Markdown tables for docs/bf16-kernels.md from scripts/bf16/measure.sh's OUT directory: medians over rounds.

usage: tables.py OUT ROUNDS
"""
import json, os, statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])
med = lambda xs: statistics.median(xs) if xs else float("nan")


def role(caller, ta, tb):
    if caller == "conv_forward": return "fwd"
    if caller == "conv_backward": return "dX" if ta else ("dW" if tb else "dX (1x1)")
    return caller


def onednn(cfg, r):
    path = f"{out}/onednn-gemm-{cfg}-{r}.csv"
    rows = {}
    if not os.path.exists(path): return rows
    for line in open(path).read().splitlines()[1:]:
        parts = [p.strip() for p in line.split(",")]
        key = parts[0]
        rows[key] = (float(parts[2]), float(parts[3]), parts[4], parts[5])
    return rows


for cfg in ["mnist", "scale64"]:
    runs = [json.load(open(f"{out}/gemm-{cfg}-{r}.json")) for r in range(1, rounds + 1)]
    dnn = [onednn(cfg, r) for r in range(1, rounds + 1)]
    print(f"\n### {cfg}: the {len(runs[0]['bf16'])} GEMM shapes taking the most time in a step (GFLOP/s, median of {rounds})\n")
    print("FMA peak %.0f GFLOP/s, VDPBF16PS peak %.0f GFLOP/s (medians); bf16 kernel chosen by auto: %s\n" % (
        med([r["fmaPeakGflops"] for r in runs]), med([r["dpbf16PeakGflops"] for r in runs]), runs[0]["bf16Kernel"]))
    print("| op(A) op(B) m x n x k | role | calls/step | OpenBLAS sgemm | ours VDPBF16PS (packed) | ours FMA-emulated bf16 (packed) "
          "| ours one-call (packs both) | pack A / pack B us | oneDNN fp32 | oneDNN bf16 | oneDNN reorder A + B us |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, c in enumerate(runs[0]["bf16"]):
        s = c["shape"]
        key = f"{'T' if s['transA'] else 'N'}{'T' if s['transB'] else 'N'} m={s['m']} n={s['n']} k={s['k']}"
        col = lambda f: med([f(r["bf16"][i]) for r in runs])
        dp = col(lambda x: x["packedGflops"].get("avx512bf16", float("nan")))
        emu = col(lambda x: x["packedGflops"].get("avx512", float("nan")))
        d32 = med([d[key][0] for d in dnn if key in d]); d16 = med([d[key][1] for d in dnn if key in d])
        reo = [d[key][2] for d in dnn if key in d]
        print(f"| {key[:2]} {s['m']}x{s['n']}x{s['k']} | {role(c['caller'], s['transA'], s['transB'])} | {c['callsPerStep']} "
              f"| {col(lambda x: x['sgemmGflops']):.0f} | {dp:.0f} | {emu:.0f} | {col(lambda x: x['oneCallGflops']):.0f} "
              f"| {col(lambda x: x['packAMicroseconds']):.2f} / {col(lambda x: x['packBMicroseconds']):.2f} "
              f"| {d32:.0f} | {d16:.0f} | {reo[len(reo) // 2] if reo else '-'} |")

print("\n### Whole steps (ms per step, median of rounds; phases exclusive)\n")
print("| config | precision | samples/s | ms/step | gemm | conv fwd | conv bwd | norms | other phases |")
print("|---|---|---|---|---|---|---|---|---|")
for cfg in ["mnist", "scale64"]:
    for p in ["fp32", "bf16"]:
        rs = [json.load(open(f"{out}/step-{cfg}-{p}-{r}.json")) for r in range(1, rounds + 1)
              if os.path.exists(f"{out}/step-{cfg}-{p}-{r}.json")]
        if not rs: continue
        ph = lambda k: med([r["phaseMsPerStep"][k] for r in rs])
        rest = med([sum(v for k, v in r["phaseMsPerStep"].items() if k not in ("gemm", "conv_forward", "conv_backward", "norms")) for r in rs])
        print(f"| {cfg} | {p} | {med([r['samplesPerSecond'] for r in rs]):.1f} | {med([r['msPerStepMedian'] for r in rs]):.0f} "
              f"| {ph('gemm'):.0f} | {ph('conv_forward'):.0f} | {ph('conv_backward'):.0f} | {ph('norms'):.0f} | {rest:.0f} |")

conv = [f"{out}/onednn-conv-{r}.txt" for r in range(1, rounds + 1) if os.path.exists(f"{out}/onednn-conv-{r}.txt")]
if conv:
    print("\n### oneDNN 3x3 convolutions, batch 64 (round 1; ms)\n")
    print("```")
    print(open(conv[0]).read().rstrip())
    print("```")
