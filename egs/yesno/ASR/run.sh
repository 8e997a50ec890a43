#!/usr/bin/env bash
# yesno recipe: Kaldi's sanity check (60 files of 8 Hebrew "yes"/"no" words, 8 kHz, one
# speaker). Every stage runs on a CPU, in a few minutes in all. See README.md here.
#
#   ./run.sh                    # stages 0-8
#   ./run.sh --help             # every option with its default
#
# Stages:
#   0  get waves_yesno (or say where to place it), index it (local/yesno.py download)
#      -> data/corpus/en/ (the transcripts are the English words YES and NO)
#   1  Lhotse manifests train/dev/test (+ nested train subsets) -> data/manifests/<lang>/
#   2  80-dim fbank, lilcom storage (audio resampled to 16 kHz) -> data/fbank/<lang>/
#   3  language side: BPE lang dir, then its LM dir (lexicon, n-gram LM, G, L, LG, HLG) -> data/lang/<lang>_bpe<V>/
#   4  train a transducer (pruned RNN-T + CTC) -> exp/<lang>_<model_conf>/ (a tiny model)
#   5  transfer grid (conf/grid/<grid>.yaml) from --source-exp: transfer and scratch baselines per
#      train size -> exp/<lang>_<name>/ (skipped, saying so, without --source-exp)
#   6  decode dev/test of every model: greedy, modified beam (n-best), CTC + HLG lattices
#   7  score at every LM weight (chosen on dev, applied to test); RESULTS.md
#   8  export every model to ONNX for sherpa-onnx (steps/export_onnx.py) -> exp/<model>/export/
# Splits: test = lhotse's yesno test (the 30 odd files of the sorted list, as in icefall);
# lhotse's train (the 30 even files): every 5th is dev (6), the rest train (24).
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=8                # last stage to run
force=false                 # re-run stages even when their inputs and options are unchanged
nj=1                        # parallel jobs (features: one is fastest for 60 files)
seed=0                      # (no subsets here)
corpus=yesno                # the adapter: local/yesno.py
raw_dir=download            # where waves_yesno.tar.gz and waves_yesno/ are (or go)
dl_dir=data/corpus          # where stage 0 writes the corpus index (data/corpus/en/)
vocab_size=12               # BPE vocabulary: 2 words, 5 letters; sentencepiece accepts 10..17
lm_order=2                  # n-gram order of the word LM
train_subsets=              # (no subsets here)
model_conf=tiny             # model preset (conf/model/<name>.yaml)
num_epochs=20               # training epochs (the CTC loss is near 0 on dev by epoch 15)
max_duration=10             # seconds of audio per batch (2 files: ~12 batches an epoch; 30 s batches stayed on the plateau)
train_opts="--ctc-weight 0.3 --warm-steps 100 --lr-steps 500 --lr-epochs 20 --base-lr 0.005 --spec-augment false" # short schedule, no SpecAugment
source_exp=                 # stage 5's source model, e.g. ../../librispeech/ASR/exp/en_medium (empty: stage 5 is skipped)
source_epoch=               # the source epoch stage 5 transfers from, averaged over decode_avg epochs (empty: its last)
grid=single                 # stage 5's transfer grid: conf/grid/<grid>.yaml
grid_opts=                  # steps/grid.py overrides, e.g. "--sizes '15m all' --budget-minutes 90"
decode_methods="greedy beam beam-lex ctc-hlg ctc-hlg-rnnt" # stage 6 methods of the stage-4 model (the grid's are in its yaml)
decode_avg=4                # average the last N epochs for decoding
lm_weights=                 # LM weight sweep of stages 6-7 (default: conf/decode.yaml)
word_ins_penalties=         # word insertion penalties of stage 7 (default: conf/decode.yaml)
results_title="yesno results (egs/yesno/ASR)" # the title of RESULTS.md
log_dir=exp/log             # where each step's log goes
stages="0 1 2 3 4 5 6 7 8"  # the stages of this recipe
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh
lang=en                     # the transcripts are written in English letters: data/*/en/

if stage_in 0; then corpus_stage $corpus $dl_dir $lang "" --raw-dir $raw_dir --language $lang; fi
. ../../../utils/one_language_stages.sh
