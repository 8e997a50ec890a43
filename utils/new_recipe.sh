#!/usr/bin/env bash
# Make a recipe for a new corpus: egs/NAME/ASR/run.sh and the adapter local/NAME.py, from
# utils/templates/ (run.sh.in, adapter.py.in). See the README, "Bring your own corpus".
#
#   utils/new_recipe.sh mycorpus
#   utils/new_recipe.sh --audio-dir /data/mycorpus/wav --transcripts /data/mycorpus/text.tsv \
#       --lang cs mycorpus
#
# As made, the recipe reads a folder of audio files plus a transcript table (local/folder.py),
# so a new corpus needs only its paths and language: give them here, or edit audio_dir,
# transcripts and lang at the top of egs/NAME/ASR/run.sh. NAME: lowercase letters, digits and
# underscores, starting with a letter (it is a Python module name). Existing files are never
# overwritten.
set -euo pipefail

audio_dir=/path/to/audio                # folder of audio files, written into run.sh
transcripts=/path/to/transcripts.tsv    # transcript table, written into run.sh
lang=en                                 # language code, written into run.sh
declare po_positional_usage=NAME  # (not an option: the usage line)
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "$0: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "give one NAME (see --help)"
name=$1
[[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] || die "NAME '$name': use lowercase letters, digits and _, starting with a letter"
recipe="$root/egs/$name/ASR/run.sh"
adapter="$root/local/$name.py"
[ ! -e "$recipe" ] || die "$recipe exists: not overwriting it"
[ ! -e "$adapter" ] || die "$adapter exists (an adapter of that name): not overwriting it"
# The language needs an entry in graft/data/text.py (LANGUAGES): check it now, not at stage 0.
py="$root/.venv/bin/python"; [ -x "$py" ] || py=python3
known=$(cd "$root" && "$py" -c 'from graft.data.text import LANGUAGES; print(" ".join(sorted(LANGUAGES)))') \
  || die "cannot read the language table graft/data/text.py (LANGUAGES) with $py"
[[ " $known " == *" $lang "* ]] || die "--lang '$lang' has no entry in the table LANGUAGES of \
$root/graft/data/text.py (known: $known): add one (its alphabet and a few function words), then run this again"
# Paths given here must exist (the defaults are placeholders to fill in run.sh later).
[ "$audio_dir" = /path/to/audio ] || [ -d "$audio_dir" ] || die "--audio-dir $audio_dir: no such folder (from $PWD)"
[ "$transcripts" = /path/to/transcripts.tsv ] || [ -f "$transcripts" ] || die "--transcripts $transcripts: no such file (from $PWD)"
for v in "$audio_dir" "$transcripts" "$lang"; do
  [[ "$v" =~ [[:space:]] ]] && die "'$v': the recipe scripts do not take paths with spaces"
done
# The recipe runs in egs/NAME/ASR: make paths given here absolute.
[[ "$audio_dir" == /* ]] || audio_dir="$PWD/$audio_dir"
[[ "$transcripts" == /* ]] || transcripts="$PWD/$transcripts"

render() {  # render TEMPLATE OUTPUT: substitute the @...@ fields
  local text
  text=$(<"$1")
  text=${text//@NAME@/"$name"}
  text=${text//@AUDIO_DIR@/"$audio_dir"}
  text=${text//@TRANSCRIPTS@/"$transcripts"}
  text=${text//@LANG@/"$lang"}
  mkdir -p "$(dirname "$2")"
  printf '%s\n' "$text" > "$2.tmp"
  chmod +x "$2.tmp"
  mv "$2.tmp" "$2"
}
render "$root/utils/templates/run.sh.in" "$recipe"
render "$root/utils/templates/adapter.py.in" "$adapter"
echo "made $recipe"
echo "made $adapter"
echo "next: check audio_dir, transcripts and lang at the top of egs/$name/ASR/run.sh, then run it"
