#!/usr/bin/env bash
# Graft demo recipe: English and Polish (source) and Czech (target) speech synthesized offline
# from Debian's TTS engines and fortune texts, then the usual Kaldi/icefall-style stages.
# The source is one model of English and Polish together; `--source-langs en` makes it English only.
#
#   ./run.sh                          # everything
#   ./run.sh --stage 2 --stop-stage 3 # only features and the language side
#   ./run.sh --grid demo_full         # stage 5 with every Czech size and the ablation
#   ./run.sh --help                   # every option with its default
#
# Stages:
#   0  synthesize the corpus (local/demo.py download) -> data/corpus/<lang>/: train/dev/test in the
#      training voices, test_unseen (voice-disjoint) in the held-out voices (and Polish, for a
#      source with pl in --source-langs)
#   1  Lhotse manifests per language and split, nested Czech train subsets -> data/manifests/
#   2  80-dim fbank, lilcom storage -> data/fbank/; several source languages combined into one
#      (steps/combine_languages.py) -> data/fbank/<langs joined by _>/, e.g. en_pl, whose test_unseen
#      holds the languages that have one (English's; Polish's too with --pl-unseen-minutes > 0)
#   3  language side: BPE lang dir, then its LM dir (lexicon, n-gram LM, G, L, LG, HLG) -> data/lang/
#   4  train the source transducer (pruned RNN-T + CTC) -> exp/<source>_<model_conf>/ (en_pl_small)
#   5  the Czech transfer grid (conf/grid/<grid>.yaml): transfer from --source-exp and from scratch
#      at an equal budget, per train size -> exp/cs_<name>/
#   6  decode dev/test/test_unseen of every model: greedy, modified beam (n-best), CTC + HLG lattices
#   7  score at every LM weight (chosen on dev, applied to test and test_unseen); RESULTS.md with a plot
#      (`./run.sh --stage 7 --lm-weights "..."` re-scores without decoding again)
#   8  export every model to ONNX for sherpa-onnx (steps/export_onnx.py) -> exp/<model>/export/
set -euo pipefail
cd "$(dirname "$0")"
. ../../../utils/env.sh

stage=0                     # first stage to run
stop_stage=8                # last stage to run
force=false                 # re-run stages even when their inputs and options are unchanged
nj=2                        # parallel jobs (synthesis, features, lattices)
seed=0                      # corpus selection and subset seed
dl_dir=data/corpus          # where stage 0 writes the synthesized corpus
en_train_minutes=400        # English train audio (minutes): 400 min x 6 epochs beat 200 x 12 (same updates) by 3.7 greedy test points
en_dev_minutes=15           # English dev audio (minutes)
en_test_minutes=15          # English test audio (minutes)
source_langs="en pl"        # source languages (en, pl): one model on both (one BPE, one LM; default since 2026-12-07);
                            # its Czech transfer against the English-only source's (en): test ctc-hlg-rnnt 33.23 -> 29.11,
                            # -4.12 [-5.50, -2.57] over 5 seeds, with the grid's speaker adversary
                            # (bench/results/demo_cs_en_vs_en_pl_dat_spk_5_seeds.md)
pl_train_minutes=240        # Polish train audio (minutes; only with pl in source_langs)
pl_dev_minutes=10           # Polish dev audio (minutes)
pl_test_minutes=10          # Polish test audio (minutes)
pl_train_reads=2            # times Polish train may read a sentence (each in another voice): it has ~2,400 sentences
pl_unseen_minutes=0         # Polish test_unseen audio (minutes; one held-out voice); 0 = none: more takes its
                            # sentences before train's, so it changes the source's training data
cs_train_minutes=100        # Czech train audio, all (minutes)
cs_dev_minutes=10           # Czech dev audio (minutes)
cs_test_minutes=15          # Czech test audio (minutes)
en_unseen_minutes=10        # English test_unseen audio (minutes), read by held-out voices only; 0 = none
cs_unseen_minutes=10        # Czech test_unseen audio (minutes), read by held-out voices only; 0 = none
extra_lm_text=forms         # Debian text added to the LM text: none, text, forms (text + inflected forms; Czech),
                            # thesaurus (forms also of the thesaurus's words: dev coverage 97 %, 851k words)
cs_train_subsets="15 30 60" # nested Czech train subsets (minutes) besides "all"
vocab_size=150              # BPE vocabulary size (each language): 500 did not leave the CTC plateau in budget
lm_order=3                  # n-gram order of the word LM
model_conf=small            # model preset (conf/model/*.yaml)
max_duration=30             # seconds of audio per batch (per process): ~920 steps per English epoch
train_nproc=1               # training processes (>1: DDP via torchrun, one thread each)
num_epochs=                 # source model epochs (empty: 6 for en, 4 with pl; both ~2,400 min of audio, ~5,600 updates;
                            # bench/results/demo_en_400_vs_200_minutes.md)
lr_epochs=                  # epochs of Eden's decay (empty: 2.5 for en, 1.56 with pl: the same decay per minute of audio)
train_opts="--ctc-weight 0.2 --warm-steps 200 --lr-steps 1000 --spec-augment false" # source model; CTC head for HLG; --dropout 0 x 8 epochs: better English, worse Czech transfer (bench/results/en_small_nodrop_8ep.md)
source_exp=                 # stage 5's source model (default: this recipe's source model, exp/<source>_<model_conf>)
source_epoch=               # the source epoch stage 5 transfers from, averaged over decode_avg epochs (empty: its last)
grid=demo                   # stage 5's transfer grid: conf/grid/<grid>.yaml (demo_full: every size + ablation)
grid_opts=                  # steps/grid.py overrides, e.g. "--sizes '15m all' --budget-minutes 90 --speed-perturb false" or "--train-opts '--adversarial speaker'"
decode_methods="greedy beam beam-lex ctc-hlg ctc-hlg-rnnt" # stage 6 methods of the source model (the grid's are in its yaml)
decode_avg=2                # average the last N epochs for decoding
lm_weights=                 # LM weight sweep of stages 6-7 (default: conf/decode.yaml)
word_ins_penalties=         # word insertion penalties of stage 7 (default: conf/decode.yaml)
log_dir=exp/log             # where each step's log goes
stages="0 1 2 3 4 5 6 7 8"  # the stages of this recipe
. ../../../utils/parse_options.sh
. ../../../utils/stage.sh
. ../../../utils/recipe_stages.sh

