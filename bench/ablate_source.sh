#!/usr/bin/env bash
# One change to a recipe's source model, measured: the stage-4 model is trained again with the
# same data, options and seed except the given overrides, into exp/<model>_<name>; it is decoded
# and scored like stages 6-7 (the recipe's own stage functions), then bench/compare_models.py
# writes the paired-bootstrap WER differences (dev, test) and the overlaid loss curves to
# bench/results/<out>.{md,json,png}.
#
# Usage (after the recipe has run stages 0-7; ~20 minutes per English demo model on 2 cores):
#   bench/ablate_source.sh NAME [key=value ...] [model.key=value ...]
#     key=value        a training option of conf/train.yaml (amp=false, num_epochs=16, ...)
#     model.key=value  a model conf key (graft/model/build.py): a model yaml `base: <preset>` with it
#   environment: RECIPE (egs/demo/ASR), MODEL (en_pl_small; en_small for `--source-langs en`), OUT (bench/results name, default
#   <MODEL>_<NAME>), A_NAME / B_NAME (labels of the stage-4 model and the changed one), AVG (epochs
#   averaged for decoding the changed model; default: stage 6's, e.g. 1 when its epochs are few and long)
#   SETS (compared sets, default "dev test"; e.g. "dev test test_unseen")
# Example: bench/ablate_source.sh shared_dropout model.dropout_shared_time=true
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 1 ] || { sed -n 2,15p "$0" >&2; exit 2; }
name=$1; shift
cd "${RECIPE:-$root/egs/demo/ASR}"
model=${MODEL:-en_pl_small}
out=${OUT:-${model}_$name}
. "$root/utils/env.sh"
stage=0 stop_stage=8 force=false nj=2 log_dir=exp/log/bench  # not exp/log: the recipe's stage-time table reads its top level
. "$root/utils/stage.sh"
. "$root/utils/recipe_stages.sh"

src=exp/$model ref=exp/${model}_$name
[ -f $src/params.json ] || { echo "ERROR: $src/params.json is missing: run stage 4 of this recipe first" >&2; exit 1; }
mkdir -p $ref
# the stage-4 model's own options (params.json) with the overrides and another exp dir
python - "$src/params.json" "$ref" "$@" <<'PY'
import json, sys, yaml
from pathlib import Path
params, ref, overrides = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
conf = json.load(open(params))["train_conf"]
from graft.train.options import load_train_conf
for key, value in load_train_conf().to_dict().items():   # options added after that run: defaults
    conf.setdefault(key, value)
model_keys = {}
for o in overrides:
    key, sep, value = o.partition("=")
    if not sep:
        sys.exit(f"ERROR: override {o!r} is not key=value")
    if key.startswith("model."):
        model_keys[key[len("model."):]] = yaml.safe_load(value)
    elif key not in conf:
        sys.exit(f"ERROR: {key!r} is not a training option (conf/train.yaml): {sorted(conf)}")
    else:
        conf[key] = yaml.safe_load(value)
if model_keys:
    yaml.safe_dump({"base": conf["model_conf"], **model_keys}, open(ref / "model_conf.yaml", "w"))
    conf["model_conf"] = str(ref / "model_conf.yaml")
conf["exp_dir"] = str(ref)
yaml.safe_dump(conf, open(ref / "train_conf.yaml", "w"))
PY
epochs=$(python -c "import yaml; print(yaml.safe_load(open('$ref/train_conf.yaml'))['num_epochs'])")
lang=$(python -c "import json; print(json.load(open('$src/lang/lang.json'))['language'])")
vocab=$(python -c "import json; print(json.load(open('$src/lang/lang.json'))['vocab_size'])")
settings=$(decoded_settings $src)           # stage 6's LM order, averaging and decode dir
read -r order avg last <<< "$settings"
avg=${AVG:-$avg}
methods=$(ls -d $last*/ | xargs -n1 basename | tr '\n' ' ')
step "bench_train_${model}_$name" "$ref/epoch-$epochs.pt" --inputs "$src/params.json $ref/train_conf.yaml" \
  python $GRAFT_ROOT/steps/train.py --config $ref/train_conf.yaml
decode_stage $ref $lang $vocab $order "$methods" $avg
score_stage $ref "$methods" $avg
python $GRAFT_ROOT/bench/compare_models.py --a $src --a-name "${A_NAME:-$model}" --b $ref \
  --b-name "${B_NAME:-$model, $*}" --methods "$methods" --sets "${SETS:-dev test}" --out $GRAFT_ROOT/bench/results/$out
