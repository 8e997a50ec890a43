#!/usr/bin/env bash
# Common Voice recipe: one language of Mozilla Common Voice as a low-resource target
# language (nested train subsets of 15, 30, 60 minutes and all). See README.md here.
#
#   ./run.sh --lang cs                        # stages 0-8 for Czech
#   ./run.sh --lang cs --raw-dir /data/cv     # the archive or <release>/cs/ is already there
#   ./run.sh --help                           # every option with its default
#
# Stages:
#   0  get the language's archive (or say where to place it), index it
#      (local/commonvoice.py download) -> data/corpus/<lang>/
#   1  Lhotse manifests train/dev/test (+ nested train subsets) -> data/manifests/<lang>/
#   2  80-dim fbank, lilcom storage (audio resampled to 16 kHz) -> data/fbank/<lang>/
#   3  language side: BPE lang dir, then its LM dir (lexicon, n-gram LM, G, L, LG, HLG) -> data/lang/<lang>_bpe<V>/
#   4  train a transducer (pruned RNN-T + CTC) -> exp/<lang>_<model_conf>/ (from scratch on all of train: the no-transfer baseline)
#   5  transfer grid (conf/grid/<grid>.yaml) from --source-exp: transfer and scratch baselines per
#      train size -> exp/<lang>_<name>/ (skipped, saying so, without --source-exp)
#   6  decode dev/test of every model: greedy, modified beam (n-best), CTC + HLG lattices
#   7  score at every LM weight (chosen on dev, applied to test); RESULTS.md
#   8  export every model to ONNX for sherpa-onnx (steps/export_onnx.py) -> exp/<model>/export/
# Splits: train = train.tsv (or validated.tsv minus dev/test clips, speakers and sentences,
# with --train-part validated), dev = dev.tsv, test = test.tsv.
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=8                # last stage to run
force=false                 # re-run stages even when their inputs and options are unchanged
nj=2                        # parallel jobs (clip headers, features)
seed=0                      # train subset seed
corpus=commonvoice          # the adapter: local/commonvoice.py
lang=cs                     # Common Voice language code (needs an entry in graft/data/text.py)
release=cv-corpus-13.0-2023-03-09  # Common Voice release (the archive's top folder)
raw_dir=download            # where the archive and <release>/<lang>/ are (or go)
dl_dir=data/corpus          # where stage 0 writes the corpus index (data/corpus/<lang>/)
train_part=train            # train.tsv, or validated (more clips per sentence)
lm_text=                    # optional extra LM text in the language, one sentence a line
train_subsets="15 30 60"    # nested train subsets (minutes) besides "all"
vocab_size=150              # BPE vocabulary size (the source's may differ: pieces are matched by their strings)
lm_order=3                  # n-gram order of the word LM
model_conf=small            # model preset (conf/model/<name>.yaml): tiny, small, medium, large
num_epochs=30               # training epochs
max_duration=400            # seconds of audio per batch (per GPU)
train_opts="--ctc-weight 0.2" # more steps/train.py options (CTC head for HLG decoding)
source_exp=                 # stage 5's source model, e.g. ../../librispeech/ASR/exp/en_medium (empty: stage 5 is skipped)
source_epoch=               # the source epoch stage 5 transfers from, averaged over decode_avg epochs (empty: its last)
grid=commonvoice                 # stage 5's transfer grid: conf/grid/<grid>.yaml
grid_opts=                  # steps/grid.py overrides, e.g. "--sizes '15m all' --budget-minutes 90"
decode_methods="greedy beam beam-lex ctc-hlg ctc-hlg-rnnt" # stage 6 methods of the stage-4 model (the grid's are in its yaml)
decode_avg=4                # average the last N epochs for decoding
lm_weights=                 # LM weight sweep of stages 6-7 (default: conf/decode.yaml)
word_ins_penalties=         # word insertion penalties of stage 7 (default: conf/decode.yaml)
results_title="Common Voice results (egs/commonvoice/ASR)" # the title of RESULTS.md
log_dir=exp/log             # where each step's log goes
stages="0 1 2 3 4 5 6 7 8"  # the stages of this recipe
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh

if stage_in 0; then corpus_stage $corpus $dl_dir $lang "$lm_text" --raw-dir $raw_dir --language $lang --release $release \
    --train-part $train_part --jobs $nj ${lm_text:+--lm-text $lm_text}; fi
. ../../../utils/one_language_stages.sh
