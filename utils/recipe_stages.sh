# The stages every recipe shares, as functions with explicit arguments; a recipe's run.sh calls
# them in its numbered stage blocks. Source after utils/parse_options.sh and utils/stage.sh.
# No function reads a recipe's variables, but `nj` (parallel jobs) and `train_nproc`.
#
#   if stage_in 1; then manifests_stage demo data/corpus cs "15 30 60" 0; fi
#
# Adapter contract (local/<corpus>.py):
#   download --dl-dir DIR [download options]   get or make the raw corpus; idempotent
#   prepare --dl-dir DIR --language L --out-dir data/manifests/L --train-subsets "15 30" --seed S
#       Lhotse manifests recordings_/supervisions_/cuts_<split>.jsonl.gz for train/dev/test
#       (+ the optional test_unseen: voices no other split has; and cuts_train_<N>m), report.json
#       written last. Stages 2, 3, 6 and 7 carry test_unseen along when its manifest exists.
# Every step records a stamp of its inputs and options (utils/stage.sh): a step is skipped only
# when both are unchanged; otherwise it says what changed and runs again.

# lang_dir LANG VOCAB / lm_dir LANG VOCAB ORDER: where stage 3 puts the BPE side and the LM
# (below $lang_root, default data/lang; bench/lm_ablation.sh builds another one beside it).
lang_dir() { echo "${lang_root:-data/lang}/${1}_bpe${2}"; }
lm_dir() { echo "$(lang_dir $1 $2)/lm_${3}gram"; }

