# Stage helpers for recipe scripts. Source it after utils/parse_options.sh; it reads the
# variables `stage`, `stop_stage`, `force` (true/false), `log_dir` (default exp/log) and
# `stages` (the recipe's stage numbers, default "0 1 2 3 4 5 6 7").
#
#   if stage_in 2; then
#     step "stage2_fbank_$lang" "data/fbank/$lang/report.json" \
#       --inputs "data/manifests/$lang/cuts_train.jsonl.gz" --clear "data/fbank/$lang" \
#       python $GRAFT_ROOT/steps/compute_fbank.py --manifest-dir data/manifests/$lang ...
#   fi
#
# `step DESCRIPTION "OUTPUT..." [--inputs "FILE..."] [--clear "PATH..."] [--clear-on-force "PATH..."]
# COMMAND...` runs COMMAND unless every output exists and the stamp beside the first output
# (`.<description>.stamp`: hashes of the inputs and the command line, graft.utils.stamp) says the
# outputs were made from the same inputs and options. When they changed, it says what changed,
# removes the --clear paths (partial outputs made from the old inputs) and runs again; a run
# that was killed resumes (same stamp, not finished). `--force true` clears --clear and
# --clear-on-force paths and runs. The command's output is shown and kept in
# $log_dir/<description>.log; a failing command stops the recipe with the log's path.

log() { echo "$(date '+%F %T') [$(basename "$0")] $*" >&2; }

_stage_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_stamp() {  # graft.utils.stamp with the project's python, whatever PATH holds
  local py="$_stage_root/.venv/bin/python"
  [ -x "$py" ] || py=python3
  PYTHONPATH="$_stage_root${PYTHONPATH:+:$PYTHONPATH}" "$py" -m graft.utils.stamp "$@"
}

# The recipe's stages as listed in its header ("#   N  what"), for error messages.
_stage_list() {
  grep -E '^#[[:space:]]+[0-9]+[[:space:]]+' "$0" | sed -E 's/^#[[:space:]]+/  /' | head -20
}

check_stage_range() {
  local all=${stages:-0 1 2 3 4 5 6 7 8} s ok_start=false ok_stop=false
  for v in "$stage" "$stop_stage"; do
    if ! [[ "$v" =~ ^[0-9]+$ ]]; then
      echo "ERROR: --stage and --stop-stage take stage numbers, got '$v'. The stages of $0:" >&2
      _stage_list >&2; exit 1
    fi
  done
  for s in $all; do
    [ "$s" = "$stage" ] && ok_start=true
    [ "$s" = "$stop_stage" ] && ok_stop=true
  done
  if ! $ok_start || ! $ok_stop; then
    echo "ERROR: $0 has stages ${all// /, }; --stage $stage --stop-stage $stop_stage names one it does not have:" >&2
    _stage_list >&2; exit 1
  fi
  if [ "$stage" -gt "$stop_stage" ]; then
    echo "ERROR: --stage $stage is after --stop-stage $stop_stage: nothing would run. The stages of $0:" >&2
    _stage_list >&2; exit 1
  fi
}
check_stage_range

stage_in() {
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]
}

step() {
  local desc=$1 outputs=$2 inputs="" clear="" clear_force="" o complete=true
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --inputs) inputs=$2; shift 2 ;;
      --clear) clear=$2; shift 2 ;;
      --clear-on-force) clear_force=$2; shift 2 ;;
      *) break ;;
    esac
  done
  local name
  name=$(echo "$desc" | tr -cs 'A-Za-z0-9_.-' '_' | sed 's/_$//')
  local first=${outputs%% *} stampf=""
  [ -n "$first" ] && stampf="$(dirname "$first")/.$name.stamp"
  for o in $outputs; do [ -e "$o" ] || complete=false; done
  local fresh=false why="" rc=2
  if [ -n "$stampf" ]; then
    why=$(_stamp check --stamp "$stampf" --inputs "$inputs" -- "$@") && rc=0 || rc=$?
  fi
  if [ "${force:-false}" = true ]; then
    fresh=true; why="--force true"
  elif [ -z "$outputs" ]; then
    :  # a step without outputs (scoring) runs every time
  elif [ $rc -eq 0 ] && $complete; then
    log "skip '$desc': done, inputs and options unchanged (--force true re-runs)"
    return 0
  elif [ $rc -eq 1 ]; then
    fresh=true; log "'$desc' runs again: $why"
  elif [ $rc -eq 2 ] && $complete; then
    fresh=true; log "'$desc' runs again: its outputs have no stamp of what made them"
  elif [ $rc -eq 3 ]; then
    log "'$desc' resumes: an earlier run with the same inputs did not finish"
  fi
  if $fresh; then
    local p
    for p in $clear; do [ -e "$p" ] && { log "removing $p (made from other inputs or options)"; rm -rf "$p"; }; done
    if [ "${force:-false}" = true ]; then
      for p in $clear_force; do [ -e "$p" ] && { log "removing $p (--force true)"; rm -rf "$p"; }; done
    fi
  fi
  local dir=${log_dir:-exp/log}
  mkdir -p "$dir"
  local logf="$dir/$name.log"
  log "run '$desc': $*"
  { echo "# $(date '+%F %T') $desc"; echo "# $*"; } > "$logf"
  [ -n "$stampf" ] && { mkdir -p "$(dirname "$stampf")"; _stamp write --stamp "$stampf" --state running --inputs "$inputs" -- "$@"; }
  local t0=$SECONDS
  if ! "$@" 2>&1 | tee -a "$logf"; then
    log "FAILED '$desc' (see $logf)"
    exit 1
  fi
  [ -n "$stampf" ] && _stamp write --stamp "$stampf" --state done --inputs "$inputs" -- "$@"
  echo "# done in $((SECONDS - t0)) s" >> "$logf"
  log "done '$desc' in $((SECONDS - t0)) s (log: $logf)"
}
