#!/usr/bin/env bash
# yesno recipe: Kaldi's sanity check (60 files of 8 Hebrew "yes"/"no" words, 8 kHz, one
# speaker). Every stage runs on a CPU, in a few minutes in all. See README.md here.
#
#   ./run.sh                    # stages 0-4
#   ./run.sh --help             # every option with its default
#
# Stages:
#   0  get waves_yesno (or say where to place it), index it (local/yesno.py download)
#      -> data/corpus/en/ (the transcripts are the English words YES and NO)
#   1  Lhotse manifests train/dev/test (audio resampled to 16 kHz) -> data/manifests/en/
#   2  80-dim fbank, lilcom storage -> data/fbank/en/
#   3  language side: BPE (a tiny vocabulary), lexicon, LM, G, L, LG, HLG -> data/lang/en_bpe<V>/
#   4  train a tiny transducer (pruned RNN-T + CTC) -> exp/en_tiny/
# Splits: test = lhotse's yesno test (the 30 odd files of the sorted list, as in icefall);
# lhotse's train (the 30 even files): every 5th is dev (6), the rest train (24).
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=4                # last stage to run
force=false                 # re-run stages whose outputs exist
nj=1                        # parallel jobs (features: one is fastest for 60 files)
seed=0                      # (no subsets here)
corpus=yesno                # the adapter: local/yesno.py
raw_dir=download            # where waves_yesno.tar.gz and waves_yesno/ are (or go)
dl_dir=data/corpus          # where stage 0 writes the corpus index (data/corpus/en/)
vocab_size=12               # BPE vocabulary: 2 words, 5 letters; sentencepiece accepts 10..17
lm_order=2                  # n-gram order of the word LM
model_conf=tiny             # model preset (conf/model/<name>.yaml)
num_epochs=30               # training epochs
max_duration=30             # seconds of audio per batch (about 5 batches an epoch)
train_opts="--ctc-weight 0.2 --warm-steps 40 --lr-steps 200 --lr-epochs 10 --base-lr 0.004" # CTC head; short schedule
log_dir=exp/log             # where each step's log goes
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh
lang=en                     # the transcripts are written in English letters: data/*/en/

download_opts="--raw-dir $raw_dir --language $lang"

if stage_in 0; then corpus_stage; fi
if stage_in 1; then manifests_stage $lang; fi
if stage_in 2; then fbank_stage $lang; fi
if stage_in 3; then lang_stage $lang; fi
if stage_in 4; then train_stage $lang exp/${lang}_$model_conf; fi
log "finished stages $stage..$stop_stage"
