#!/usr/bin/env bash
# A rank that exits without MPI_Finalize mid-run (a crash that unwinds, an uncaught error) must also end the whole
# job quickly with a non-zero status.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
mpirun_for 2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(now_seconds)
set +e
timeout -k 5 30 "${MPIRUN[@]}" "$CONTROLNET" comm-check --repeats 2 --die-rank 0 --die-after-seconds 2 \
    --die-how exit >"$log" 2>&1
status=$?
set -e
elapsed=$(echo "$(now_seconds) - $start" | bc)
cat "$log"
echo "exit status $status after $elapsed s"

# 124: timeout's TERM ended a hung mpirun (a KILL after the grace period shows as elapsed >= 30 below; 137 on its
# own is only mpirun passing on the killed rank's status).
[ "$status" -ne 124 ] || fail "job hung until timeout stopped it"
[ "$status" -ne 0 ] || fail "job exited 0 although rank 0 exited without finalising"
(( $(echo "$elapsed < 30" | bc) )) || fail "job took $elapsed s to fail (limit 30 s)"
grep -q "rank 0 dies now (exit)" "$log" || fail "rank 0 never reached its death point; the test proved nothing"
echo "PASS $(basename "$0")"