src_lang=${source_langs// /_}   # the source's training language: en, or en_pl for "en pl"
if [ "$src_lang" = en ]; then num_epochs=${num_epochs:-6} lr_epochs=${lr_epochs:-2.5}
else num_epochs=${num_epochs:-4} lr_epochs=${lr_epochs:-1.56}; fi
src_exp=exp/${src_lang}_$model_conf
source_exp=${source_exp:-$src_exp}
[ -n "${source_langs// /}" ] || { echo "ERROR: --source-langs is empty: give the source's languages, e.g. en or \"en pl\"" >&2; exit 1; }
extra_langs=""                  # source languages stage 0 makes besides English and Czech
for l in $source_langs; do
  case $l in
    en) ;;
    pl) extra_langs="$extra_langs pl" ;;
    *) echo "ERROR: --source-langs '$source_langs': this recipe synthesizes en and pl sources only (got '$l')" >&2; exit 1 ;;
  esac
done
decode_opts=(${lm_weights:+--lm-weights "$lm_weights"})
score_opts=(${lm_weights:+--lm-weights "$lm_weights"} ${word_ins_penalties:+--word-ins-penalties "$word_ins_penalties"})
eval "grid_args=($grid_opts)"
report_opts=(--preamble results_preamble.md --plot-methods "beam-lex ctc-hlg ctc-hlg-rnnt" --stage-times $log_dir
  --stage-of "stage4_train_cs_*=5")
[ "$src_lang" = "$source_langs" ] || report_opts+=(--language-of '^([a-z]+)-')  # ids begin with the language

if stage_in 0; then
  corpus_stage demo $dl_dir "en cs" "" --seed $seed --jobs $nj \
    --en-train-minutes $en_train_minutes --en-dev-minutes $en_dev_minutes --en-test-minutes $en_test_minutes \
    --cs-train-minutes $cs_train_minutes --cs-dev-minutes $cs_dev_minutes --cs-test-minutes $cs_test_minutes \
    --en-unseen-minutes $en_unseen_minutes --cs-unseen-minutes $cs_unseen_minutes --extra-lm-text $extra_lm_text
  if [[ " $extra_langs " == *" pl "* ]]; then  # a step of its own: its options do not touch English and Czech
    corpus_tag=pl corpus_stage demo $dl_dir pl "" --languages pl --seed $seed --jobs $nj --train-reads $pl_train_reads \
      --pl-train-minutes $pl_train_minutes --pl-dev-minutes $pl_dev_minutes --pl-test-minutes $pl_test_minutes \
      --pl-unseen-minutes $pl_unseen_minutes
  fi
fi
if stage_in 1; then
  manifests_stage demo $dl_dir en "" $seed
  manifests_stage demo $dl_dir cs "$cs_train_subsets" $seed
  for l in $extra_langs; do manifests_stage demo $dl_dir $l "" $seed; done
fi
if stage_in 2; then
  for lang in en cs $extra_langs; do fbank_stage $lang; done
  [ "$src_lang" = "$source_langs" ] || combine_stage $src_lang "$source_langs"
fi
if stage_in 3; then
  src_lm_text=$dl_dir/$src_lang/lm_text.txt                             # one language's
  [ "$src_lang" = "$source_langs" ] || src_lm_text=data/manifests/$src_lang/lm_text.txt  # the combined one's
  lang_stage $src_lang $vocab_size $lm_order $src_lm_text
  lang_stage cs $vocab_size $lm_order $dl_dir/cs/lm_text.txt
fi
if stage_in 4; then
  train_stage $src_lang $vocab_size $src_exp train $num_epochs --model-conf $model_conf \
    --max-duration $max_duration --lr-epochs $lr_epochs $train_opts
fi
if stage_in 5; then
  transfer_grid_stage $source_exp cs $vocab_size cs $grid "--max-duration $max_duration" \
    $decode_avg "$source_epoch" ${grid_args[@]+"${grid_args[@]}"}
fi
if stage_in 6 || stage_in 7 || stage_in 8; then
  models=$(recipe_models $src_exp $src_lang "$decode_methods" $source_exp cs $grid cs ${grid_args[@]+"${grid_args[@]}"})
fi
if stage_in 6; then decode_models "$models" $vocab_size $lm_order $decode_avg ${decode_opts[@]+"${decode_opts[@]}"}; fi
if stage_in 7; then
  # looked up here, not at the top: a run from stage 0 writes the figure in stage 4
  [ -f $src_exp/loss.png ] && report_opts+=(--figure "Training curves of the source model ($source_langs)|$src_exp/loss.png")
  score_models "$models" $decode_avg RESULTS.md "Demo results (egs/demo/ASR)" ${score_opts[@]+"${score_opts[@]}"}
  python $GRAFT_ROOT/steps/stage_times.py --log-dir $log_dir --stage-of "stage4_train_cs_*=5" \
    --title "make demo: wall time per stage" --out $GRAFT_ROOT/bench/results/demo_stage_times.md
fi
if stage_in 8; then export_models "$models" $vocab_size $lm_order $decode_avg; fi
log "finished stages $stage..$stop_stage"
