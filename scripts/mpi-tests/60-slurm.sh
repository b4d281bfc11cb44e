#!/usr/bin/env bash
# cluster/train.sbatch under a real Slurm: a private cluster of two nodes, both this machine (lib-slurm.sh), one
# case per way a job is stopped, all side by side. Each case must end COMPLETED at the last step with final weights
# bit-identical to an uninterrupted run of the same steps at the same world size (2 ranks):
#   warning   --signal=B:TERM@75 --time=2: TERM to the batch shell only; it forwards USR1 through mpirun
#   timelimit --time=1, no TERM warning: at the hard limit Slurm sends CONT+TERM to every process, mpirun and the
#             ranks included, and KILL KillWait (30 s) later; the ranks must checkpoint and the script requeue
#             before that
#   full      scancel -s TERM --full: TERM to the batch shell's process group
#   resubmit  --time=1 --no-requeue: the job ends TIMEOUT with a checkpoint; the same command submitted again
#             must resume from it
#   requeue   scontrol requeue of the running job (what a preemption with PreemptMode=REQUEUE does too): Slurm
#             terminates it (CONT+TERM to every process) and requeues it itself; the script must not requeue again
#   cancel    scancel (no signal option): the terminate, state CANCELLED; the ranks checkpoint but the script must
#             not requeue a cancelled job; submitted again, it resumes
#   early     scancel --batch -s TERM as soon as the job runs, before the ranks can take a USR1 (it would kill
#             them): the script must hold the stop until they can, and they stop after their first step
#   refuse    --time=1 with a 60 s warning: refused before any work (the job would requeue itself forever)
#   2nodes    the warning case with one rank on each node: rank 1 runs under an orted that mpirun starts through
#             srun, as on every node but the first of a multi-node job
# (The hard limit on two nodes is not a case: srun, which started the orted, is in the batch step, gets TERM too and
# answers it with SIGKILL to the orted's step, so rank 1 dies without a checkpoint. cluster/README.md.)
# The others run on the first node (mpirun starts both ranks itself). A requeued job waits 120 s (cred_expire)
# before it may start; the test lifts that with StartTime=now. So that the runs cannot finish before Slurm acts,
# each job's ranks are frozen (SIGSTOP) after a few steps: Slurm's own CONT wakes them at a time limit; for a
# signal to the batch shell only, the test wakes them once the script says it forwarded the stop. The state
# timeline of each job (scontrol show job; no accounting is configured) is printed at the end.
# Parts marked CONTRACT need the trainer's OUT/status.json (state complete/stopped, no final weights on a stop);
# with an older trainer they are skipped with a NOTE.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-slurm.sh"
ensure_controlnet
training_env
slurm_install

