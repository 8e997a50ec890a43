#!/usr/bin/env bash
# Is the fast path bought with accuracy? (issue 15) The demo's English source model (stage 4,
# trained with `amp: auto` = bf16 autocast on a CPU with AVX512-BF16/AMX) is trained again with
# the fp32 path: the same data, options and seed, only `--amp false`, into exp/<model>_fp32; it is
# decoded and scored like stages 6-7 (the recipe's own stage functions), then
# bench/compare_models.py writes the paired-bootstrap WER differences and the overlaid loss
# curves to bench/results/amp_accuracy.{md,json,png}.
#
# Usage (after `make demo` has run stages 0-7; ~20 minutes on 2 cores):
#   bench/amp_accuracy.sh [RECIPE_DIR (default egs/demo/ASR)] [MODEL (default en_small)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${1:-$root/egs/demo/ASR}"
model=${2:-en_small}
. "$root/utils/env.sh"
stage=0 stop_stage=8 force=false nj=2 log_dir=exp/log
. "$root/utils/stage.sh"
. "$root/utils/recipe_stages.sh"

src=exp/$model ref=exp/${model}_fp32
[ -f $src/params.json ] || { echo "ERROR: $src/params.json is missing: run stage 4 of this recipe first" >&2; exit 1; }
mkdir -p $ref
# the stage-4 model's own options (params.json), with the fp32 path and another exp dir
python - "$src/params.json" "$ref/fp32_conf.yaml" "$ref" <<'EOF'
import json, sys, yaml
conf = json.load(open(sys.argv[1]))["train_conf"]
conf.update(amp="false", exp_dir=sys.argv[3])
yaml.safe_dump(conf, open(sys.argv[2], "w"))
EOF
epochs=$(last_epoch $src)
lang=$(python -c "import json; print(json.load(open('$src/lang/lang.json'))['language'])")
vocab=$(python -c "import json; print(json.load(open('$src/lang/lang.json'))['vocab_size'])")
order=$(python -c "import json; print(json.load(open('$(ls -d $src/decode_epoch*_avg*/ | tail -1)decode.json'))['lm_dir'])" \
  | sed 's/.*lm_\([0-9]*\)gram.*/\1/')
avg=$(ls -d $src/decode_epoch*_avg*/ | tail -1 | sed 's/.*_avg\([0-9]*\)\/$/\1/')
methods=$(ls -d $src/decode_epoch*_avg*/*/ | xargs -n1 basename | tr '\n' ' ')
step "bench_train_${model}_fp32" "$ref/epoch-$epochs.pt" --inputs "$src/params.json" \
  python $GRAFT_ROOT/steps/train.py --config $ref/fp32_conf.yaml
decode_stage $ref $lang $vocab $order "$methods" $avg
score_stage $ref "$methods" $avg
python $GRAFT_ROOT/bench/compare_models.py --a $src --a-name "fast path (bf16)" --b $ref --b-name "fp32" \
  --methods "$methods" --sets "dev test" --out $GRAFT_ROOT/bench/results/amp_accuracy
