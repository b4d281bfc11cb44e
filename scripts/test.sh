#!/usr/bin/env bash
# The project's test command (README, CI): setup, every Swift test, then each scripts/mpi-tests/*.sh in order.
# Ends with the line "N passed, M failed" for the MPI scripts; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "test: $*"; }

bash scripts/setup.sh || { echo "test: ERROR: scripts/setup.sh failed" >&2; exit 1; }
if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

# The xctest process cannot re-execute itself with better OpenBLAS kernels the way `controlnet` does, so it
# gets them from its environment.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    coretype=$(.build/release/controlnet info --blas-coretype) \
        || { echo "test: ERROR: controlnet info --blas-coretype failed" >&2; exit 1; }
    if [ -n "$coretype" ]; then
        export OPENBLAS_CORETYPE=$coretype
        say "OPENBLAS_CORETYPE=$coretype (from controlnet info --blas-coretype)"
    else
        say "OpenBLAS picks fast kernels for this CPU by itself ($(.build/release/controlnet info | sed -n 's/^BLAS core: *\([^ ]*\).*/\1/p'))"
    fi
fi

status=0
say "swift test"
if swift test; then
    swift_result="passed"
else
    swift_result="FAILED"
    status=1
fi

passed=0
failed=0
failures=()
if [ -d scripts/mpi-tests ]; then
    # mpirun refuses to start as root without these (containers, CI).
    if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
    # The tiny base UNet the ControlNet tests train beside: trained once here, copied by each test (lib.sh).
    shared=$(mktemp -d)
    trap 'rm -rf "$shared"' EXIT
    say "training the tiny base UNet the MPI tests share"
    if OPENBLAS_NUM_THREADS=1 CONTROLNET_PROGRESS=lines .build/release/controlnet train-base --config tiny --resize \
        --data-dir data --max-steps 30 --batch-size 16 --out "$shared/base" >"$shared/base.log" 2>&1; then
        export CONTROLNET_TEST_TINY_BASE=$shared/base/unet.safetensors
    else
        cat "$shared/base.log"
        say "could not train the shared tiny base; each test trains its own"
    fi
    while IFS= read -r script; do
        say "$script"
        # stdin from /dev/null: mpirun reads stdin and would swallow the rest of this loop's script list.
        if bash "$script" </dev/null; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            failures+=("$script")
            say "FAILED: $script"
        fi
    done < <(find scripts/mpi-tests -maxdepth 1 -name '[0-9]*.sh' -type f | LC_ALL=C sort)
else
    say "no scripts/mpi-tests directory: no MPI tests to run"
fi

say "swift test $swift_result"
[ ${#failures[@]} -eq 0 ] || say "failed MPI tests: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
