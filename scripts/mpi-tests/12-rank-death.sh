#!/usr/bin/env bash
# A rank that dies by SIGKILL mid-run (the OOM killer, a lost node) must end the whole job quickly with a
# non-zero status, not leave the surviving rank blocked in an all-reduce for ever.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
mpirun_for 2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(now_seconds)
set +e
timeout -k 5 30 "${MPIRUN[@]}" "$CONTROLNET" comm-check --repeats 2 --die-rank 1 --die-after-seconds 2 \
    --die-how kill >"$log" 2>&1
status=$?
set -e
elapsed=$(echo "$(now_seconds) - $start" | bc)
cat "$log"
echo "exit status $status after $elapsed s"

# 124: timeout's TERM ended a hung mpirun (a KILL after the grace period shows as elapsed >= 30 below; 137 on its
# own is only mpirun passing on the killed rank's status).
[ "$status" -ne 124 ] || fail "job hung until timeout stopped it"
[ "$status" -ne 0 ] || fail "job exited 0 although rank 1 was killed"
(( $(echo "$elapsed < 30" | bc) )) || fail "job took $elapsed s to fail (limit 30 s)"
grep -q "rank 1 dies now (kill)" "$log" || fail "rank 1 never reached its death point; the test proved nothing"
grep -q "comm-check ok" "$log" && fail "a success line was printed although a rank died"
echo "PASS $(basename "$0")"
