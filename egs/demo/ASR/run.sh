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
#   4  train the English transducer (pruned RNN-T + CTC) -> exp/en_<model_conf>/
#   5  Czech at each train size: transfer from the English model, and from scratch (baseline),
#      same data and number of updates; ablation of the transfer rules at the smallest size
#   6  decode dev/test of every model: greedy, modified beam (n-best), CTC + HLG lattices
#   7  score at every LM weight (chosen on dev, applied to test); RESULTS.md with a plot
#      (`./run.sh --stage 7 --lm-weights "..."` re-scores without decoding again)
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=7                # last stage to run
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
vocab_size=150              # BPE vocabulary size (each language): 500 did not leave the CTC plateau in budget
lm_order=3                  # n-gram order of the word LM
model_conf=small            # model preset (conf/model/*.yaml)
max_duration=30             # seconds of audio per batch (per process): ~320 steps per English epoch
train_nproc=1               # training processes (>1: DDP via torchrun, one thread each)
train_opts="--ctc-weight 0.2 --warm-steps 200 --lr-steps 1000 --lr-epochs 5 --spec-augment false" # English: ~2900 steps; CTC head for HLG
en_num_epochs=9             # English source model epochs (~1.6 min each on 2 cores)
cs_audio_minutes=180        # Czech training budget per model: minutes of audio seen
cs_train_opts="--ctc-weight 0.2 --warm-steps 50 --lr-steps 1000 --lr-epochs 10 --spec-augment false" # Czech models, scratch and transfer alike
cs_sizes="15m 30m 60m all"  # Czech train sizes (cuts_train_<size>, "all" = cuts_train)
transfer_preset=encoder_decoder # conf/transfer preset of the main comparison
ablation_presets="encoder encoder_decoder_noshared encoder_frozen encoder_l2sp" # at the smallest size
decode_methods="greedy beam ctc-hlg" # decoding methods (stage 6)
ablation_decode_methods="greedy beam" # decoding methods of the ablation models
decode_avg=2                # average the last N epochs for decoding
lm_weights="0.0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0 1.1 1.2 1.3 1.4 1.5" # LM weight sweep
word_ins_penalties="0.0 0.5 1.0" # word insertion penalties swept with the LM weights
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

src_lang=en
src_exp=exp/en_$model_conf
smallest=${cs_sizes%% *}
cs_split() { [ "$1" = all ] && echo train || echo "train_$1"; }
# Epochs of a Czech model of train size $1: the same audio budget for every size.
cs_epochs() {
  python -c "import lhotse,sys,math; d=sum(c.duration for c in lhotse.load_manifest_lazy(sys.argv[1])); print(max(1, math.ceil($cs_audio_minutes * 60 / d)))" \
    data/fbank/cs/cuts_$(cs_split $1).jsonl.gz
}
# Every model: "exp_dir|lang|group|minutes" (minutes: Czech train size, "-" for English).
models() {
  echo "$src_exp|en|source|-"
  local size mins
  for size in $cs_sizes; do
    mins=${size%m}; [ "$size" = all ] && mins=$cs_train_minutes
    echo "exp/cs_scratch_$size|cs|scratch|$mins"
    echo "exp/cs_transfer_${transfer_preset}_$size|cs|transfer|$mins"
  done
  for preset in $ablation_presets; do
    mins=${smallest%m}
    echo "exp/cs_transfer_${preset}_$smallest|cs|ablation|$mins"
  done
}
model_epochs() {  # epochs of a model, from its exp dir name
  case $1 in exp/cs_*) cs_epochs ${1##*_} ;; *) echo $en_num_epochs ;; esac
}

if stage_in 4; then num_epochs=$en_num_epochs train_stage en $src_exp; fi

if stage_in 5; then
  for size in $cs_sizes; do
    n=$(cs_epochs $size)
    log "Czech $size: $n epochs (budget $cs_audio_minutes min of audio)"
    num_epochs=$n train_opts=$cs_train_opts train_stage cs exp/cs_scratch_$size $(cs_split $size)
    num_epochs=$n transfer_opts=$cs_train_opts transfer_stage $src_exp cs exp/cs_transfer_${transfer_preset}_$size \
      data/fbank/cs/cuts_$(cs_split $size).jsonl.gz $transfer_preset --source-epoch $en_num_epochs \
      --source-avg $decode_avg
  done
  n=$(cs_epochs $smallest)
  for preset in $ablation_presets; do
    num_epochs=$n transfer_opts=$cs_train_opts transfer_stage $src_exp cs exp/cs_transfer_${preset}_$smallest \
      data/fbank/cs/cuts_$(cs_split $smallest).jsonl.gz $preset --source-epoch $en_num_epochs \
      --source-avg $decode_avg
  done
fi

if stage_in 6; then
  for m in $(models); do
    IFS="|" read -r exp lang group mins <<< "$m"
    methods=$decode_methods; [ $group = ablation ] && methods=$ablation_decode_methods
    decode_methods=$methods decode_epoch=$(model_epochs $exp) decode_stage $exp $lang
  done
fi

if stage_in 7; then
  report_args=()
  for m in $(models); do
    IFS="|" read -r exp lang group mins <<< "$m"
    decode_epoch=$(model_epochs $exp)
    [ -d $exp/decode_epoch${decode_epoch}_avg${decode_avg} ] || { log "not decoded yet: $exp"; continue; }
    methods=$decode_methods; [ $group = ablation ] && methods=$ablation_decode_methods
    decode_methods=$methods decode_epoch=$decode_epoch score_stage $exp $lang
    report_args+=(--experiment "$(basename $exp)|$group|$mins|$exp/decode_epoch${decode_epoch}_avg${decode_avg}")
  done
  if [ ${#report_args[@]} -eq 0 ]; then
    log "stage 7: no decoded model to score (run stage 6 first); RESULTS.md left as it is"
    exit 1
  fi
  step "stage7_results" "" python $GRAFT_ROOT/steps/report.py --out RESULTS.md \
    --title "Demo results (egs/demo/ASR)" --methods "$decode_methods" --plot-methods "beam ctc-hlg" \
    --preamble results_preamble.md --figure "Training curves of the English source model|$src_exp/loss.png" \
    "${report_args[@]}"
fi
log "finished stages $stage..$stop_stage"
