#!/usr/bin/env bash
# A rank killed by SIGKILL in the middle of real training (not the comm-check loop of 12-rank-death.sh) must end the
# np 2 job with a non-zero status within 30 s: the surviving rank may not sit in an all-reduce for ever, and no
# process of the job may be left behind.
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

TMP=$(mktemp -d)
job=
cleanup() {
    # Only if the test itself failed half-way: never leave a training job running.
    if [ -n "$job" ] && kill -0 "$job" 2>/dev/null; then kill -KILL "$job" 2>/dev/null || true; fi
    for pid in $(pgrep -f -- "--out $TMP/run" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

train_tiny_base "$TMP/base"

mpirun_for 2
timeout -k 5 60 "${MPIRUN[@]}" "$CONTROLNET" train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" \
    --base "$TMP/base/unet.safetensors" --max-steps 100000 --batch-size 8 --log-every 1 \
    --out "$TMP/run" >"$TMP/run.log" 2>&1 &
job=$!

# Kill only once training is under way: a metrics record means both ranks are inside the step loop.
for _ in $(seq 300); do
    [ -s "$TMP/run/metrics.jsonl" ] && break
    kill -0 "$job" 2>/dev/null || { cat "$TMP/run.log"; fail "the job ended before training started"; }
    sleep 0.1
done
[ -s "$TMP/run/metrics.jsonl" ] || { cat "$TMP/run.log"; fail "no metrics record after 30 s"; }

# The ranks are the controlnet processes with this run's unique --out (mpirun's own command line starts with
# "mpirun"); Open MPI tells each its rank in the environment.
victim=
ranks=$(pgrep -f -- "^$CONTROLNET train-controlnet .*--out $TMP/run" || true)
for pid in $ranks; do
    rank=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    echo "pid $pid is rank ${rank:-?}"
    [ "$rank" = 1 ] && victim=$pid
done
[ -n "$victim" ] || fail "could not find rank 1 among the job's processes (${ranks:-none})"
records=$(wc -l <"$TMP/run/metrics.jsonl")
echo "killing rank 1 (pid $victim) with SIGKILL after $records metrics records"
start=$(now_seconds)
kill -KILL "$victim"
set +e
wait "$job"
status=$?
set -e
job=
elapsed=$(echo "$(now_seconds) - $start" | bc)
cat "$TMP/run.log" | grep -v '^step ' | tail -n 30
echo "mpirun exit status $status, $elapsed s after the kill"

[ "$status" -ne 124 ] || fail "the job hung until timeout stopped it"
[ "$status" -ne 0 ] || fail "the job exited 0 although rank 1 was killed"
(( $(echo "$elapsed < 30" | bc) )) || fail "the job took $elapsed s to fail after the kill (limit 30 s)"
grep -q "^done: " "$TMP/run.log" && fail "a 'done' line was printed although a rank died"
left=$(pgrep -f -- "--out $TMP/run" || true)
[ -z "$left" ] || fail "processes of the job are still running: $left"
echo "PASS $(basename "$0")"
