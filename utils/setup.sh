#!/usr/bin/env bash
# Install everything Graft needs, idempotently; a second run with everything in place takes
# a few seconds.
#
# Usage: utils/setup.sh [--no-apt]
#   - creates .venv (Python 3.11) at the repository root if missing
#   - installs torch==2.13.0 (CPU), then requirements.txt, then the graft package (editable)
#   - builds fast_rnnt 1.3 from its PyPI sdist offline (CMake handed a local pybind11)
#   - installs the Debian packages of the demo corpus when run as root, or stops with a
#     message that lists them
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
py="$venv/bin/python"
stamp_dir="$venv/.graft-setup"
no_apt=false
[ "${1:-}" = "--no-apt" ] && no_apt=true

TORCH_VERSION=2.13.0
FAST_RNNT_VERSION=1.3
PYBIND11_VERSION=3.1.0
# Debian packages the demo corpus needs (TTS engines, voices, fortune texts).
DEBIAN_PACKAGES="espeak-ng flite sox festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts
  festvox-czech-dita festvox-czech-machac festvox-czech-krb festvox-czech-ph festival-czech
  fortunes fortunes-cs fillets-ng-data stardict-czech hunspell-cs mythes-cs
  fortunes-pl"  # Polish: bench/source_language.sh pl (a source closer to Czech)

log() { echo "[setup] $*" >&2; }

# ---- Debian packages -------------------------------------------------------------------
missing_debs() {
  local p out=""
  for p in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
  done
  echo "$out"
}
if ! $no_apt; then
  miss=$(missing_debs)
  if [ -n "$miss" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing Debian packages:$miss"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $miss >/dev/null
    else
      echo "ERROR: the demo corpus needs these Debian packages, which are missing:$miss" >&2
      echo "       install them as root: apt-get install$miss" >&2
      exit 1
    fi
  fi
fi

# ---- venv + pip packages ---------------------------------------------------------------
if [ ! -x "$py" ]; then
  log "creating $venv"
  python3 -m venv "$venv"
fi
mkdir -p "$stamp_dir"
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }

if ! "$py" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "installing torch==$TORCH_VERSION"
  pip install "torch==$TORCH_VERSION" numpy 2>&1 | grep -v "^WARNING: Location" || true
fi

req_hash=$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha1sum | cut -c1-16)
if [ "$(cat "$stamp_dir/requirements" 2>/dev/null)" != "$req_hash" ]; then
  log "installing requirements.txt and the graft package"
  pip install -r "$root/requirements.txt" 2>&1 | grep -v "^WARNING: Location" || true
  pip install --no-deps --no-build-isolation -e "$root" 2>&1 | grep -v "^WARNING: Location" || true
  echo "$req_hash" > "$stamp_dir/requirements"
fi

# ---- fast_rnnt from source, offline ----------------------------------------------------
if ! "$py" -c "import fast_rnnt" 2>/dev/null; then
  log "building fast_rnnt $FAST_RNNT_VERSION from its sdist (about 2 minutes on 2 cores)"
  deps="$venv/build-deps"
  mkdir -p "$deps"
  pip download --no-deps --no-binary :all: "fast_rnnt==$FAST_RNNT_VERSION" \
    "pybind11==$PYBIND11_VERSION" -d "$deps" 2>&1 | grep -v "^WARNING: Location" || true
  [ -d "$deps/pybind11-$PYBIND11_VERSION" ] || tar -xzf "$deps/pybind11-$PYBIND11_VERSION.tar.gz" -C "$deps"
  pyinc=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  # FT_WITH_CUDA=OFF: nvcc on the machine would switch CUDA on and fail on compute_35;
  # C++17 for torch headers; pybind11 from the local tree since CMake cannot download it.
  export FT_CMAKE_ARGS="-DCMAKE_BUILD_TYPE=Release -DFT_BUILD_TESTS=OFF -DFT_WITH_CUDA=OFF \
-DCMAKE_CXX_STANDARD=17 -DFETCHCONTENT_SOURCE_DIR_PYBIND11=$deps/pybind11-$PYBIND11_VERSION \
-DFETCHCONTENT_FULLY_DISCONNECTED=ON -DPython_EXECUTABLE=$py -DPYTHON_INCLUDE_DIRS=$pyinc"
  export FT_MAKE_ARGS=-j2
  pip install --no-build-isolation --no-deps "$deps/fast_rnnt-$FAST_RNNT_VERSION.tar.gz" \
    2>&1 | grep -v "^WARNING: Location" || true
  "$py" -c "import fast_rnnt" || { echo "ERROR: fast_rnnt build failed" >&2; exit 1; }
fi
log "ready: $venv"
