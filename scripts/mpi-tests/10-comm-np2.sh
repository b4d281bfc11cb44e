#!/usr/bin/env bash
# Two ranks over shared memory: every Communicator operation is checked by `controlnet comm-check`, including
# the chunked (Int32-sized pieces) path, a checked all-reduce loop, odd counts, and a run that must fail.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
mpirun_for 2

out=$(timeout -k 5 120 "${MPIRUN[@]}" "$CONTROLNET" comm-check --repeats 20 --loop-seconds 2) \
    || fail "comm-check -np 2 failed: $out"
echo "$out"
grep -q "^comm-check ok: world 2, backend mpi" <<<"$out" || fail "no success line for world 2 / mpi in: $out"

# Counts of 1 and an odd prime: edge cases for the chunking and the division.
for count in 1 1000003; do
    out=$(timeout -k 5 120 "${MPIRUN[@]}" "$CONTROLNET" comm-check --count "$count" --repeats 3) \
        || fail "comm-check --count $count failed: $out"
    grep -q "^comm-check ok: world 2, backend mpi, .* of $count floats" <<<"$out" || fail "bad output: $out"
done

# The check itself must be able to fail: a --die-rank outside the job is reported as a failure by every rank.
if timeout -k 5 120 "${MPIRUN[@]}" "$CONTROLNET" comm-check --count 100 --repeats 1 --die-rank 7 >/dev/null 2>&1; then
    fail "comm-check with an impossible --die-rank exited 0"
fi
echo "PASS $(basename "$0")"
