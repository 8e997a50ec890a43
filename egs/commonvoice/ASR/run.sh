#!/usr/bin/env bash
# Common Voice recipe: one language of Mozilla Common Voice as a low-resource target
# language (nested train subsets of 15, 30, 60 minutes and all). See README.md here.
#
#   ./run.sh --lang cs                        # stages 0-4 for Czech
#   ./run.sh --lang cs --raw-dir /data/cv     # the archive or <release>/cs/ is already there
#   ./run.sh --help                           # every option with its default
#
# Stages:
#   0  get the language's archive (or say where to place it), index it
#      (local/commonvoice.py download) -> data/corpus/<lang>/
#   1  Lhotse manifests train/dev/test, nested train subsets -> data/manifests/<lang>/
#   2  80-dim fbank, lilcom storage (clips resampled to 16 kHz) -> data/fbank/<lang>/
#   3  language side: BPE, lexicon, n-gram LM, G, L, LG, HLG -> data/lang/<lang>_bpe<V>/
#   4  train a transducer from scratch on all of the target's train (the no-transfer
#      baseline) -> exp/<lang>_scratch_all/
# Splits: train = train.tsv (or validated.tsv minus dev/test clips, speakers and sentences,
# with --train-part validated), dev = dev.tsv, test = test.tsv.
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=4                # last stage to run
force=false                 # re-run stages whose outputs exist
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
vocab_size=500              # BPE vocabulary size
lm_order=3                  # n-gram order of the word LM
model_conf=small            # model preset (conf/model/<name>.yaml): tiny, small, medium, large
num_epochs=30               # training epochs
max_duration=400            # seconds of audio per batch (per GPU)
train_opts="--ctc-weight 0.2" # more steps/train.py options (CTC head for HLG decoding)
log_dir=exp/log             # where each step's log goes
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh

download_opts="--raw-dir $raw_dir --language $lang --release $release --train-part $train_part \
  --jobs $nj ${lm_text:+--lm-text $lm_text}"

if stage_in 0; then corpus_stage; fi
if stage_in 1; then manifests_stage $lang; fi
if stage_in 2; then fbank_stage $lang; fi
if stage_in 3; then lang_stage $lang; fi
if stage_in 4; then train_stage $lang exp/${lang}_scratch_all; fi
log "finished stages $stage..$stop_stage"
