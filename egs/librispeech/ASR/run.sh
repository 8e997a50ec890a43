#!/usr/bin/env bash
# LibriSpeech recipe: English read audiobooks, the source language of a transfer (a model
# trained here is grafted onto a target language elsewhere). See README.md here.
#
#   ./run.sh                                  # stages 0-4 on train-clean-100
#   ./run.sh --subset mini --model-conf small # mini_librispeech (5 h): a quick run-through
#   ./run.sh --raw-dir /data/corpora          # LibriSpeech/ or its archives are already there
#   ./run.sh --help                           # every option with its default
#
# Stages:
#   0  get the missing LibriSpeech parts (or say where to place them), index them
#      (local/librispeech.py download) -> data/corpus/en/
#   1  Lhotse manifests train/dev/test (+ nested train subsets) -> data/manifests/en/
#   2  80-dim fbank, lilcom storage -> data/fbank/en/
#   3  language side: BPE, lexicon, n-gram LM, G, L, LG, HLG -> data/lang/en_bpe<V>/
#   4  train the English transducer (pruned RNN-T + CTC) -> exp/en_<model_conf>/ (the source
#      model a target recipe transfers from)
# Splits (--subset): train = train-clean-100 (100), train-clean-5 (mini), +train-clean-360 (460),
# +train-other-500 (960); dev = dev-clean (mini: dev-clean-2); test = --test-part.
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=4                # last stage to run
force=false                 # re-run stages whose outputs exist
nj=2                        # parallel jobs (audio headers, features)
seed=0                      # train subset seed
corpus=librispeech          # the adapter: local/librispeech.py
raw_dir=download            # where the archives and LibriSpeech/<part>/ are (or go)
dl_dir=data/corpus          # where stage 0 writes the corpus index (data/corpus/en/)
subset=100                  # training data: mini (train-clean-5), 100, 460 or 960 (hours)
test_part=test-clean        # test split: test-clean or test-other
lm_text=                    # optional extra LM text, one sentence a line (e.g. librispeech-lm-norm.txt)
train_subsets_en=           # nested train subsets (minutes) besides "all", e.g. "600 1200"
vocab_size=500              # BPE vocabulary size
lm_order=3                  # n-gram order of the word LM
model_conf=medium           # model preset (conf/model/<name>.yaml): tiny, small, medium, large
num_epochs=30               # training epochs
max_duration=400            # seconds of audio per batch (per GPU)
train_opts="--ctc-weight 0.2" # more steps/train.py options (CTC head for HLG decoding)
log_dir=exp/log             # where each step's log goes
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh
lang=en                     # LibriSpeech is English: data/*/en/
src_exp=exp/${lang}_$model_conf  # the source model (stage 4)

download_opts="--raw-dir $raw_dir --subset $subset --test-part $test_part --language $lang --jobs $nj ${lm_text:+--lm-text $lm_text}"

if stage_in 0; then corpus_stage; fi
if stage_in 1; then manifests_stage $lang; fi
if stage_in 2; then fbank_stage $lang; fi
if stage_in 3; then lang_stage $lang; fi
if stage_in 4; then train_stage $lang $src_exp; fi
log "finished stages $stage..$stop_stage"
