#!/usr/bin/env bash
# Distributed testing with torchrun: bash dist_test.sh NPROC CONFIG [--force_yml k=v ...]
# Clips are split over the processes; rank 0 gathers the scores and writes results/<name>/metrics.json.
exec bash "$(dirname "$0")/scripts/torchrun_launch.sh" vsrt.test "$@"
