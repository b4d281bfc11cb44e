# A private single-node Slurm for tests: sourced (after lib.sh) by the NN-slurm*.sh scripts, never run on its own.
#
#   slurm_install        installs slurm-wlm and munge when a command is missing (apt-get update once first); exits
#                        the test with SKIP only when that is impossible (no apt-get, not root)
#   slurm_start DIR [CPUS [NODES]]
#                        a munge key, munged, slurm.conf, slurmctld and a slurmd per node, all under DIR, on free
#                        ports (NODES > 1: the extra nodes are this machine again, see below); exports
#                        SLURM_CONF so that sbatch, scontrol, squeue and scancel talk to this cluster only
#   slurm_stop           cancels this cluster's jobs, waits for them to leave, then stops exactly the daemons
#                        slurm_start started (by process id) and any process still carrying this cluster's
#                        SLURM_CONF in its environment (job leftovers); safe to call twice, from an EXIT trap
#   slurm_show_logs      the errors in the daemons' logs (for a failed test)
#   job_field JOB KEY    one field of `scontrol show job` (JobState, Reason, Restarts, ExitCode, ...)
#
# Nothing outside DIR is written, no system service is started or stopped, and no process is signalled that this
# file did not start (or that a job of this cluster did not start).

SLURM_DIR=
SLURM_TEST_CONF=
SLURM_DAEMON_PIDS=()
# The node is this machine under its own host name, so that mpirun sees its allocation as local and starts the ranks
# itself, as on the first node of any job.
SLURM_NODE=$(hostname -s)
SLURM_NODES=()
SLURM_T0=$(date +%s%3N)

