# Stage helpers for recipe scripts. Source it after utils/parse_options.sh; it reads the
# variables `stage`, `stop_stage`, `force` (true/false) and `log_dir` (default exp/log).
#
#   if stage_in 2; then
#     step "fbank $lang" "data/fbank/$lang/cuts_train.jsonl.gz" \
#       python $GRAFT_ROOT/steps/compute_fbank.py --lang $lang ...
#   fi
#
# `step DESCRIPTION "OUTPUT..." COMMAND...` skips COMMAND when every listed output exists
# (steps write their outputs atomically, so an existing output is a complete one) unless
# --force true; otherwise it logs the command line and runs it, with its output shown and
# kept in $log_dir/<description>.log. A failing command stops the recipe with the log's path.

log() { echo "$(date '+%F %T') [$(basename "$0")] $*" >&2; }

stage_in() {
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]
}

step() {
  local desc=$1 outputs=$2 o complete=true
  shift 2
  for o in $outputs; do [ -e "$o" ] || complete=false; done
  if $complete && [ -n "$outputs" ] && [ "${force:-false}" != true ]; then
    log "skip '$desc': outputs exist ($(echo $outputs | wc -w) files; --force true re-runs)"
    return 0
  fi
  local dir=${log_dir:-exp/log}
  mkdir -p "$dir"
  local logf="$dir/$(echo "$desc" | tr -cs 'A-Za-z0-9_.-' '_' | sed 's/_$//').log"
  log "run '$desc': $*"
  { echo "# $(date '+%F %T') $desc"; echo "# $*"; } > "$logf"
  local t0=$SECONDS
  if ! "$@" 2>&1 | tee -a "$logf"; then
    log "FAILED '$desc' (see $logf)"
    exit 1
  fi
  echo "# done in $((SECONDS - t0)) s" >> "$logf"
  log "done '$desc' in $((SECONDS - t0)) s (log: $logf)"
}
set -o pipefail