# last_epoch EXP: the highest N of EXP/epoch-N.pt (empty when there is none).
last_epoch() {
  local f n best=""
  for f in "$1"/epoch-*.pt; do
    [ -e "$f" ] || continue
    n=${f##*/epoch-}; n=${n%.pt}
    [[ "$n" =~ ^[0-9]+$ ]] || continue
    if [ -z "$best" ] || [ "$n" -gt "$best" ]; then best=$n; fi
  done
  echo "$best"
}

# decode_epoch EXP: the epoch stages 6-8 use: for a run that stopped on its dev WER
# (EXP/dev_wer.json, --early-stop-patience) its best epoch, else the last (empty when none).
decode_epoch() {
  if [ -f "$1/dev_wer.json" ]; then
    python -m graft.train.early_stop decode-epoch "$1" || exit 1
  else
    last_epoch "$1"
  fi
}

# corpus_stage CORPUS DL_DIR "LANGS" "INPUTS" [download options...]: stage 0, complete when every
# language's report.json (written last by the adapter) exists. INPUTS: files the corpus is made
# from (e.g. a transcript table), so that editing them re-runs the stage. A second download of
# the same corpus in one recipe (other languages, other options) sets corpus_tag, which names
# its step (stage0_<corpus>_download_<tag>): `corpus_tag=pl corpus_stage demo data/corpus pl "" ...`.
corpus_stage() {
  local corpus=$1 dl_dir=$2 langs=$3 inputs=$4 l outs=""
  shift 4
  for l in $langs; do outs="$outs $dl_dir/$l/report.json"; done
  step "stage0_${corpus}_download${corpus_tag:+_$corpus_tag}" "${outs# }" --inputs "$inputs" \
    python $GRAFT_ROOT/local/$corpus.py download --dl-dir $dl_dir "$@"
}

# manifests_stage CORPUS DL_DIR LANG "SUBSET_MINUTES" SEED: stage 1.
manifests_stage() {
  local corpus=$1 dl_dir=$2 lang=$3 subsets=$4 seed=$5
  step "stage1_manifests_$lang" "data/manifests/$lang/report.json" \
    --inputs "$dl_dir/$lang/transcripts.tsv" --clear "data/manifests/$lang" \
    python $GRAFT_ROOT/local/$corpus.py prepare --dl-dir $dl_dir --language $lang \
      --out-dir data/manifests/$lang --train-subsets "$subsets" --seed $seed
}

# eval_splits DIR: the evaluated splits whose cuts DIR holds: "dev test", then test_unseen when
# DIR/cuts_test_unseen.jsonl.gz exists (an optional split: only some corpora have it).
eval_splits() {
  local out="dev test"
  [ -f "$1/cuts_test_unseen.jsonl.gz" ] && out="$out test_unseen"
  echo "$out"
}

# fbank_stage LANG: stage 2, features of every cut manifest of LANG.
fbank_stage() {
  local lang=$1
  step "stage2_fbank_$lang" "data/fbank/$lang/report.json" \
    --inputs "$(echo data/manifests/$lang/cuts_*.jsonl.gz)" --clear "data/fbank/$lang" \
    python $GRAFT_ROOT/steps/compute_fbank.py --manifest-dir data/manifests/$lang \
      --out-dir data/fbank/$lang --splits "train $(eval_splits data/manifests/$lang)" --jobs ${nj:-1}
}

# combine_stage NAME "LANGS": several languages' stage-1/2 outputs as one training language NAME
# (steps/combine_languages.py: data/manifests/NAME/ with its lm_text.txt, data/fbank/NAME/), so
# that stages 3-4 train one multilingual model on it; run after stages 1-2 of every language.
# Its test_unseen holds the languages that have one. Its inputs are every language's feature
# manifests, so a split added to one language (e.g. Polish's test_unseen) combines again.
combine_stage() {
  local name=$1 langs=$2 l inputs=""
  for l in $langs; do inputs="$inputs data/manifests/$l/report.json data/fbank/$l/report.json $(echo data/fbank/$l/cuts_*.jsonl.gz)"; done
  step "stage2_combine_$name" "data/fbank/$name/report.json data/manifests/$name/report.json" \
    --inputs "${inputs# }" python $GRAFT_ROOT/steps/combine_languages.py --languages $langs --name $name
}

# lang_stage LANG VOCAB LM_ORDER [LM_TEXT [steps/prepare_lang.py options...]]: stage 3, the BPE
# lang dir and its LM dir (a new LM order builds a new LM dir beside the old one; the BPE model is
# kept when its text is the same).
lang_stage() {
  local lang=$1 vocab=$2 order=$3 lm_text=${4:-} m=data/manifests/$1 split sups=""
  shift $(( $# < 4 ? $# : 4 ))
  local args=()
  [ -n "$lm_text" ] && [ -f "$lm_text" ] && args=(--lm-text "$lm_text")
  for split in train $(eval_splits $m); do sups="$sups $m/supervisions_$split.jsonl.gz"; done
  step "stage3_lang_${lang}_bpe${vocab}_lm${order}" "$(lm_dir $lang $vocab $order)/lm.json" \
    --inputs "${sups# } $lm_text $GRAFT_ROOT/conf/lang.yaml" \
    python $GRAFT_ROOT/steps/prepare_lang.py --language $lang --manifest-dir $m \
      "${args[@]}" --vocab-size $vocab --lm-order $order --out-dir $(lang_dir $lang $vocab) "$@"
}

# The launcher of training steps: plain python, or DDP with $train_nproc processes (gloo on CPU).
train_launcher() {
  if [ "${train_nproc:-1}" -gt 1 ]; then
    echo "torchrun --standalone --nproc_per_node $train_nproc"
  else
    echo python
  fi
}

# train_stage LANG VOCAB EXP SPLIT EPOCHS [steps/train.py options...]: stage 4 (and the
# from-scratch baselines of stage 5): a transducer on LANG's cuts_SPLIT. Changed options resume
# the same experiment (more epochs, a time budget, logging) or stop with the reason (another
# model, lang dir or training option such as --speed-perturb or --base-lr: use another exp dir,
# or --force true to start it afresh; graft.train.loop.RESUMABLE_OPTIONS).
train_stage() {
  train_stage_to "$3/epoch-$5.pt" "$@"
}

# train_stage_to OUTPUT LANG VOCAB EXP SPLIT EPOCHS [steps/train.py options...]: train_stage whose
# step is done when OUTPUT exists, e.g. EXP/dev_wer.json for a run that may stop early.
train_stage_to() {
  local out=$1 lang=$2 vocab=$3 exp=$4 split=$5 epochs=$6
  shift 6
  step "stage4_train_$(basename $exp)" "$out" \
    --inputs "data/fbank/$lang/cuts_$split.jsonl.gz $(lang_dir $lang $vocab)/tokens.txt" --clear-on-force "$exp" \
    $(train_launcher) $GRAFT_ROOT/steps/train.py --cuts-train data/fbank/$lang/cuts_$split.jsonl.gz \
      --cuts-dev data/fbank/$lang/cuts_dev.jsonl.gz --lang-dir $(lang_dir $lang $vocab) \
      --exp-dir $exp --num-epochs $epochs "$@"
}

# transfer_stage SRC_EXP LANG VOCAB EXP SPLIT EPOCHS PRESET [steps/transfer.py options...]:
# stage 5: initialize a LANG model from SRC_EXP (its own lang dir comes with it) by the rules of
# conf/transfer/PRESET.yaml and fine-tune it on cuts_SPLIT.
transfer_stage() {
  local src=$1 lang=$2 vocab=$3 exp=$4 split=$5 epochs=$6 preset=$7
  shift 7
  step "stage5_transfer_$(basename $exp)" "$exp/epoch-$epochs.pt" \
    --inputs "data/fbank/$lang/cuts_$split.jsonl.gz $(lang_dir $lang $vocab)/tokens.txt $src/lang/tokens.txt" \
    --clear-on-force "$exp" \
    $(train_launcher) $GRAFT_ROOT/steps/transfer.py --source-exp $src --transfer-conf $preset \
      --cuts-train data/fbank/$lang/cuts_$split.jsonl.gz --cuts-dev data/fbank/$lang/cuts_dev.jsonl.gz \
      --lang-dir $(lang_dir $lang $vocab) --exp-dir $exp --num-epochs $epochs "$@"
}

# grid_models GRID LANG [steps/grid.py options...]: the transfer grid's models, one
# tab-separated line each (name group preset split epochs minutes methods train_opts).
grid_models() {
  local grid=$1 lang=$2
  shift 2
  python $GRAFT_ROOT/steps/grid.py --grid $grid --fbank-dir data/fbank/$lang "$@"
}

# transfer_epoch SRC_EXP [EPOCH]: the epoch a transfer starts from: EPOCH when SRC_EXP has it, its
# last epoch when EPOCH is empty; fails with a message naming the last epoch otherwise.
transfer_epoch() {
  if [ -z "${2:-}" ]; then
    last_epoch $1
  elif [ -f $1/epoch-$2.pt ]; then
    echo $2
  else
    echo "ERROR: --source-epoch $2: $1/epoch-$2.pt does not exist (its last epoch is $(last_epoch $1)): choose an epoch it has, or train it that far" >&2
    return 1
  fi
}

# grid_stage SRC_EXP LANG VOCAB EXP_PREFIX GRID "TRAIN_OPTS" SOURCE_AVG SOURCE_EPOCH [steps/grid.py options...]:
# stage 5, every model of the grid (scratch baselines with train_stage, transfers with
# transfer_stage) into exp/<EXP_PREFIX>_<name>/; the scratch_converged model stops on its dev WER,
# so its step is done when its dev_wer.json says so (not at its last epoch). TRAIN_OPTS go to every model (after the grid's
# own train_opts); the transfers start from the source's epoch SOURCE_EPOCH ("": its last)
# averaged over SOURCE_AVG epochs (at most all of them).
grid_stage() {
  local src=$1 lang=$2 vocab=$3 prefix=$4 grid=$5 extra=$6 src_avg=$7 src_epoch=$8
  local lines name group preset split epochs mins methods opts
  shift 8
  src_epoch=$(transfer_epoch $src "$src_epoch") || exit 1
  [ "$src_avg" -gt "$src_epoch" ] && src_avg=$src_epoch
  local source_opts="--source-epoch $src_epoch --source-avg $src_avg"
  lines=$(grid_models $grid $lang "$@") || exit 1
  while IFS=$'\t' read -r name group preset split epochs mins methods opts; do
    [ -n "$name" ] || continue
    log "grid $grid: ${prefix}_$name ($group, $split = $mins min, $epochs epochs)"
    if [ "$group" = scratch ] || [ "$group" = scratch_seed ]; then  # the source's architecture, from scratch
      train_stage $lang $vocab exp/${prefix}_$name $split $epochs --model-conf $src/model.yaml $opts $extra
    elif [ "$group" = scratch_converged ]; then  # the same, until its dev WER stops improving
      train_stage_to exp/${prefix}_$name/dev_wer.json $lang $vocab exp/${prefix}_$name $split $epochs \
        --model-conf $src/model.yaml $opts $extra
    else
      transfer_stage $src $lang $vocab exp/${prefix}_$name $split $epochs $preset $opts $extra $source_opts
    fi
  done <<< "$lines"
}

# decode_stage EXP LANG VOCAB LM_ORDER "METHODS" AVG [steps/decode.py options...]: stage 6,
# LANG's dev and test (and test_unseen when its features exist) with the last epoch of EXP
# averaged over AVG epochs (at most all of them; other settings: conf/decode.yaml, overridden
# by the options). A run that stopped on its dev WER is decoded at its best epoch instead
# (decode_epoch), averaged the same way over the AVG epochs up to it.
decode_stage() {
  local exp=$1 lang=$2 vocab=$3 order=$4 methods=$5 avg=$6 epoch split sets="" cuts=""
  shift 6
  epoch=$(decode_epoch $exp)
  if [ -z "$epoch" ]; then
    log "stage 6: $exp has no epoch-N.pt (train it first: stage 4 or 5); not decoded"
    return 0
  fi
  [ "$avg" -gt "$epoch" ] && avg=$epoch
  local lm=$(lm_dir $lang $vocab $order) root=$exp/decode_epoch${epoch}_avg$avg
  for split in $(eval_splits data/fbank/$lang); do
    sets="$sets $split:data/fbank/$lang/cuts_$split.jsonl.gz"
    cuts="$cuts data/fbank/$lang/cuts_$split.jsonl.gz"
  done
  step "stage6_decode_$(basename $exp)" "$root/rtf.json" \
    --inputs "$exp/epoch-$epoch.pt $lm/HLG.fst${cuts}" \
    python $GRAFT_ROOT/steps/decode.py --exp-dir $exp --lm-dir $lm \
      --sets "${sets# }" \
      --methods "$methods" --epoch $epoch --avg $avg "$@"
}

# decoded_settings EXP: "LM_ORDER AVG DIR/" of EXP's latest stage-6 decode dir (its LM order
# from decode.json, its averaging from its name), for a bench run decoded the same way; fails
# with a message when EXP is not decoded.
decoded_settings() {
  local last order
  last=$(ls -d $1/decode_epoch*_avg*/ 2>/dev/null | sort -V | tail -1)
  if [ -z "$last" ] || [ ! -f "${last}decode.json" ]; then
    echo "ERROR: $1 is not decoded yet: run stage 6 of this recipe first" >&2
    return 1
  fi
  order=$(python -c "import json; print(json.load(open('${last}decode.json'))['lm_dir'])" | sed 's/.*lm_\([0-9]*\)gram.*/\1/')
  echo "$order $(echo $last | sed 's/.*_avg\([0-9]*\)\/$/\1/') $last"
}

# decode_root EXP AVG: the decode dir stage 6 writes for EXP (empty when EXP has no epoch).
decode_root() {
  local epoch avg=$2
  epoch=$(decode_epoch $1)
  [ -n "$epoch" ] || return 0
  [ "$avg" -gt "$epoch" ] && avg=$epoch
  echo "$1/decode_epoch${epoch}_avg$avg"
}

# score_stage EXP "METHODS" AVG [steps/score.py options...]: stage 7, WER/CER of every method at
# every LM weight and insertion penalty, chosen on dev and applied to test (and to test_unseen
# when every method decoded it). Re-scoring is cheap and needs no model: `--stage 7 --lm-weights
# "..."` re-scores (the options are in the stamp).
score_stage() {
  local exp=$1 methods=$2 avg=$3 root m outs="" unseen=true
  shift 3
  root=$(decode_root $exp $avg)
  if [ -z "$root" ] || [ ! -f "$root/decode.json" ]; then
    log "stage 7: $exp is not decoded yet (run stage 6); not scored"
    return 0
  fi
  for m in $methods; do outs="$outs $root/$m/selection.json"; done
  for m in $methods; do [ -d "$root/$m/test_unseen" ] || unseen=false; done
  local tests=()  # without test_unseen the command (and so the stamp) is as it always was
  $unseen && tests=(--test-sets "test test_unseen")
  step "stage7_score_$(basename $exp)" "${outs# }" --inputs "$root/decode.json $root/rtf.json" \
    python $GRAFT_ROOT/steps/score.py --decode-root $root --methods "$methods" ${tests[@]+"${tests[@]}"} "$@"
}

# recipe_models TRAIN_EXP TRAIN_LANG "METHODS" SOURCE_EXP TARGET_LANG GRID PREFIX [grid options...]:
# every model of a recipe, one tab-separated line each (exp lang group minutes methods): the
# stage-4 model, then (when SOURCE_EXP is set) the grid's models whose features exist.
recipe_models() {
  local train_exp=$1 train_lang=$2 methods=$3 src=$4 target=$5 grid=$6 prefix=$7 lines
  shift 7
  printf '%s\t%s\t%s\t%s\t%s\n' "$train_exp" "$train_lang" trained - "${methods// /,}"
  [ -n "$src" ] || return 0
  lines=$(grid_models $grid $target --allow-missing "$@") || return 0
  while IFS=$'\t' read -r name group preset split epochs mins meth opts; do
    [ -n "$name" ] || continue
    printf '%s\t%s\t%s\t%s\t%s\n' "exp/${prefix}_$name" "$target" "$group" "$mins" "$meth"
  done <<< "$lines"
}

# transfer_grid_stage SRC_EXP LANG VOCAB PREFIX GRID "TRAIN_OPTS" SOURCE_AVG SOURCE_EPOCH [grid options...]:
# stage 5 (grid_stage), or a line saying why it is skipped (no source model set).
transfer_grid_stage() {
  if [ -z "$1" ]; then
    log "stage 5 skipped: no source model (--source-exp DIR: a model trained by another recipe's stage 4)"
    return 0
  fi
  if [ -z "$(last_epoch $1)" ] || [ ! -f "$1/model.yaml" ]; then
    echo "ERROR: --source-exp $1 holds no trained model (epoch-N.pt and model.yaml): train it first (its recipe's stage 4)" >&2
    exit 1
  fi
  grid_stage "$@"
}

# decode_models "MODELS" VOCAB LM_ORDER AVG [steps/decode.py options...]: stage 6 for every line
# of recipe_models.
decode_models() {
  local models=$1 vocab=$2 order=$3 avg=$4 exp lang group mins methods
  shift 4
  while IFS=$'\t' read -r exp lang group mins methods; do
    [ -n "$exp" ] || continue
    decode_stage $exp $lang $vocab $order "${methods//,/ }" $avg "$@"
  done <<< "$models"
}

# score_models "MODELS" AVG RESULTS TITLE [steps/score.py options...]: stage 7 for every line of
# recipe_models, then RESULTS (RESULTS.md) from every scored model (steps/report.py; options
# of the report in $report_opts). Says so and fails when nothing is decoded yet.
score_models() {
  local models=$1 avg=$2 out=$3 title=$4 exp lang group mins methods root all_methods=""
  shift 4
  local report_args=()
  while IFS=$'\t' read -r exp lang group mins methods; do
    [ -n "$exp" ] || continue
    root=$(decode_root $exp $avg)
    if [ -z "$root" ] || [ ! -f "$root/decode.json" ]; then
      log "stage 7: $exp is not decoded yet (run stage 6); left out"
      continue
    fi
    score_stage $exp "${methods//,/ }" $avg "$@"
    report_args+=(--experiment "$(basename $exp)|$group|$mins|$root")
    all_methods="$all_methods ${methods//,/ }"
  done <<< "$models"
  if [ ${#report_args[@]} -eq 0 ]; then
    echo "ERROR: stage 7: no decoded model to score (run stages 4-6 first); $out left as it is" >&2
    exit 1
  fi
  all_methods=$(echo $all_methods | tr ' ' '\n' | awk '!seen[$0]++' | tr '\n' ' ')
  local scored
  scored=$(for a in "${report_args[@]}"; do [ "$a" = --experiment ] || echo "${a##*|}"/*/selection.json; done)
  local o prev="" texts=""   # the report's own text files are inputs too (a new preamble re-writes it)
  for o in ${report_opts[@]+"${report_opts[@]}"}; do [ "$prev" = --preamble ] && texts="$texts $o"; prev=$o; done
  step "stage7_results" "$out" --inputs "$(echo $scored)$texts" python $GRAFT_ROOT/steps/report.py --out $out --title "$title" \
    --methods "${all_methods% }" ${report_opts[@]+"${report_opts[@]}"} "${report_args[@]}"
}

# export_models "MODELS" VOCAB LM_ORDER AVG: stage 8, every line of recipe_models to an ONNX
# folder that sherpa-onnx runs (steps/export_onnx.py: the last epoch averaged as in stage 6,
# checked against torch, the LM dir's HLG.fst beside it) -> exp/<model>/export/epoch<E>_avg<A>/
# (E: decode_epoch, the best epoch of a run that stopped on its dev WER).
export_models() {
  local models=$1 vocab=$2 order=$3 avg=$4 exp lang group mins methods epoch a
  while IFS=$'\t' read -r exp lang group mins methods; do
    [ -n "$exp" ] || continue
    epoch=$(decode_epoch $exp)
    if [ -z "$epoch" ]; then log "stage 8: $exp has no model yet; not exported"; continue; fi
    a=$avg; [ "$a" -gt "$epoch" ] && a=$epoch
    local out=$exp/export/epoch${epoch}_avg$a lm=$(lm_dir $lang $vocab $order)
    step "stage8_export_$(basename $exp)" "$out/export.json" \
      --inputs "$exp/epoch-$epoch.pt $lm/HLG.fst $(decode_root $exp $a)/decode.json" \
      python $GRAFT_ROOT/steps/export_onnx.py --exp-dir $exp --epoch $epoch --avg $a --lm-dir $lm --out-dir $out
  done <<< "$models"
}
