# Shared settings for the mpirun tests in this directory: sourced by each NN-*.sh, never run on its own.
# Every test exits non-zero on failure; scripts/test.sh runs them in name order.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONTROLNET=${CONTROLNET:-$REPO_ROOT/.build/release/controlnet}

# Flags every test run shares:
#   ob1 + vader/self: the shared-memory path of a single machine (no UCX/OFI probing, which only adds noise);
#   OPENBLAS_NUM_THREADS=1: one BLAS thread per rank, or ranks and BLAS threads fight over the cores;
#   --bind-to none: the test machine is shared with builds, so pinning ranks to cores only makes them wait.
MPIRUN_FLAGS=(--mca pml ob1 --mca btl self,vader -x OPENBLAS_NUM_THREADS=1 --bind-to none)
# Open MPI refuses to run as root unless told; containers and CI often run as root.
if [ "$(id -u)" = 0 ]; then
    MPIRUN_FLAGS+=(--allow-run-as-root)
fi

fail() {
    echo "FAIL $(basename "$0"): $*" >&2
    exit 1
}

# Builds the release binary once if it is missing (a no-op otherwise: rebuilding is the caller's job).
ensure_controlnet() {
    if [ ! -x "$CONTROLNET" ]; then
        echo "building $CONTROLNET" >&2
        (cd "$REPO_ROOT" && swift build -c release --product controlnet) >&2
    fi
    [ -x "$CONTROLNET" ] || fail "no executable at $CONTROLNET"
}

# mpirun_for NP: sets the array MPIRUN to the mpirun command line for NP ranks with the shared flags, so that
# callers can wrap it: timeout 60 "${MPIRUN[@]}" "$CONTROLNET" comm-check. More ranks than this machine's
# 2 cores need --oversubscribe.
mpirun_for() {
    local np=$1
    MPIRUN=(mpirun -np "$np" "${MPIRUN_FLAGS[@]}")
    if [ "$np" -gt 2 ]; then
        MPIRUN+=(--oversubscribe)
    fi
}

# now_seconds: wall clock with sub-second resolution, for elapsed-time assertions.
now_seconds() {
    date +%s.%N
}

# The training tests' environment: plain progress lines (mpirun gives ranks a pty), one BLAS thread per rank, and
# mpirun's consent to run as root.
training_env() {
    export CONTROLNET_PROGRESS=lines OPENBLAS_NUM_THREADS=1
    if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
}

# train_tiny_base DIR: a 30-step tiny base UNet (8x8 MNIST-5k) in DIR/unet.safetensors, for ControlNet runs.
# scripts/test.sh trains it once per test run and exports CONTROLNET_TEST_TINY_BASE; each test gets its own copy
# (so no test can disturb another's base), and a script run on its own trains one.
train_tiny_base() {
    mkdir -p "$1"
    if [ -n "${CONTROLNET_TEST_TINY_BASE:-}" ] && [ -f "$CONTROLNET_TEST_TINY_BASE" ]; then
        cp "$CONTROLNET_TEST_TINY_BASE" "$1/unet.safetensors"
        return
    fi
    "$CONTROLNET" train-base --config tiny --resize --data-dir "$REPO_ROOT/data" --max-steps 30 --batch-size 16 \
        --out "$1" >"$1.log" 2>&1 || { cat "$1.log"; fail "could not train the tiny base"; }
}

# scratch_dir: sets TMP to a fresh directory that is removed when the test exits (tests that must also stop
# background jobs set their own EXIT trap instead).
scratch_dir() {
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
}

# run_logged LOG WHAT CMD...: runs CMD (at most 120 s) with its output in LOG; on failure shows LOG and fails with
# "WHAT failed".
run_logged() {
    local log=$1 what=$2
    shift 2
    timeout -k 5 120 "$@" >"$log" 2>&1 || { cat "$log"; fail "$what failed"; }
}

# base_file_unchanged FILE SHA: the frozen base file on disk still has the SHA-256 it had before training.
base_file_unchanged() {
    local after
    after=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$2" = "$after" ] || fail "the base file changed on disk: $2 -> $after"
    echo "base file sha256 unchanged: $after"
}

# check_run_lines LOG NP: a ControlNet run's rank-0 log states an NP-rank MPI world, bit-identical replicas, an
# untouched frozen base and one all-reduce of the tiny ControlNet's 22064 floats per step.
check_run_lines() {
    local log=$1 np=$2
    grep -q "^replica check: all $np ranks hold bit-identical trainable weights (hash [0-9a-f]*)" "$log" \
        || fail "no replica-check line for $np ranks"
    grep -q "^frozen base unchanged: SHA-256 [0-9a-f]\{64\}" "$log" || fail "no frozen-base line"
    grep -q "^world: $np process(es) x 1 simulated = $np rank(s), backend mpi" "$log" \
        || fail "no world line for $np MPI ranks"
    grep -q "^all-reduce per step: 1 buffer of 22064 floats = 88256 bytes" "$log" \
        || fail "no (or another) all-reduce size line; expected 1 buffer of 22064 floats = 88256 bytes"
}