# slurm_elapsed: seconds since this file was sourced, with one decimal.
slurm_elapsed() {
    local ms=$(($(date +%s%3N) - SLURM_T0))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# slurm_say: a line stamped with slurm_elapsed, for timelines in CI logs.
slurm_say() {
    printf '[%6ss] %s\n' "$(slurm_elapsed)" "$*"
}

slurm_install() {
    local missing=() cmd
    for cmd in slurmctld slurmd munged sbatch scontrol squeue scancel sinfo perl; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "SKIP $(basename "$0"): ${missing[*]} missing and cannot be installed here (needs root and apt-get)"
        exit 0
    fi
    echo "installing slurm-wlm munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Without a policy-rc.d saying no, the packages' scripts would start a system munged (and try slurmctld and
    # slurmd): processes this test did not start. Docker images have one; elsewhere one is put in place meanwhile.
    local policy=/usr/sbin/policy-rc.d placed=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# placed by %s while it installs slurm-wlm munge\nexit 101\n' "$0" >"$policy"
        chmod 755 "$policy"
        placed=1
    fi
    timeout 300 apt-get update -qq >/dev/null || rc=$?
    [ "$rc" != 0 ] || timeout 900 apt-get install -y -qq --no-install-recommends slurm-wlm munge perl >/dev/null || rc=$?
    [ "$placed" = 0 ] || rm -f "$policy"
    [ "$rc" = 0 ] || fail "apt-get update / install slurm-wlm munge failed (status $rc)"
    for cmd in slurmctld slurmd munged sbatch scontrol squeue scancel sinfo perl; do
        command -v "$cmd" >/dev/null || fail "$cmd still missing after installing slurm-wlm munge"
    done
}

# free_port [TAKEN...]: a TCP port nothing listens on and not among TAKEN (from a random start, so that parallel
# runs rarely collide).
free_port() {
    local port=$((20000 + RANDOM % 20000)) tries
    for tries in $(seq 200); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && [[ " $* " != *" $port "* ]]; then
            echo "$port"
            return
        fi
        port=$((port + 1))
    done
    fail "no free TCP port found"
}

# slurm_start DIR [CPUS [NODES]]: a cluster of NODES (default 1) nodes with CPUS (default 8) CPUs each, all of them
# this machine: the first under its own host name (so that mpirun sees it as local and starts its ranks itself,
# as on the first node of any job), the others as node2, node3... (so that mpirun starts an orted there through
# srun, as on every other node of a multi-node job), each with its own slurmd. The nodes claim CPUS whatever the
# machine has (SlurmdParameters=config_overrides), so that several test jobs run side by side.
slurm_start() {
    local dir=$1 cpus=${2:-8} nodes=${3:-1} ctld_port slurmd_port port ports i n node_lines="" names=$SLURM_NODE
    SLURM_DIR=$dir
    mkdir -p "$dir/state" "$dir/munge"
    # munged insists that everyone may reach its socket: search permission on DIR and its parent (often mktemp's).
    chmod a+x "$(dirname "$dir")" "$dir"
    chmod 755 "$dir/munge"
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --foreground --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
        >"$dir/munged.out" 2>&1 &
    SLURM_DAEMON_PIDS+=($!)
    for i in $(seq 100); do [ -S "$dir/munge/munge.sock" ] && break; sleep 0.1; done
    [ -S "$dir/munge/munge.sock" ] || { cat "$dir/munged.out" "$dir/munge/munged.log" 2>/dev/null; fail "munged did not start"; }

    ctld_port=$(free_port)
    slurmd_port=$(free_port "$ctld_port")
    ports="$ctld_port $slurmd_port"
    node_lines="NodeName=$SLURM_NODE NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN"
    SLURM_NODES=("$SLURM_NODE")
    for ((n = 2; n <= nodes; n++)); do
        port=$(free_port $ports)
        ports+=" $port"
        node_lines+=$'\n'"NodeName=node$n NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=$port CPUs=$cpus State=UNKNOWN"
        SLURM_NODES+=("node$n")
        names+=",node$n"
    done
    : >"$dir/plugstack.conf"
    # slurmd always initialises a cgroup plugin, and cgroup/v2's (what "autodetect" picks on a cgroup v2 system, as
    # in most containers) needs a cgroup tree delegated by systemd. Nothing here uses cgroups (proctrack/linuxproc,
    # task/none), and cgroup/v1's initialisation touches nothing, so it is named outright.
    echo "CgroupPlugin=cgroup/v1" >"$dir/cgroup.conf"
    cat >"$dir/slurm.conf" <<EOF
# A private single-node test cluster (scripts/mpi-tests/lib-slurm.sh); everything lives under $dir.
ClusterName=cntest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
# %n: per node, or a second slurmd would take the first one's pid file for its own and shut it down.
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
SlurmctldDebug=debug
SlurmdDebug=debug
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobRequeue=1
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
# Slurm's defaults, written out because cluster/train.sbatch is built around them.
KillWait=30
MinJobAge=600
SlurmdParameters=config_overrides
$node_lines
PartitionName=test Nodes=$names Default=YES MaxTime=INFINITE State=UP
EOF
    SLURM_TEST_CONF=$dir/slurm.conf
    export SLURM_CONF=$SLURM_TEST_CONF
    slurmctld -D -f "$SLURM_CONF" >"$dir/slurmctld.out" 2>&1 &
    SLURM_DAEMON_PIDS+=($!)
    for n in "${SLURM_NODES[@]}"; do
        slurmd -D -N "$n" -f "$SLURM_CONF" >"$dir/slurmd-$n.out" 2>&1 &
        SLURM_DAEMON_PIDS+=($!)
    done
    for i in $(seq 300); do
        [ "$(timeout 5 sinfo -h -o %T 2>/dev/null | sort -u)" = idle ] && break
        sleep 0.1
    done
    if [ "$(timeout 5 sinfo -h -o %T 2>/dev/null | sort -u)" != idle ]; then
        tail -20 "$dir"/*.log "$dir"/*.out 2>/dev/null
        fail "the test cluster did not come up (node states: $(timeout 5 sinfo -h -o '%n %T' 2>&1 | tr '\n' ' '))"
    fi
    slurm_say "slurm $(slurmctld -V | cut -d' ' -f2) up: slurmctld :$ctld_port, munged, ${#SLURM_NODES[@]} node(s) ${SLURM_NODES[*]} with $cpus CPUs each (daemon pids ${SLURM_DAEMON_PIDS[*]})"
}

# conf_processes: processes of this cluster's jobs (batch scripts, mpirun, ranks): those whose environment has a
# SLURM_JOB_ID and this cluster's slurm.conf.
conf_processes() {
    local p env
    [ -n "$SLURM_TEST_CONF" ] || return 0
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
        env=$({ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null) || continue
        grep -qxF "SLURM_CONF=$SLURM_TEST_CONF" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env" && echo "$p"
    done
    return 0
}

slurm_stop() {
    [ -n "$SLURM_DIR" ] || return 0
    local pid i left
    if [ ${#SLURM_DAEMON_PIDS[@]} -gt 0 ] && kill -0 "${SLURM_DAEMON_PIDS[1]:-0}" 2>/dev/null; then
        timeout 10 scancel --full --signal=KILL --state=RUNNING -u "$(id -un)" >/dev/null 2>&1 || true
        timeout 10 scancel -u "$(id -un)" >/dev/null 2>&1 || true
        for i in $(seq 150); do  # until no job is running, suspended or completing (30 s at most)
            [ -z "$(timeout 5 squeue -h -t R,S,CG -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    for pid in "${SLURM_DAEMON_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${SLURM_DAEMON_PIDS[@]}"; do
        timeout 15 tail --pid="$pid" -f /dev/null || { kill -KILL "$pid" 2>/dev/null || true; }
    done
    left=$(conf_processes)
    if [ -n "$left" ]; then
        echo "slurm_stop: killing leftover job processes of this cluster: $left"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
    fi
    SLURM_DAEMON_PIDS=()
    SLURM_DIR=
    SLURM_TEST_CONF=
}

# slurm_show_logs: the errors in the daemons' logs, for a failed test.
slurm_show_logs() {
    local log
    [ -n "$SLURM_DIR" ] || return 0
    for log in "$SLURM_DIR"/slurm*.log; do
        echo "== last errors in $log"
        grep -iE 'error|fatal|revoked|refused' "$log" 2>/dev/null | tail -20 || true
    done
}

# job_field JOB KEY: KEY's value in `scontrol -o show job JOB` (empty when the job is unknown).
job_field() {
    timeout 10 scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}
