#!/usr/bin/env bash
# Stopping a job on request, under real mpirun at np 2: SIGUSR1 to mpirun (which forwards it at once), SIGTERM to
# one rank, and SIGTERM to every rank during a long gradient accumulation. Each ends with exit 0 at the end of the
# step in flight (or of the next, if the signal lands after that step's stop agreement), a checkpoint, status.json
# "stopped" and no final weights; resuming finishes with the weights of an uninterrupted run. (SIGTERM or SIGINT to
# mpirun itself also leaves a checkpoint, but Open MPI treats them as an abort and mpirun exits 1 whatever the ranks
# did: cluster/README.md.)
source "$(dirname "$0")/lib.sh"
ensure_controlnet
training_env

scratch_dir

train_tiny_base "$TMP/base"
BASE=$TMP/base/unet.safetensors
# Batch 96 makes a tiny step take ~50-100 ms, long against the few ms mpirun takes to forward a signal.
TRAIN=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --batch-size 96 --log-every 1)
mpirun_for 2
NP2=("${MPIRUN[@]}")

"${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" --max-steps 30 --out "$TMP/whole" >"$TMP/whole.log" 2>&1 \
    || { cat "$TMP/whole.log"; fail "the uninterrupted run failed"; }

# stop_and_resume NAME HOW [TRAIN-ARGS...]: starts 30 steps, signals after step 10 (HOW: usr1-mpirun | term-rank),
# checks the stop, resumes and compares with the uninterrupted run.
stop_and_resume() {
    local name=$1 how=$2 out=$TMP/$1 status step_at_signal stopped_at
    shift 2
    "${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" "$@" --max-steps 30 --out "$out" >"$TMP/$name.log" 2>&1 &
    local job=$!
    for _ in $(seq 1 300); do [ -f "$out/metrics.jsonl" ] && [ "$(wc -l <"$out/metrics.jsonl")" -ge 10 ] && break; sleep 0.1; done
    case $how in
        usr1-mpirun) kill -USR1 "$job" ;;
        # Anchored at the binary: mpirun's own command line holds the same words.
        term-rank) pkill -TERM -f -n "^$CONTROLNET train-controlnet.*--out $out" ;;
    esac
    step_at_signal=$(wc -l <"$out/metrics.jsonl")
    set +e; wait "$job"; status=$?; set -e
    [ "$status" = 0 ] || { cat "$TMP/$name.log"; fail "$name: mpirun exited $status after the stop request"; }
    stopped_at=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["state"]=="stopped", s; print(s["step"])' "$out/status.json") \
        || fail "$name: status.json does not say stopped"
    echo "$name: signal after step $step_at_signal, stopped at step $stopped_at"
    # Rank 0 had logged step_at_signal steps when the signal was already sent, so it lands in step step_at_signal + 1
    # at the latest. The ranks agree on a stop before the gradient all-reduce, so a signal that lands after that
    # agreement (all-reduce, optimizer, the metrics line) is agreed one step later: + 2 is the bound, as in the probes.
    [ "$stopped_at" -le $((step_at_signal + 2)) ] || fail "$name: stopped at step $stopped_at, more than the step in flight and the next after $step_at_signal"
    [ ! -e "$out/controlnet.safetensors" ] || fail "$name: final weights written on a stop"
    "${NP2[@]}" "$CONTROLNET" "${TRAIN[@]}" "$@" --max-steps 30 --resume latest --out "$out" >"$TMP/$name-resume.log" 2>&1 \
        || { cat "$TMP/$name-resume.log"; fail "$name: the resume failed"; }
    grep -q "^RESUMING from .*step-0*$stopped_at at step $stopped_at of 30" "$TMP/$name-resume.log" || fail "$name: no RESUMING line"
    "$CONTROLNET" diff-weights "$TMP/whole/controlnet.safetensors" "$out/controlnet.safetensors" --tolerance 0 >/dev/null \
        || fail "$name: the resumed weights differ from the uninterrupted run"
}
stop_and_resume usr1 usr1-mpirun
stop_and_resume term-rank term-rank
# With 64 micro-steps per step a stop must not wait for them all: the step in flight is abandoned.
ACCUM=(train-controlnet --config tiny --resize --data-dir "$REPO_ROOT/data" --base "$BASE" --batch-size 8 --log-every 1
    --grad-accum 64 --max-steps 6)
"${NP2[@]}" "$CONTROLNET" "${ACCUM[@]}" --out "$TMP/accum-whole" >"$TMP/accum-whole.log" 2>&1 \
    || { cat "$TMP/accum-whole.log"; fail "the uninterrupted accumulation run failed"; }
"${NP2[@]}" "$CONTROLNET" "${ACCUM[@]}" --out "$TMP/accum" >"$TMP/accum.log" 2>&1 &
job=$!
for _ in $(seq 1 300); do [ -f "$TMP/accum/metrics.jsonl" ] && [ "$(wc -l <"$TMP/accum/metrics.jsonl")" -ge 2 ] && break; sleep 0.1; done
sleep 0.3
start=$(now_seconds)
pkill -TERM -f "^$CONTROLNET train-controlnet.*--out $TMP/accum\$"
wait "$job" || { cat "$TMP/accum.log"; fail "accumulation stop: mpirun failed"; }
elapsed=$(echo "$(now_seconds) - $start" | bc)
grep -q "stop requested during step" "$TMP/accum.log" || { cat "$TMP/accum.log"; fail "the step in flight was not abandoned"; }
step_seconds=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(r[1]["time_s"]-r[0]["time_s"])' "$TMP/accum-whole/metrics.jsonl")
echo "accumulation stop: exit 0 in $elapsed s after the signal (one step of 64 micro-steps takes $step_seconds s)"
"${NP2[@]}" "$CONTROLNET" "${ACCUM[@]}" --resume latest --out "$TMP/accum" >"$TMP/accum-resume.log" 2>&1 \
    || { cat "$TMP/accum-resume.log"; fail "the accumulation resume failed"; }
"$CONTROLNET" diff-weights "$TMP/accum-whole/controlnet.safetensors" "$TMP/accum/controlnet.safetensors" --tolerance 0 >/dev/null \
    || fail "the resumed accumulation run differs from the uninterrupted one"
echo "PASS $(basename "$0")"
