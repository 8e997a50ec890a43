#!/usr/bin/env bash
# A source model in other languages than the recipe's, for the Czech transfer: the corpus of a
# language the recipe does not make is synthesized like the demo's (local/demo.py --languages
# LANG), stages 1-2 run for it with the recipe's own stage functions; several languages are
# combined into one training language (steps/combine_languages.py: a multilingual source, one
# BPE over their texts); then stage 3, the source training with the recipe source's options
# (exp/en_small/params.json) at the same audio budget (minutes x epochs), and stages 6-7.
# Its Czech transfer is then `bench/transfer_from_source.sh <name> exp/<name>_small`.
#
# Usage (after stages 0-7 of the demo recipe):
#   bench/source_language.sh "LANG [LANG...]"      # pl: a Polish source; "en pl": English + Polish
#   environment: RECIPE (egs/demo/ASR), MODEL (the recipe's source, en_small), RECIPE_LANGS (the
#   languages whose stages 0-2 the recipe ran, used as they are: "en cs"), MINUTES (train audio
#   of a synthesized language, 240), READS (times train may read a sentence, each in another
#   voice; 2), DEV_MINUTES (10), TEST_MINUTES (10), EPOCHS (default: the recipe source's minutes
#   x epochs / this source's minutes), METHODS (greedy ctc-hlg), OPTS (training options on top,
#   key=value ..., e.g. "meta_block=8 meta_step=0.5"), SUFFIX (appended to the exp dir's name)
# Example: bench/source_language.sh pl && bench/transfer_from_source.sh pl exp/pl_small
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -eq 1 ] || { sed -n 2,18p "$0" >&2; exit 2; }
langs=$1 lang=${1// /_}
cd "${RECIPE:-$root/egs/demo/ASR}"
model=${MODEL:-en_small} minutes=${MINUTES:-240} reads=${READS:-2}
. "$root/utils/env.sh"
stage=0 stop_stage=8 force=false nj=2 log_dir=exp/log/source_$lang recipe_langs=${RECIPE_LANGS:-en cs}
. "$root/utils/stage.sh"
. "$root/utils/recipe_stages.sh"

src=exp/$model
[ -f $src/params.json ] || { echo "ERROR: $src/params.json is missing: run stage 4 of this recipe first" >&2; exit 1; }
vocab=$(python -c "import json; print(json.load(open('$src/lang/lang.json'))['vocab_size'])")
settings=$(decoded_settings $src)           # stage 6's LM order and averaging
read -r order avg last <<< "$settings"
exp=exp/${lang}_$(basename $src | cut -d_ -f2-)${SUFFIX:+_$SUFFIX}

for l in $langs; do
  if [[ " $recipe_langs " == *" $l "* ]]; then
    [ -f data/fbank/$l/report.json ] || { echo "ERROR: data/fbank/$l is missing: run stages 0-2 of the recipe" >&2; exit 1; }
    continue
  fi
  corpus_stage demo data/corpus "$l" "" --languages $l --seed 0 --jobs $nj --train-reads $reads \
    --$l-train-minutes $minutes --$l-dev-minutes ${DEV_MINUTES:-10} --$l-test-minutes ${TEST_MINUTES:-10} \
    --$l-unseen-minutes 0
  manifests_stage demo data/corpus $l "" 0
  fbank_stage $l
done
lm_text=data/corpus/$lang/lm_text.txt
if [ "$lang" != "$langs" ]; then              # several: one training language of them all
  combine_stage $lang "$langs"
  lm_text=data/manifests/$lang/lm_text.txt
fi
lang_stage $lang $vocab $order $lm_text

# the recipe source's training options, at the same audio budget: more epochs of fewer minutes,
# the learning-rate decay kept per update (lr_epochs scaled with the epoch length)
mkdir -p $exp
epochs=$(python - "$src/params.json" "$exp" "$lang" "$(lang_dir $lang $vocab)" "${EPOCHS:-}" ${OPTS:-} <<'PY'
import json, sys, yaml
from lhotse import load_manifest_lazy
params, exp, lang, lang_dir, epochs = sys.argv[1:6]
conf = json.load(open(params))["train_conf"]
src_minutes = sum(c.duration for c in load_manifest_lazy(conf["cuts_train"])) / 60
new_minutes = sum(c.duration for c in load_manifest_lazy(f"data/fbank/{lang}/cuts_train.jsonl.gz")) / 60
epochs = int(epochs) if epochs else max(1, round(conf["num_epochs"] * src_minutes / new_minutes))
conf.update(cuts_train=f"data/fbank/{lang}/cuts_train.jsonl.gz", cuts_dev=f"data/fbank/{lang}/cuts_dev.jsonl.gz",
            lang_dir=lang_dir, exp_dir=exp, num_epochs=epochs,
            lr_epochs=round(conf["lr_epochs"] * src_minutes / new_minutes, 2))
for item in sys.argv[6:]:                          # OPTS: key=value (typed by graft.train.options)
    key, _, value = item.partition("=")
    conf[key] = value
yaml.safe_dump(conf, open(f"{exp}/train_conf.yaml", "w"))
print(epochs)
PY
)
log "$exp: $epochs epochs of data/fbank/$lang/cuts_train ($(basename $src)'s options and audio budget)"
step "stage4_train_$(basename $exp)" "$exp/epoch-$epochs.pt" \
  --inputs "data/fbank/$lang/cuts_train.jsonl.gz $(lang_dir $lang $vocab)/tokens.txt $exp/train_conf.yaml" \
  python $GRAFT_ROOT/steps/train.py --config $exp/train_conf.yaml
methods=${METHODS:-greedy ctc-hlg}
decode_stage $exp $lang $vocab $order "$methods" $avg
score_stage $exp "$methods" $avg
log "next: bench/transfer_from_source.sh $lang $exp"
