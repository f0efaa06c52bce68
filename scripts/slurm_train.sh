#!/usr/bin/env bash
# Training on a SLURM cluster: one task per GPU, started by srun, joined by vsrt.train --launcher slurm.
#
#   sbatch --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 --cpus-per-task=8 \
#          scripts/slurm_train.sh options/train/MIAVSR/train_MIAVSR_REDS_x4.yml [--auto_resume]
#   bash scripts/slurm_train.sh PARTITION JOB_NAME GPUS CONFIG [args...]    # srun without sbatch
#
# Each task reads its rank from SLURM_PROCID, its GPU from SLURM_LOCALID and the world size from
# SLURM_NTASKS; the master address is the job's first node. MASTER_PORT (default: the option file's
# dist_params.port, else 29500) must be free on that node; pick another one per concurrent job.
#SBATCH --job-name=vsrt
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --output=slurm-%j.out
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

# Inside an allocation (sbatch): sbatch runs a copy of this file from the submission folder, so submit
# from the repository root (or pip install -e . first); srun starts the allocation's tasks.
if [ -n "${SLURM_JOB_ID:-}" ] && [ $# -ge 1 ] && [ -f "$1" ]; then
  CONFIG=$1; shift
  exec srun --kill-on-bad-exit=1 python -u -m vsrt.train -opt "$CONFIG" --launcher slurm "$@"
fi

if [ $# -lt 4 ]; then
  echo "usage: sbatch [sbatch options] $0 CONFIG [args...]" >&2
  echo "   or: bash $0 PARTITION JOB_NAME GPUS CONFIG [args...]" >&2
  exit 2
fi
PARTITION=$1; JOB_NAME=$2; GPUS=$3; shift 3
CONFIG="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; shift  # absolute: the run starts in the repository root
cd "$(dirname "$0")/.."
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
exec srun --partition="$PARTITION" --job-name="$JOB_NAME" --ntasks="$GPUS" \
  --ntasks-per-node="$GPUS_PER_NODE" --gpus-per-task=1 --cpus-per-task="${CPUS_PER_TASK:-8}" \
  --kill-on-bad-exit=1 ${SRUN_ARGS:-} python -u -m vsrt.train -opt "$CONFIG" --launcher slurm "$@"
