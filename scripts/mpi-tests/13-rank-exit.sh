#!/usr/bin/env bash
# A rank that exits without MPI_Finalize mid-run (a crash that unwinds, an uncaught error) or calls
# Communicator.abort (MPI_Abort) must also end the whole job quickly with a non-zero status.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
mpirun_for 2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for how in exit abort; do
    start=$(now_seconds)
    set +e
    timeout -k 5 30 "${MPIRUN[@]}" "$CONTROLNET" comm-check --repeats 2 --die-rank 0 --die-after-seconds 2 \
        --die-how "$how" >"$log" 2>&1
    status=$?
    set -e
    elapsed=$(echo "$(now_seconds) - $start" | bc)
    cat "$log"
    echo "--die-how $how: exit status $status after $elapsed s"

    [ "$status" -ne 124 ] || fail "--die-how $how: job hung until timeout stopped it"
    [ "$status" -ne 0 ] || fail "--die-how $how: job exited 0 although rank 0 left early"
    (( $(echo "$elapsed < 30" | bc) )) || fail "--die-how $how: job took $elapsed s to fail (limit 30 s)"
    grep -q "rank 0 dies now ($how)" "$log" || fail "--die-how $how: rank 0 never reached its death point"
done
grep -q "aborting the job (code 4)" "$log" || fail "MPI_Abort did not print the rank's message"
echo "PASS $(basename "$0")"
