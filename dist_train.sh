#!/usr/bin/env bash
# Distributed training with torchrun: bash dist_train.sh NPROC CONFIG [--auto_resume] [--force_yml k=v ...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and MASTER_PORT on every node; NCCL on CUDA, gloo on CPU.
exec bash "$(dirname "$0")/scripts/torchrun_launch.sh" vsrt.train "$@"
