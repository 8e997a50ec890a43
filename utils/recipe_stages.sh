# The stages every recipe shares, as functions; a recipe's run.sh calls them in its numbered
# stage blocks. Source after utils/parse_options.sh and utils/stage.sh.
#
#   if stage_in 1; then for lang in $langs; do manifests_stage $lang; done; fi
#
# They read the recipe's variables: corpus (the adapter local/$corpus.py), dl_dir,
# langs, download_opts, nj, seed, vocab_size, lm_order, and `train_subsets_<lang>` (dashes in
# the language code become underscores) or `train_subsets` (optional).
#
# Adapter contract (local/<corpus>.py):
#   download --dl-dir DIR [download_opts]   get or make the raw corpus; idempotent
#   prepare --dl-dir DIR --language L --out-dir data/manifests/L --train-subsets "15 30" --seed S
#       Lhotse manifests recordings_/supervisions_/cuts_<split>.jsonl.gz for train/dev/test
#       (and cuts_train_<N>m), report.json written last.

corpus_stage() {
  # complete when every language's report.json (written last by the adapter) exists
  step "stage0_${corpus}_download" "$(for l in $langs; do echo $dl_dir/$l/report.json; done)" \
    python $GRAFT_ROOT/local/$corpus.py download --dl-dir $dl_dir $download_opts
}

manifests_stage() {
  local lang=$1 subsets_var="train_subsets_${1//-/_}"  # e.g. train_subsets_zh_TW
  step "stage1_manifests_$lang" "data/manifests/$lang/report.json" \
    python $GRAFT_ROOT/local/$corpus.py prepare --dl-dir $dl_dir --language $lang \
      --out-dir data/manifests/$lang --train-subsets "${!subsets_var:-${train_subsets:-}}" --seed $seed
}

fbank_stage() {
  local lang=$1
  step "stage2_fbank_$lang" "data/fbank/$lang/report.json" \
    python $GRAFT_ROOT/steps/compute_fbank.py --manifest-dir data/manifests/$lang \
      --out-dir data/fbank/$lang --splits "train dev test" --jobs $nj
}

lang_stage() {
  local lang=$1
  local lm_text_arg=""
  [ -f "$dl_dir/$lang/lm_text.txt" ] && lm_text_arg="--lm-text $dl_dir/$lang/lm_text.txt"
  step "stage3_lang_$lang" "data/lang/${lang}_bpe${vocab_size}/lang.json" \
    python $GRAFT_ROOT/steps/prepare_lang.py --language $lang --manifest-dir data/manifests/$lang \
      $lm_text_arg --vocab-size $vocab_size --lm-order $lm_order \
      --out-dir data/lang/${lang}_bpe${vocab_size}
}

# The launcher of training steps: plain python, or DDP with $train_nproc processes (gloo on
# CPU: 2 processes of 1 thread train ~1.75x faster than 1 process of 2 threads on 2 cores).
train_launcher() {
  if [ "${train_nproc:-1}" -gt 1 ]; then
    echo "torchrun --standalone --nproc_per_node $train_nproc"
  else
    echo python
  fi
}

# train_stage LANG EXP_DIR [SPLIT [extra steps/train.py options]]: train a transducer on LANG's
# cuts_SPLIT (default train) (variables: model_conf, num_epochs, max_duration, train_opts,
# train_nproc).
train_stage() {
  local lang=$1 exp=$2 split=${3:-train}
  shift 2; [ $# -gt 0 ] && shift
  step "stage4_train_$(basename $exp)" "$exp/epoch-$num_epochs.pt" \
    $(train_launcher) $GRAFT_ROOT/steps/train.py --cuts-train data/fbank/$lang/cuts_$split.jsonl.gz \
      --cuts-dev data/fbank/$lang/cuts_dev.jsonl.gz --lang-dir data/lang/${lang}_bpe${vocab_size} \
      --exp-dir $exp --model-conf $model_conf --num-epochs $num_epochs \
      --max-duration $max_duration ${train_opts:-} "$@"
}

# transfer_stage SRC_EXP LANG EXP_DIR CUTS_TRAIN PRESET [extra steps/transfer.py options]:
# initialize a LANG model from SRC_EXP by the rules of conf/transfer/PRESET.yaml and fine-tune
# it on CUTS_TRAIN (variables: src_lang, num_epochs, max_duration, transfer_opts).
transfer_stage() {
  local src=$1 lang=$2 exp=$3 cuts=$4 preset=$5
  shift 5
  step "stage5_transfer_$(basename $exp)" "$exp/epoch-$num_epochs.pt" \
    $(train_launcher) $GRAFT_ROOT/steps/transfer.py --source-exp $src \
      --source-lang-dir data/lang/${src_lang}_bpe${vocab_size} --transfer-conf $preset \
      --cuts-train $cuts --cuts-dev data/fbank/$lang/cuts_dev.jsonl.gz \
      --lang-dir data/lang/${lang}_bpe${vocab_size} --exp-dir $exp \
      --num-epochs $num_epochs --max-duration $max_duration ${transfer_opts:-} "$@"
}

# decode_stage EXP LANG: decode LANG's dev and test with every method in $decode_methods, using
# the epoch/avg in $decode_epoch / $decode_avg (variables: lm_weights, nj).
decode_stage() {
  local exp=$1 lang=$2 dir="decode_epoch${decode_epoch}_avg${decode_avg}"
  step "stage6_decode_$(basename $exp)" "$exp/$dir/rtf.json" \
    python $GRAFT_ROOT/steps/decode.py --exp-dir $exp --lang-dir data/lang/${lang}_bpe${vocab_size} \
      --sets "dev:data/fbank/$lang/cuts_dev.jsonl.gz test:data/fbank/$lang/cuts_test.jsonl.gz" \
      --methods "$decode_methods" --epoch $decode_epoch --avg $decode_avg \
      --lm-weights "$lm_weights" --num-jobs $nj --decode-dir $dir
}

# score_stage EXP LANG: WER/CER of every method at every LM weight and insertion penalty,
# weights chosen on dev and applied to test (variables: lm_weights, word_ins_penalties). Runs
# every time (re-scoring is cheap and needs no model): `--stage 7 --lm-weights "..."`.
score_stage() {
  local exp=$1 lang=$2 dir="decode_epoch${decode_epoch}_avg${decode_avg}"
  step "stage7_score_$(basename $exp)" "" \
    python $GRAFT_ROOT/steps/score.py --decode-root $exp/$dir --method $decode_methods \
      --dev-set dev --test-set test --lm-weights "$lm_weights" \
      --word-ins-penalties "$word_ins_penalties" --lang-dir data/lang/${lang}_bpe${vocab_size} \
      --num-jobs $nj
}
