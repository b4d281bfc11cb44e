# Helpers for the tests that break the 2-node namespace cluster (cluster/local-cluster.sh) while a job runs:
# start a job in the background, wait for a step, cut and restore the link between the nodes, stop a rank, wait
# for the end. Sourced after lib.sh; never run on its own.

# The namespaces' prefix; tests started by hand beside another cluster can pick their own.
CLUSTER_NAME=${CLUSTER_NAME:-cn}
export CLUSTER_NAME
CLUSTER_JOB=

# cluster_start LOG ARGS...: local-cluster.sh running controlnet ARGS in the background, output in LOG.
cluster_start() {
    local log=$1
    shift
    "$REPO_ROOT/cluster/local-cluster.sh" -- "$@" >"$log" 2>&1 &
    CLUSTER_JOB=$!
}

# cluster_stop: ends a job the test no longer needs (local-cluster.sh stops mpirun and removes the namespaces).
cluster_stop() {
    if [ -n "$CLUSTER_JOB" ] && kill -0 "$CLUSTER_JOB" 2>/dev/null; then
        kill -TERM "$CLUSTER_JOB" 2>/dev/null || true
        timeout 30 tail --pid="$CLUSTER_JOB" -f /dev/null || kill -KILL "$CLUSTER_JOB" 2>/dev/null || true
    fi
    CLUSTER_JOB=
}

# wait_for_step OUT STEP LOG: until OUT/metrics.jsonl has a record of step >= STEP (at most 120 s).
wait_for_step() {
    local out=$1 step=$2 log=$3 last
    for _ in $(seq 1200); do
        last=$(jq -r 'select(.step != null) | .step' "$out/metrics.jsonl" 2>/dev/null | tail -n 1 || true)
        [ -n "$last" ] && [ "$last" -ge "$step" ] && return 0
        kill -0 "$CLUSTER_JOB" 2>/dev/null || { cat "$log"; fail "the job ended before step $step"; }
        sleep 0.1
    done
    cat "$log"
    fail "no step $step within 120 s"
}

# link DOWN|UP: takes node2's end of the veth pair down or up, which cuts or restores every path between the nodes.
link() {
    ip netns exec "$CLUSTER_NAME-node2" ip link set cn-veth2 "$1"
    echo "$(date +%T.%N | cut -c1-12) link $1"
}

# rank_pid RANK OUT: the pid of the rank whose command line names OUT (Open MPI tells each its rank).
rank_pid() {
    local pid rank
    for pid in $(pgrep -f -- "^$CONTROLNET .*--out $2( |$)" || true); do
        rank=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
        [ "$rank" = "$1" ] && { echo "$pid"; return 0; }
    done
    return 1
}

# wait_for_end LIMIT: waits at most LIMIT s for the job; sets STATUS (124 if it was still running) and ELAPSED
# (seconds since START, which the caller set with now_seconds).
wait_for_end() {
    if timeout "$1" tail --pid="$CLUSTER_JOB" -f /dev/null; then
        set +e
        wait "$CLUSTER_JOB"
        STATUS=$?
        set -e
    else
        STATUS=124
    fi
    ELAPSED=$(echo "$(now_seconds) - $START" | bc)
}

# stall_records OUT: the stall records of OUT/metrics.jsonl, one compact JSON object a line.
stall_records() {
    jq -c 'select(.stall != null) | .stall' "$1/metrics.jsonl"
}

# timeline OUT T0 WHAT: when (seconds after T0, a Unix time) OUT's stall began, was first reported, ended.
timeline() {
    jq -r --argjson t0 "$2" --arg what "$3" 'def at(t): (t - $t0) * 10 | round / 10 | tostring + " s";
        select(.stall != null) | .stall
        | "\(.event) stall record (\($what)): began at \(at(.start_unix)), "
          + (if .event == "started" then "first reported at \(at(.start_unix + .seconds))"
             else "ended at \(at(.end_unix))" end)' "$1/metrics.jsonl"
}
