#!/usr/bin/env bash
# One change to a recipe's language side, measured on a trained model without training again:
# the lang dir is built again with the given steps/prepare_lang.py options into
# data/lang_<NAME>/ (the same BPE model: the model's outputs do not change), the model's
# checkpoints are linked into exp/<model>_lm_<NAME>, decoded and scored there like stages 6-7
# with the new LM dir, and bench/compare_models.py writes the paired-bootstrap WER differences
# against the recipe's own decoding to bench/results/<OUT>.{md,json,png}.
#
# Usage (after stages 0-7 of the recipe):
#   bench/lm_ablation.sh NAME [steps/prepare_lang.py options...]
#   environment: RECIPE (egs/demo/ASR), MODEL (cs_transfer_encoder_decoder_15m), LANG_T (cs),
#   LM_TEXT (the extra LM text, default data/corpus/<lang>/lm_text.txt),
#   METHODS (default: the word-level ones, "beam-lex ctc-hlg ctc-hlg-rnnt"), SETS (dev test
#   test_unseen), OUT (default demo_<lang>_lm_<NAME>), A_NAME / B_NAME (labels)
# Example: bench/lm_ablation.sh pooled --word-list-weight 0
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 1 ] || { sed -n 2,14p "$0" >&2; exit 2; }
name=$1; shift
cd "${RECIPE:-$root/egs/demo/ASR}"
model=${MODEL:-cs_transfer_encoder_decoder_15m} lang=${LANG_T:-cs}
methods=${METHODS:-beam-lex ctc-hlg ctc-hlg-rnnt}
. "$root/utils/env.sh"
stage=0 stop_stage=8 force=false nj=2 log_dir=exp/log
. "$root/utils/stage.sh"
. "$root/utils/recipe_stages.sh"

ref=exp/$model
[ -f $ref/params.json ] || { echo "ERROR: $ref is not trained: run the recipe's stages 0-7 first" >&2; exit 1; }
settings=$(decoded_settings $ref)            # the reference's stage-6 LM order and averaging
read -r order avg last <<< "$settings"
vocab=$(python -c "import json; print(json.load(open('$ref/lang/lang.json'))['vocab_size'])")

# the lang dir again, below data/lang_<NAME>/: the same BPE model (copied: prepare_bpe keeps it),
# a new LM dir; stage 3 and 6 as the recipe runs them, their logs in exp/log/lm_ablation_<NAME>/
src_lang=$(lang_dir $lang $vocab)
lang_root=data/lang_$name log_dir=exp/log/lm_ablation_$name
new_lang=$(lang_dir $lang $vocab)
mkdir -p $new_lang
for f in bpe.model tokens.txt lang.json; do [ -f $new_lang/$f ] || cp $src_lang/$f $new_lang/; done
lang_stage $lang $vocab $order "${LM_TEXT:-data/corpus/$lang/lm_text.txt}" "$@"

# the model's checkpoints under another exp dir (links: nothing is copied or trained)
exp=exp/${model}_lm_$name
mkdir -p $exp
for f in $ref/*; do
  case $(basename $f) in decode_*|log|tensorboard|export) ;; *) [ -e $exp/$(basename $f) ] || ln -s "$(realpath $f)" $exp/;; esac
done
decode_stage $exp $lang $vocab $order "$methods" $avg
score_stage $exp "$methods" $avg
python $GRAFT_ROOT/bench/compare_models.py --a $ref --a-name "${A_NAME:-the recipe LM}" \
  --b $exp --b-name "${B_NAME:-LM $*}" --decode-only --methods "$methods" --sets "${SETS:-dev test test_unseen}" \
  --out $GRAFT_ROOT/bench/results/${OUT:-demo_${lang}_lm_$name}
