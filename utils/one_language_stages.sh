# Stages 1-8 of a one-language recipe (librispeech, commonvoice, yesno, utils/new_recipe.sh's):
# the same numbered blocks for every such recipe, from the functions of utils/recipe_stages.sh.
# Source it in run.sh after stage 0. It reads only the variables every one-language recipe
# defines (listed below; `./run.sh --help` documents each):
#   corpus dl_dir lang train_subsets seed vocab_size lm_order model_conf num_epochs max_duration
#   train_opts source_exp grid grid_opts decode_methods decode_avg lm_weights word_ins_penalties
#   results_title (and source_epoch, optional: empty or unset transfers from the source's last epoch)
for _v in corpus dl_dir lang train_subsets seed vocab_size lm_order model_conf num_epochs max_duration \
    train_opts source_exp grid grid_opts decode_methods decode_avg lm_weights word_ins_penalties results_title; do
  [ -n "${!_v+set}" ] || { echo "ERROR: $0 does not define '$_v' (utils/one_language_stages.sh needs it)" >&2; exit 1; }
done

train_exp=exp/${lang}_$model_conf  # stage 4's model (the source of other recipes: --source-exp .../exp/<this>)
decode_opts=(${lm_weights:+--lm-weights "$lm_weights"})
score_opts=(${lm_weights:+--lm-weights "$lm_weights"} ${word_ins_penalties:+--word-ins-penalties "$word_ins_penalties"})
eval "grid_args=($grid_opts)"

if stage_in 1; then manifests_stage $corpus $dl_dir $lang "$train_subsets" $seed; fi
if stage_in 2; then fbank_stage $lang; fi
if stage_in 3; then lang_stage $lang $vocab_size $lm_order $dl_dir/$lang/lm_text.txt; fi
if stage_in 4; then
  train_stage $lang $vocab_size $train_exp train $num_epochs --model-conf $model_conf \
    --max-duration $max_duration $train_opts
fi
if stage_in 5; then
  transfer_grid_stage "$source_exp" $lang $vocab_size $lang $grid "--max-duration $max_duration" \
    $decode_avg "${source_epoch:-}" ${grid_args[@]+"${grid_args[@]}"}
fi
if stage_in 6 || stage_in 7 || stage_in 8; then
  models=$(recipe_models $train_exp $lang "$decode_methods" "$source_exp" $lang $grid $lang ${grid_args[@]+"${grid_args[@]}"})
fi
if stage_in 6; then decode_models "$models" $vocab_size $lm_order $decode_avg ${decode_opts[@]+"${decode_opts[@]}"}; fi
if stage_in 7; then
  score_models "$models" $decode_avg RESULTS.md "$results_title" ${score_opts[@]+"${score_opts[@]}"}
fi
if stage_in 8; then export_models "$models" $vocab_size $lm_order $decode_avg; fi
log "finished stages $stage..$stop_stage"
