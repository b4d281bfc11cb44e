# Sourced by the scripts that time ours against PyTorch (bench-vs-torch.sh, bench-bf16-vs-torch.sh,
# bench-sample.sh) after they set ROUNDS, REF, BIN and OUT: refuses a missing build, reference or torch, or a bad
# ROUNDS, naming it; then exports what every rank needs (mpirun as root, OpenBLAS's core for this CPU, which ranks
# cannot re-exec for) and creates OUT. $1: the file REF must hold.
[[ -x "$BIN" ]] || { echo "error: $BIN missing; run scripts/setup.sh first" >&2; exit 1; }
[[ -f "$REF/$1" ]] || { echo "error: $REF/$1 not found; set REF to the directory holding it" >&2; exit 1; }
python3 -c 'import torch' 2>/dev/null || { echo "error: python3 cannot import torch; pip install /opt/wheels/torch-*.whl" >&2; exit 1; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "error: ROUNDS must be a positive integer, got '$ROUNDS'" >&2; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
CORE="$("$BIN" info --blas-coretype)"
if [[ -n "$CORE" ]]; then export OPENBLAS_CORETYPE="$CORE"; fi
mkdir -p "$OUT"
