#!/usr/bin/env bash
# Graft demo recipe: English (source) and Czech (target) speech synthesized offline from
# Debian's TTS engines and fortune texts, then the usual Kaldi/icefall-style stages.
#
#   ./run.sh                          # everything
#   ./run.sh --stage 2 --stop-stage 3 # only features and the language side
#   ./run.sh --help                   # every option with its default
#
# Stages:
#   0  synthesize the corpus (local/demo.py download) -> data/corpus/<lang>/
#   1  Lhotse manifests per language and split, nested Czech train subsets -> data/manifests/
#   2  80-dim fbank, lilcom storage -> data/fbank/
#   3  language side: BPE, lexicon, n-gram LM, G, L, LG, HLG -> data/lang/<lang>_bpe<V>/
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=3                # last stage to run
force=false                 # re-run stages whose outputs exist
nj=2                        # parallel jobs (synthesis, features)
seed=0                      # corpus selection and subset seed
corpus=demo                 # the adapter: local/demo.py
dl_dir=data/corpus          # where stage 0 writes the synthesized corpus
langs="en cs"               # languages of the corpus: source then target
en_train_minutes=130        # English train audio (minutes)
en_dev_minutes=15           # English dev audio (minutes)
en_test_minutes=15          # English test audio (minutes)
cs_train_minutes=100        # Czech train audio, all (minutes)
cs_dev_minutes=10           # Czech dev audio (minutes)
cs_test_minutes=15          # Czech test audio (minutes)
train_subsets_cs="15 30 60" # nested Czech train subsets (minutes) besides "all"
vocab_size=500              # BPE vocabulary size (each language)
lm_order=3                  # n-gram order of the word LM
log_dir=exp/log             # where each step's log goes
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh

download_opts="--seed $seed --jobs $nj --en-train-minutes $en_train_minutes \
  --en-dev-minutes $en_dev_minutes --en-test-minutes $en_test_minutes \
  --cs-train-minutes $cs_train_minutes --cs-dev-minutes $cs_dev_minutes \
  --cs-test-minutes $cs_test_minutes"

if stage_in 0; then corpus_stage; fi
if stage_in 1; then for lang in $langs; do manifests_stage $lang; done; fi
if stage_in 2; then for lang in $langs; do fbank_stage $lang; done; fi
if stage_in 3; then for lang in $langs; do lang_stage $lang; done; fi
log "finished stages $stage..$stop_stage"
