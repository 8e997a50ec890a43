# Environment for recipe scripts. Source it from egs/<corpus>/ASR/run.sh:
#
#   . ../../../utils/env.sh
#
# Sets GRAFT_ROOT, puts the project's venv first on PATH and graft on PYTHONPATH, and stops
# with a message when the venv has not been set up.
GRAFT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export GRAFT_ROOT
if [ ! -x "$GRAFT_ROOT/.venv/bin/python" ]; then
  echo "ERROR: $GRAFT_ROOT/.venv is missing: run $GRAFT_ROOT/utils/setup.sh first (or: make -C $GRAFT_ROOT demo)" >&2
  exit 1
fi
export PATH="$GRAFT_ROOT/.venv/bin:$PATH"
export PYTHONPATH="$GRAFT_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
