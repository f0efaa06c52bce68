#!/usr/bin/env bash
# Shared body of dist_train.sh and dist_test.sh: torchrun MODULE on NPROC processes per node.
#   bash scripts/torchrun_launch.sh vsrt.train|vsrt.test NPROC CONFIG [args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and MASTER_PORT on every node.
# NCCL on CUDA machines, gloo on CPU (vsrt.utils.dist.init_dist picks it).
# The launcher is $TORCHRUN when set (e.g. TORCHRUN="/path/to/python -m torch.distributed.run"), else
# torchrun from PATH, else "python3 -m torch.distributed.run" (what the torchrun command runs).
set -euo pipefail
MODULE=$1
if [ $# -lt 3 ]; then
  echo "usage: bash dist_${MODULE#vsrt.}.sh NPROC CONFIG [--force_yml k=v ...]" >&2
  exit 2
fi
NPROC=$2
CONFIG="$(cd "$(dirname "$3")" && pwd)/$(basename "$3")"  # absolute: the run starts in the repository root
DEFAULT_PORT=$([ "$MODULE" = vsrt.test ] && echo 4322 || echo 4321)
shift 3
cd "$(dirname "$0")/.."
if [ -n "${TORCHRUN:-}" ]; then
  read -r -a LAUNCHER <<< "$TORCHRUN"
elif command -v torchrun > /dev/null; then
  LAUNCHER=(torchrun)
else
  LAUNCHER=(python3 -m torch.distributed.run)
fi
exec "${LAUNCHER[@]}" --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-$DEFAULT_PORT}" \
  --nproc_per_node="$NPROC" -m "$MODULE" -opt "$CONFIG" --launcher pytorch "$@"
