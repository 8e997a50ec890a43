#!/usr/bin/env bash
# Is the fast path bought with accuracy? (issue 15) The demo's English source model (stage 4,
# trained with `amp: auto` = bf16 autocast on a CPU with AVX512-BF16/AMX) is trained again with
# the fp32 path (`--amp false`, all else equal) into exp/<model>_fp32, decoded, scored and
# compared with paired-bootstrap intervals -> bench/results/amp_accuracy.{md,json,png}
# (bench/ablate_source.sh does the work).
#
# Usage (after `make demo` has run stages 0-7; ~20 minutes on 2 cores):
#   bench/amp_accuracy.sh [RECIPE_DIR (default egs/demo/ASR)] [MODEL (default en_pl_small, the demo's source; en_small for `--source-langs en`)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECIPE=${1:-$root/egs/demo/ASR} MODEL=${2:-en_pl_small} OUT=amp_accuracy A_NAME="fast path (bf16)" B_NAME=fp32 \
  exec "$root/bench/ablate_source.sh" fp32 amp=false
