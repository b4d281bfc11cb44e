#!/usr/bin/env bash
# Four ranks on this 2-core machine (oversubscribed), and three ranks: a world size whose 1/size is inexact,
# so the average's division is checked for rounding too.
source "$(dirname "$0")/lib.sh"
ensure_controlnet

for np in 4 3; do
    mpirun_for "$np"
    out=$(timeout -k 5 180 "${MPIRUN[@]}" "$CONTROLNET" comm-check --repeats 10 --loop-seconds 1) \
        || fail "comm-check -np $np failed: $out"
    echo "$out"
    grep -q "^comm-check ok: world $np, backend mpi" <<<"$out" || fail "no success line for world $np in: $out"
done
echo "PASS $(basename "$0")"
