#!/usr/bin/env bash
# The demo grid's transfer, trained again from another source model, against the recipe's own.
#
# Usage: bench/transfer_from_source.sh NAME SOURCE_EXP [steps/transfer.py options...]
#   Run after stages 0-6 of the recipe. Takes the grid's first transfer line of the size
#   (its preset, training split, epochs, methods and options, as stage 5 runs it), trains it
#   from SOURCE_EXP (e.g. exp/en_small_ep8 of bench/ablate_source.sh; its last epoch averaged
#   over stage 5's 2) into exp/<lang>_x_<NAME>, with the extra options after SOURCE_EXP, decodes and
#   scores it as stages 6-7 do, and compares it with the recipe's own model of that line
#   (bench/compare_models.py: paired bootstrap per method and set) into
#   bench/results/<OUT>.{md,json,png}.
#   environment: SOURCE_EPOCH (default: SOURCE_EXP's last), RECIPE (egs/demo/ASR), GRID (demo),
#   LANG_T (cs), SIZE (15m), GRID_OPTS (steps/grid.py options, e.g. "--corrupt 'reverb noise'":
#   the line's epochs and options as the grid would make them with those), OUT (default
#   demo_<lang>_transfer_from_<NAME>), SETS (default "dev test test_unseen"), A_NAME / B_NAME (labels)
# Example: bench/ablate_source.sh ep8 num_epochs=8 && bench/transfer_from_source.sh ep8 exp/en_small_ep8
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 2 ] || { sed -n 2,17p "$0" >&2; exit 2; }
name=$1 source=$2; shift 2
cd "${RECIPE:-$root/egs/demo/ASR}"
grid=${GRID:-demo} lang=${LANG_T:-cs} size=${SIZE:-15m}
. "$root/utils/env.sh"
stage=0 stop_stage=8 force=false nj=2 log_dir=exp/log/bench  # not exp/log: the recipe's stage-time table reads its top level
. "$root/utils/stage.sh"
. "$root/utils/recipe_stages.sh"

[ -n "$(last_epoch $source)" ] && [ -f $source/model.yaml ] || {
  echo "ERROR: $source holds no trained model (epoch-N.pt and model.yaml): train it first" >&2; exit 1; }
eval "grid_opts=(${GRID_OPTS:-})"
line=$(grid_models $grid $lang "${grid_opts[@]}" | awk -F'\t' -v s="$size" '$2 == "transfer" && $1 ~ "_"s"$"' | head -1)
[ -n "$line" ] || { echo "ERROR: grid $grid has no transfer line of size $size" >&2; exit 1; }
IFS=$'\t' read -r gname group preset split epochs mins methods opts <<< "$line"
ref=exp/${lang}_$gname
[ -f $ref/params.json ] || { echo "ERROR: $ref is not trained: run stage 5 of this recipe first" >&2; exit 1; }
vocab=$(python -c "import json; print(json.load(open('$ref/lang/lang.json'))['vocab_size'])")
settings=$(decoded_settings $ref)           # the reference's stage-6 LM order and averaging
read -r order avg last <<< "$settings"
max_duration=$(python -c "import json; print(json.load(open('$ref/params.json'))['train_conf']['max_duration'])")
src_epoch=$(transfer_epoch $source "${SOURCE_EPOCH:-}") || exit 1
exp=exp/${lang}_x_$name
log "$gname ($preset, $split = $mins min, $epochs epochs, $opts) from $source epoch $src_epoch into $exp"
transfer_stage $source $lang $vocab $exp $split $epochs $preset $opts --max-duration $max_duration \
  --source-epoch $src_epoch --source-avg $(( src_epoch < 2 ? src_epoch : 2 )) "$@"
decode_stage $exp $lang $vocab $order "${methods//,/ }" $avg
score_stage $exp "${methods//,/ }" $avg
python $GRAFT_ROOT/bench/compare_models.py --a $ref --a-name "${A_NAME:-from the recipe source}" \
  --b $exp --b-name "${B_NAME:-from $source}" --methods "${methods//,/ }" --sets "${SETS:-dev test test_unseen}" \
  --out $GRAFT_ROOT/bench/results/${OUT:-demo_${lang}_transfer_from_$name}
