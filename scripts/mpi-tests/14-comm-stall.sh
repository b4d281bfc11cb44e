#!/usr/bin/env bash
# The collective watchdog under comm-check on one machine, without training: (1) a rank that stops joining for
# 5 s (alive) makes rank 0 warn, naming that rank and what it is doing, then say the collective completed, and the
# job ends normally; (2) at np 4 rank 0 names the one rank missing and counts the others that joined; (3) a rank
# that stops joining for good ends the job within --collective-timeout + 10 s with an error naming the stalled
# operation and step, instead of hanging.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
mpirun_for 2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
LOOP=(comm-check --count 1000 --repeats 2 --sleep-rank 1 --sleep-after-seconds 1)

timeout -k 5 60 "${MPIRUN[@]}" "$CONTROLNET" "${LOOP[@]}" --sleep-seconds 5 --loop-seconds 7 \
    --stall-warning 1.5 --collective-timeout 20 >"$log" 2>&1 || { cat "$log"; fail "the recovering run failed"; }
cat "$log"
grep -q "^comm-check ok: world 2" "$log" || fail "no success line after a recovered stall"
grep -q "^\[rank 0\] warning: stalled for [0-9.]* s in all-reduce (average of 1000 floats) #[0-9]* at step [0-9]*; not joined: rank 1 on [^ ]* (computing at step [0-9]* for " "$log" \
    || fail "rank 0 did not warn naming rank 1 as computing (alive, not joined)"
[ "$(grep -c '^\[rank 0\] warning: stalled for' "$log")" -ge 2 ] || fail "rank 0 warned only once in a 5 s stall at 1.5 s"
grep -q "^\[rank 0\] warning: all-reduce (average of 1000 floats) #[0-9]* at step [0-9]* completed after [0-9.]* s stalled; the run continues" "$log" \
    || fail "rank 0 did not say the stalled collective completed"

mpirun_for 4
timeout -k 5 60 "${MPIRUN[@]}" "$CONTROLNET" comm-check --count 1000 --repeats 2 --sleep-rank 2 --sleep-after-seconds 1 \
    --sleep-seconds 4 --loop-seconds 6 --stall-warning 1.5 --collective-timeout 20 >"$log" 2>&1 \
    || { cat "$log"; fail "the recovering np 4 run failed"; }
grep "^\[rank 0\]" "$log"
grep -q "^\[rank 0\] warning: stalled for .*; not joined: rank 2 on [^ ]* (computing at step [0-9]* for [0-9.]* s); 2 of 3 other ranks joined;" "$log" \
    || fail "at np 4 rank 0 did not name rank 2 as the one missing and count the two that joined"
grep -q "^\[rank [13]\] warning: stalled for .*; rank 0 waits in it too;" "$log" || fail "ranks 1 and 3 did not warn"

mpirun_for 2
start=$(now_seconds)
set +e
timeout -k 5 60 "${MPIRUN[@]}" "$CONTROLNET" "${LOOP[@]}" --sleep-seconds 600 --loop-seconds 600 \
    --stall-warning 1 --collective-timeout 4 >"$log" 2>&1
status=$?
set -e
elapsed=$(echo "$(now_seconds) - $start" | bc)
cat "$log"
echo "exit status $status after $elapsed s (timeout 4 s, after a 1 s start)"
[ "$status" -ne 124 ] || fail "the job hung until timeout(1) stopped it"
[ "$status" -ne 0 ] || fail "the job exited 0 although rank 1 never joined"
(( $(echo "$elapsed < 4 + 1 + 10" | bc) )) || fail "the job took $elapsed s to end (limit: 1 s start + 4 s + 10 s)"
grep -q "^\[rank 0\] error: all-reduce (average of 1000 floats) #[0-9]* at step [0-9]* has not completed after [0-9.]* s (timeout 4.0 s); not joined: rank 1 on [^ ]* (computing at step" "$log" \
    || fail "no timeout error from rank 0 naming the operation, the step and rank 1"
grep -q "comm-check ok" "$log" && fail "a success line was printed although the job timed out"
echo "PASS $(basename "$0")"