TMP=$(mktemp -d)
pids=()
cleanup() {
    local status=$? pid
    # The case subshells, if the test is interrupted while they run.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    [ "$status" = 0 ] || slurm_show_logs
    slurm_stop
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

STEPS=200
FREEZE_AT=20
train_tiny_base "$TMP/base"
TRAIN=(--config tiny --resize --data-dir "$REPO_ROOT/data" --base "$TMP/base/unet.safetensors" --batch-size 8
    --lr 1e-3 --log-every 1 --max-steps "$STEPS")
mpirun_for 2
run_logged "$TMP/reference.log" "the uninterrupted $STEPS-step run" "${MPIRUN[@]}" "$CONTROLNET" train-controlnet \
    "${TRAIN[@]}" --out "$TMP/reference"
# CONTRACT: a trainer that writes OUT/status.json writes it for every run, the reference's too.
CONTRACT=0
if [ -f "$TMP/reference/status.json" ]; then
    CONTRACT=1
else
    echo "NOTE: this trainer writes no status.json: the CONTRACT checks are skipped and train.sbatch uses its fallback"
fi

slurm_start "$TMP/slurm" 20 2

# submit CASE SIGNAL_LEAD SBATCH-OPTIONS...: submits cluster/train.sbatch for 2 ranks on the first node (unless
# SBATCH-OPTIONS say otherwise), output in $TMP/CASE.log, run directory $TMP/CASE; prints the job id.
submit() {
    local name=$1 lead=$2
    shift 2
    REPO_ROOT=$REPO_ROOT CONTROLNET=$CONTROLNET SIGNAL_LEAD=$lead timeout 30 sbatch --parsable --job-name="$name" --nodes=1 --ntasks-per-node=2 \
        --nodelist="$SLURM_NODE" --cpus-per-task=1 --output="$TMP/$name.log" --chdir="$TMP" "$@" \
        "$REPO_ROOT/cluster/train.sbatch" "${TRAIN[@]}" --out "$TMP/$name" || fail "$name: sbatch failed"
}
TWO_NODES=(--nodes=2 --ntasks-per-node=1 --nodelist="${SLURM_NODES[0]},${SLURM_NODES[1]}")

# look CASE JOB: one `scontrol show job`; sets STATE, REASON, RESTARTS and EXIT, and appends a line to the case's
# timeline when one of them changed.
look() {
    local fields now
    fields=$(timeout 10 scontrol -o show job "$2" 2>/dev/null | tr ' ' '\n') || true
    STATE=$(sed -n 's/^JobState=//p' <<<"$fields")
    REASON=$(sed -n 's/^Reason=//p' <<<"$fields")
    RESTARTS=$(sed -n 's/^Restarts=//p' <<<"$fields")
    EXIT=$(sed -n 's/^ExitCode=//p' <<<"$fields")
    now="job $2: $STATE reason=$REASON restarts=$RESTARTS exit=$EXIT"
    if [ "$now" != "${LAST_LOOK:-}" ]; then
        printf '%-12s [%6ss] %s\n' "$1" "$(slurm_elapsed)" "$now" >>"$TMP/$1.timeline"
        LAST_LOOK=$now
    fi
}

# await CASE JOB SECONDS WHAT CONDITION: looks at JOB every 0.25 s until CONDITION (evaluated; $name is CASE) holds.
await() {
    local name=$1 job=$2 deadline=$(($(date +%s) + $3)) what=$4
    shift 4
    while :; do
        look "$name" "$job"
        if eval "$*"; then return 0; fi
        [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$TMP/$name.log"; fail "$name: job $job not $what after $3 s (state $STATE, reason $REASON)"; }
        sleep 0.25
    done
}

records() {  # metrics records the run in $TMP/$1 has written so far
    if [ -f "$TMP/$1/metrics.jsonl" ]; then wc -l <"$TMP/$1/metrics.jsonl"; else echo 0; fi
}

rank_pids() {
    pgrep -f -- "^$CONTROLNET train-controlnet .*--out $TMP/$1( |$)" || true
}

# freeze CASE JOB: once the run has FREEZE_AT steps, SIGSTOP its 2 ranks (Slurm's CONT or the test's wakes them).
freeze() {
    local pids
    await "$1" "$2" 60 "training $FREEZE_AT steps" \
        '{ [ "$STATE" = RUNNING ] && [ "$(records "$name")" -ge $FREEZE_AT ]; } || ! [[ $STATE =~ ^(PENDING|RUNNING)$ ]]'
    pids=$(rank_pids "$1")
    [ "$STATE" = RUNNING ] && [ "$(wc -w <<<"$pids")" = 2 ] || fail "$1: expected 2 running ranks to freeze, found '$pids' (state $STATE)"
    # shellcheck disable=SC2086
    kill -STOP $pids
    printf '%-12s [%6ss] ranks %s frozen after %s steps\n' "$1" "$(slurm_elapsed)" "$(echo $pids)" "$(records "$1")" >>"$TMP/$1.timeline"
    FROZEN=$pids
}

thaw() {
    # shellcheck disable=SC2086
    kill -CONT $FROZEN 2>/dev/null || true
    printf '%-12s [%6ss] ranks woken by the test\n' "$1" "$(slurm_elapsed)" >>"$TMP/$1.timeline"
}

# stopped_state CASE: CONTRACT checks on a run that stopped and waits to be restarted.
stopped_state() {
    local out=$TMP/$1 state step
    [ "$CONTRACT" = 1 ] || return 0
    state=$(jq -r .state "$out/status.json")
    step=$(jq -r .step "$out/status.json")
    [ "$state" = stopped ] || fail "$1: status.json says '$state' after the stop, expected stopped"
    [ "$step" -lt "$STEPS" ] || fail "$1: stopped at step $step, not before $STEPS"
    [ -d "$(jq -r .checkpoint "$out/status.json")" ] || fail "$1: status.json names no existing checkpoint"
    [ ! -e "$out/controlnet.safetensors" ] || fail "$1: final weights written by a stopped run"
}

# restart CASE JOB SECONDS: within SECONDS the job is requeued and waits for its begin time; start it now and let it
# finish.
restart() {
    await "$1" "$2" "$3" "requeued (PENDING, BeginTime)" '[ "$STATE" = PENDING ] && [ "$REASON" = BeginTime ]'
    stopped_state "$1"
    # slurmd refuses a launch whose credential is not newer (in whole seconds) than the revocation of the job's last
    # one: the 120 s exist for that. Two seconds are enough on one machine.
    sleep 2
    timeout 10 scontrol update JobId="$2" StartTime=now || fail "$1: scontrol update StartTime=now failed"
    await "$1" "$2" 90 COMPLETED '[ "$STATE" = COMPLETED ] || [ "$STATE" = FAILED ] || [ "$STATE" = TIMEOUT ] || [ "$STATE" = CANCELLED ]'
    [ "$STATE" = COMPLETED ] || { cat "$TMP/$1.log"; fail "$1: job $2 ended $STATE after its restart"; }
    [ "$RESTARTS" = 1 ] || fail "$1: job $2 restarted $RESTARTS times, expected once"
}

# finished CASE: the run ended at the last step, bit-identical to the reference, and its log tells the story.
finished() {
    local out=$TMP/$1 log=$TMP/$1.log
    grep -q "^train.sbatch .*: no checkpoint under $out: starting from scratch" "$log" || fail "$1: no 'starting from scratch' line"
    grep -q "^train.sbatch .*: RESUMING: newest checkpoint $out/checkpoints/step-" "$log" || fail "$1: no RESUMING line"
    if [ "$CONTRACT" = 1 ]; then
        grep -q "^RESUMING from $out/checkpoints/step-[0-9]* at step [0-9]* of $STEPS," "$log" \
            || fail "$1: the trainer did not say RESUMING"
        grep -q "^stopped at step [0-9]* of $STEPS on request: checkpoint step-[0-9]* written, no final weights" "$log" \
            || fail "$1: the trainer did not say it stopped"
    else
        grep -q "^resumed from $out/checkpoints/step-[0-9]* at step [0-9]*," "$log" || fail "$1: the trainer did not resume"
    fi
    grep -qE "^checkpoint step-[0-9]* written in .* \(stop requested\)$|^stop requested during step" "$log" \
        || fail "$1: no stop checkpoint"
    grep -q "^train.sbatch .*: run complete" "$log" || fail "$1: the script did not see the run complete"
    if [ "$CONTRACT" = 1 ]; then
        [ "$(jq -r '"\(.state) \(.step) \(.total_steps)"' "$out/status.json")" = "complete $STEPS $STEPS" ] \
            || fail "$1: status.json is not complete at step $STEPS: $(cat "$out/status.json")"
    fi
    "$CONTROLNET" diff-weights "$TMP/reference/controlnet.safetensors" "$out/controlnet.safetensors" >"$TMP/$1.diff" \
        || fail "$1: diff-weights failed"
    [ "$(jq .bit_identical "$TMP/$1.diff")" = true ] || fail "$1: final weights differ from the uninterrupted run's: $(cat "$TMP/$1.diff")"
}

case_warning() {
    local job
    job=$(submit warning 75 --time=2 --signal=B:TERM@75)
    freeze warning "$job"
    # The warning comes 15-45 s after the start; the script forwards USR1, which waits, pending, in the frozen ranks.
    await warning "$job" 70 "forwarding the stop" 'grep -q "forwarding the stop to the ranks: USR1 to mpirun" "$TMP/warning.log"'
    thaw warning
    restart warning "$job" 30
    finished warning
}

case_timelimit() {
    local job
    job=$(submit timelimit 0 --time=1 --signal=B:CONT@1)
    freeze timelimit "$job"
    restart timelimit "$job" 150
    # The ranks stopped on Slurm's own TERM: nothing was forwarded to them.
    ! grep -q "forwarding the stop to the ranks" "$TMP/timelimit.log" || fail "timelimit: the script forwarded a stop"
    grep -q "DUE TO TIME LIMIT" "$TMP/timelimit.log" || fail "timelimit: no time-limit line from slurmstepd"
    finished timelimit
}

case_full() {
    local job
    job=$(submit full 180 --time=10)
    freeze full "$job"
    timeout 10 scancel --signal=TERM --full "$job" || fail "full: scancel failed"
    printf '%-12s [%6ss] scancel --signal=TERM --full\n' full "$(slurm_elapsed)" >>"$TMP/full.timeline"
    await full "$job" 30 "forwarding the stop" 'grep -q "forwarding the stop to the ranks: USR1 to mpirun" "$TMP/full.log"'
    thaw full
    restart full "$job" 30
    finished full
}

case_resubmit() {
    local job job2
    job=$(submit resubmit 0 --time=1 --signal=B:CONT@1 --no-requeue)
    freeze resubmit "$job"
    await resubmit "$job" 150 TIMEOUT '[ "$STATE" = TIMEOUT ]'
    grep -q "COULD NOT REQUEUE job $job" "$TMP/resubmit.log" || fail "resubmit: the script did not report the refused requeue"
    stopped_state resubmit
    job2=$(submit resubmit 0 --time=1 --signal=B:CONT@1 --no-requeue)
    LAST_LOOK=
    await resubmit "$job2" 90 COMPLETED '[ "$STATE" = COMPLETED ] || [ "$STATE" = FAILED ] || [ "$STATE" = TIMEOUT ]'
    [ "$STATE" = COMPLETED ] || { cat "$TMP/resubmit.log"; fail "resubmit: job $job2 ended $STATE"; }
    finished resubmit
}

case_requeue() {
    local job
    job=$(submit requeue 180 --time=10)
    freeze requeue "$job"
    timeout 10 scontrol requeue "$job" || fail "requeue: scontrol requeue failed"
    printf '%-12s [%6ss] scontrol requeue\n' requeue "$(slurm_elapsed)" >>"$TMP/requeue.timeline"
    restart requeue "$job" 30
    grep -q "Slurm has requeued the job itself" "$TMP/requeue.log" || fail "requeue: the script did not see Slurm's requeue"
    ! grep -q "forwarding the stop to the ranks" "$TMP/requeue.log" || fail "requeue: the script forwarded a stop"
    finished requeue
}

case_cancel() {
    local job job2
    job=$(submit cancel 180 --time=10)
    freeze cancel "$job"
    timeout 10 scancel "$job" || fail "cancel: scancel failed"
    printf '%-12s [%6ss] scancel\n' cancel "$(slurm_elapsed)" >>"$TMP/cancel.timeline"
    await cancel "$job" 60 CANCELLED '[ "$STATE" = CANCELLED ]'
    grep -q "the job was cancelled\|cancelled (or preempted with PreemptMode=CANCEL), so not requeued" "$TMP/cancel.log" \
        || fail "cancel: the script did not say it leaves a cancelled job alone"
    [ "$RESTARTS" = 0 ] || fail "cancel: the cancelled job was requeued"
    stopped_state cancel
    job2=$(submit cancel 180 --time=10)
    LAST_LOOK=
    await cancel "$job2" 90 COMPLETED '[ "$STATE" = COMPLETED ] || [ "$STATE" = FAILED ] || [ "$STATE" = TIMEOUT ]'
    [ "$STATE" = COMPLETED ] || { cat "$TMP/cancel.log"; fail "cancel: job $job2 ended $STATE"; }
    finished cancel
}

case_early() {
    local job
    job=$(submit early 180 --time=10)
    await early "$job" 60 RUNNING '[ "$STATE" != PENDING ]'
    timeout 10 scancel --batch --signal=TERM "$job" || fail "early: scancel failed"
    printf '%-12s [%6ss] scancel --batch --signal=TERM\n' early "$(slurm_elapsed)" >>"$TMP/early.timeline"
    restart early "$job" 60
    grep -q "forwarding the stop to the ranks: USR1 to mpirun" "$TMP/early.log" || fail "early: the stop was not forwarded"
    finished early
}

case_refuse() {
    local job
    job=$(submit refuse 60 --time=1 --signal=B:TERM@60)
    await refuse "$job" 60 FAILED '! [[ $STATE =~ ^(PENDING|RUNNING|COMPLETING)$ ]]'
    [ "$STATE" = FAILED ] || fail "refuse: job $job ended $STATE, expected FAILED"
    grep -q "ERROR: time limit 60s, warning 60s (+30 s) before it" "$TMP/refuse.log" || fail "refuse: no refusal line"
    [ ! -e "$TMP/refuse/checkpoints" ] && ! pgrep -f -- "--out $TMP/refuse( |$)" >/dev/null \
        || fail "refuse: training started"
}

case_2nodes() {
    local job
    job=$(submit 2nodes 75 "${TWO_NODES[@]}" --time=2 --signal=B:TERM@75)
    freeze 2nodes "$job"
    await 2nodes "$job" 70 "forwarding the stop" 'grep -q "forwarding the stop to the ranks: USR1 to mpirun" "$TMP/2nodes.log"'
    thaw 2nodes
    restart 2nodes "$job" 30
    finished 2nodes
}

start=$(now_seconds)
names=(warning timelimit full resubmit requeue cancel early refuse 2nodes)
for name in "${names[@]}"; do
    ("case_$name") &
    pids+=($!)
done
failed=()
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
done
echo "== state timelines (t since the test started)"
cat "$TMP"/*.timeline
echo "== what train.sbatch said"
for name in "${names[@]}"; do
    grep -h '^train.sbatch' "$TMP/$name.log" 2>/dev/null | sed "s/^/$(printf '%-12s' "$name") /" || true
done
for name in "${failed[@]}"; do
    echo "== $name.log"
    cat "$TMP/$name.log" 2>/dev/null || true
done
[ ${#failed[@]} -eq 0 ] || fail "failed: ${failed[*]}"
left=$(conf_processes)
[ -z "$left" ] || fail "processes of finished jobs are still running: $left"
echo "all ${#names[@]} cases passed (all but refuse COMPLETED at step $STEPS, bit-identical to the uninterrupted run) in $(awk -v a="$start" -v b="$(now_seconds)" 'BEGIN { printf "%.0f", b - a }') s"
echo "PASS $(basename "$0")"
