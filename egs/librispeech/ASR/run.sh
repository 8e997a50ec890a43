#!/usr/bin/env bash
# LibriSpeech recipe: English read audiobooks, the source language of a transfer (a model
# trained here is grafted onto a target language elsewhere). See README.md here.
#
#   ./run.sh                                  # stages 0-8 on train-clean-100
#   ./run.sh --subset mini --model-conf small # mini_librispeech (5 h): a quick run-through
#   ./run.sh --raw-dir /data/corpora          # LibriSpeech/ or its archives are already there
#   ./run.sh --help                           # every option with its default
#
# Stages:
#   0  get the missing LibriSpeech parts (or say where to place them), index them
#      (local/librispeech.py download) -> data/corpus/en/
#   1  Lhotse manifests train/dev/test (+ nested train subsets) -> data/manifests/<lang>/
#   2  80-dim fbank, lilcom storage (audio resampled to 16 kHz) -> data/fbank/<lang>/
#   3  language side: BPE lang dir, then its LM dir (lexicon, n-gram LM, G, L, LG, HLG) -> data/lang/<lang>_bpe<V>/
#   4  train a transducer (pruned RNN-T + CTC) -> exp/<lang>_<model_conf>/ (the source model of other recipes)
#   5  transfer grid (conf/grid/<grid>.yaml) from --source-exp: transfer and scratch baselines per
#      train size -> exp/<lang>_<name>/ (skipped, saying so, without --source-exp)
#   6  decode dev/test of every model: greedy, modified beam (n-best), CTC + HLG lattices
#   7  score at every LM weight (chosen on dev, applied to test); RESULTS.md
#   8  export every model to ONNX for sherpa-onnx (steps/export_onnx.py) -> exp/<model>/export/
# Splits (--subset): train = train-clean-100 (100), train-clean-5 (mini), +train-clean-360 (460),
# +train-other-500 (960); dev = dev-clean (mini: dev-clean-2); test = --test-part.
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=8                # last stage to run
force=false                 # re-run stages even when their inputs and options are unchanged
nj=2                        # parallel jobs (audio headers, features)
seed=0                      # train subset seed
corpus=librispeech          # the adapter: local/librispeech.py
raw_dir=download            # where the archives and LibriSpeech/<part>/ are (or go)
dl_dir=data/corpus          # where stage 0 writes the corpus index (data/corpus/en/)
subset=100                  # training data: mini (train-clean-5), 100, 460 or 960 (hours)
test_part=test-clean        # test split: test-clean or test-other
lm_text=                    # optional extra LM text, one sentence a line (e.g. librispeech-lm-norm.txt)
train_subsets=              # nested train subsets (minutes) besides "all", e.g. "600 1200"
vocab_size=500              # BPE vocabulary size
lm_order=3                  # n-gram order of the word LM
model_conf=medium           # model preset (conf/model/<name>.yaml): tiny, small, medium, large
num_epochs=30               # training epochs
max_duration=400            # seconds of audio per batch (per GPU)
train_opts="--ctc-weight 0.2" # more steps/train.py options (CTC head for HLG decoding)
source_exp=                 # stage 5's source model, e.g. ../../librispeech/ASR/exp/en_medium (empty: stage 5 is skipped)
source_epoch=               # the source epoch stage 5 transfers from, averaged over decode_avg epochs (empty: its last)
grid=single                 # stage 5's transfer grid: conf/grid/<grid>.yaml
grid_opts=                  # steps/grid.py overrides, e.g. "--sizes '15m all' --budget-minutes 90"
decode_methods="greedy beam beam-lex ctc-hlg ctc-hlg-rnnt" # stage 6 methods of the stage-4 model (the grid's are in its yaml)
decode_avg=4                # average the last N epochs for decoding
lm_weights=                 # LM weight sweep of stages 6-7 (default: conf/decode.yaml)
word_ins_penalties=         # word insertion penalties of stage 7 (default: conf/decode.yaml)
results_title="LibriSpeech results (egs/librispeech/ASR)" # the title of RESULTS.md
log_dir=exp/log             # where each step's log goes
stages="0 1 2 3 4 5 6 7 8"  # the stages of this recipe
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh
lang=en                     # LibriSpeech is English: data/*/en/
src_exp=exp/${lang}_$model_conf  # the source model (stage 4)

if stage_in 0; then corpus_stage $corpus $dl_dir $lang "$lm_text" --raw-dir $raw_dir --subset $subset --test-part $test_part \
    --language $lang --jobs $nj ${lm_text:+--lm-text $lm_text}; fi
. ../../../utils/one_language_stages.sh
