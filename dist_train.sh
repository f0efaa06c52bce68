#!/usr/bin/env bash
# Distributed training with torchrun: bash dist_train.sh NPROC CONFIG [vsrt.train args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and MASTER_PORT on every node.
# NCCL on CUDA machines, gloo on CPU (vsrt.utils.dist.init_dist picks it).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash dist_train.sh NPROC CONFIG [--auto_resume] [--force_yml k=v ...]" >&2
  exit 2
fi
NPROC=$1
CONFIG="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"  # absolute: the run starts in the repository root
shift 2
cd "$(dirname "$0")"
exec torchrun --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-4321}" \
  --nproc_per_node="$NPROC" -m vsrt.train -opt "$CONFIG" --launcher pytorch "$@"
