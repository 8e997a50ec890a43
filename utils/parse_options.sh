# Command-line options for recipe scripts, Kaldi-style. Source it after defining defaults:
#
#   stage=0
#   stop_stage=100
#   vocab_size=500      # BPE vocabulary size
#   . utils/parse_options.sh
#
# Then `./run.sh --stage 2 --vocab-size 300 --stop-stage=3` sets those variables.
# - Any variable defined before this file is sourced can be set as `--name value` or
#   `--name=value`; dashes in the name become underscores.
# - A variable whose default is true/false only takes true or false.
# - `--config FILE` sources FILE (lines `name=value`) before the remaining options.
# - `--help` (or `-h`) lists the variables with their defaults and the comments beside
#   them, read from the calling script, and exits 0.
# - An unknown option is an error that names it (exit 1).
# Positional arguments that follow the options are left in "$@".

_po_script="${0}"
# run.sh scripts cd into their own folder first, so a relative $0 may no longer resolve
[ -f "$_po_script" ] || _po_script="$(basename "$0")"

_po_help() {
  echo "Usage: $_po_script [options] ${po_positional_usage:-}"
  [ -n "${help_message:-}" ] && echo "$help_message"
  echo "Options (defaults shown):"
  # Assignments at the start of a line before the line that sources this file.
  awk '
    /parse_options\.sh/ { exit }
    /^[A-Za-z_][A-Za-z0-9_]*=/ {
      line = $0
      name = substr(line, 1, index(line, "=") - 1)
      rest = substr(line, index(line, "=") + 1)
      comment = ""
      if (match(rest, /[ \t]+#/)) { comment = substr(rest, RSTART + RLENGTH); rest = substr(rest, 1, RSTART - 1) }
      gsub(/_/, "-", name)
      sub(/^[ \t]+/, "", comment)
      printf "  --%-22s %-24s %s\n", name, rest, comment
    }' "$_po_script"
  echo "  --config FILE            source FILE (name=value lines) first"
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) _po_help; exit 0 ;;
    --config)
      [ $# -ge 2 ] || { echo "$0: option --config needs a file" >&2; exit 1; }
      [ -f "$2" ] || { echo "$0: config file not found: $2" >&2; exit 1; }
      . "$2"; shift 2 ;;
    --?*)
      _po_opt="${1#--}"
      if [[ "$_po_opt" == *=* ]]; then
        _po_val="${_po_opt#*=}"; _po_opt="${_po_opt%%=*}"; shift
      else
        [ $# -ge 2 ] || { echo "$0: option --$_po_opt needs a value" >&2; exit 1; }
        _po_val="$2"; shift 2
      fi
      _po_name="${_po_opt//-/_}"
      if ! [[ "$_po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_name+set}" ]; then
        echo "$0: unknown option --$_po_opt (see --help)" >&2; exit 1
      fi
      _po_old="${!_po_name}"
      if { [ "$_po_old" = true ] || [ "$_po_old" = false ]; } && [ "$_po_val" != true ] && [ "$_po_val" != false ]; then
        echo "$0: option --$_po_opt takes true or false, not '$_po_val'" >&2; exit 1
      fi
      printf -v "$_po_name" '%s' "$_po_val" ;;
    --) shift; break ;;
    *) break ;;
  esac
done
unset _po_opt _po_val _po_name _po_old
true
