#!/usr/bin/env bash
# One-command, idempotent setup: apt packages (as root), .venv from requirements.txt, the wheels'
# CMake path fix, msg/srv build into the venv, and the SmolLM2 safetensors cache.
# Each step is skipped when its inputs have not changed (stamps under .venv/.proassist/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMPS="$VENV/.proassist"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
step() { printf '\033[1m[setup %s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# 1. System packages (only as root, only when missing).
need=()
for pair in espeak-ng:espeak-ng sox:sox cmake:cmake g++:g++ unshare:util-linux ip:iproute2 aplay:alsa-utils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# PortAudio (a library, no command) for the microphone node's sounddevice.
ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2' || need+=(libportaudio2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" libespeak-ng1 >/dev/null
  else
    echo "[setup] missing system packages: ${need[*]} (run as root or: sudo apt-get install ${need[*]})" >&2
  fi
fi

# 2. Virtual environment from the one pinned requirements file.
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "[setup] Python 3.11 is required (found $("$PY" --version))" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || { step "creating .venv ($("$PY" --version))"; "$PY" -m venv "$VENV"; }
mkdir -p "$STAMPS"
touch "$VENV/COLCON_IGNORE"   # colcon must not crawl the venv's share/*/package.xml
req_hash=$(hash_of requirements.txt)
if [ "$(cat "$STAMPS/requirements" 2>/dev/null)" != "$req_hash" ]; then
  step "pip install -r requirements.txt (first time: ~2 min, ~1.7 GB)"
  tmp=$(mktemp -d)
  sed '/^# --- NO-DEPS ---/,$d' requirements.txt > "$tmp/deps.txt"
  sed -n '/^# --- NO-DEPS ---/,$p' requirements.txt | grep -v '^#' > "$tmp/nodeps.txt"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --progress-bar on -r "$tmp/deps.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$tmp/nodeps.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  rm -rf "$tmp"
  rm -f "$STAMPS/cmake-fix" "$STAMPS/interfaces"
  echo "$req_hash" > "$STAMPS/requirements"
fi

# 3. The ROS wheels' exported CMake files carry their build machine's paths: point them here.
if [ ! -f "$STAMPS/cmake-fix" ]; then
  step "rewriting the ROS wheels' CMake paths"
  "$VENV/bin/python" "$ROOT/scripts/fix_wheel_cmake.py" "$VENV"
  touch "$STAMPS/cmake-fix"
fi

# 4. Build msg/ and srv/ into the venv; the source tree is put on sys.path with a .pth file.
if_hash=$(hash_of CMakeLists.txt package.xml msg/* srv/* action/* proassist_ros/__init__.py)
if [ "$(cat "$STAMPS/interfaces" 2>/dev/null)" != "$if_hash" ]; then
  step "building msg/, srv/ and action/ into .venv (cmake, ~20 s)"
  rm -rf "$ROOT/build/venv-interfaces"
  mkdir -p "$ROOT/build/venv-interfaces"
  (cd "$ROOT/build/venv-interfaces" && \
    AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" \
    cmake "$ROOT" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
      -DPROASSIST_INSTALL_PYTHON_SOURCES=OFF -DBUILD_TESTING=OFF > cmake.log 2>&1 && \
    make -j2 install > make.log 2>&1) || {
      echo "[setup] interface build failed; log: build/venv-interfaces/{cmake,make}.log" >&2
      tail -n 30 "$ROOT/build/venv-interfaces/cmake.log" "$ROOT/build/venv-interfaces/make.log" >&2 || true
      exit 1; }
  echo "$if_hash" > "$STAMPS/interfaces"
fi
# The source tree goes on sys.path as an editable install in "compat" mode (a .pth file), so the
# console scripts exist and proassist_ros/__init__.py's extend_path joins it with the built msg/.
py_hash=$(hash_of setup.py)
if [ "$(cat "$STAMPS/editable" 2>/dev/null)" != "$py_hash" ]; then
  step "pip install -e . (console scripts: proassist and the nodes of setup.py)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e "$ROOT" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$py_hash" > "$STAMPS/editable"
fi

# 5. The embedded LLM: convert the SmolLM2 GGUF once into a safetensors cache (outside git).
if [ -f "$ROOT/proassist_ros/model/embedded.py" ]; then
  step "embedded model cache"
  "$VENV/bin/python" -m proassist_ros.model.embedded --prepare
fi
# 6. The native int8 kernel (model/int8_kernel.py): compiled for this CPU once, cached; without a
#    C compiler int8 uses torch's packed kernel and this step says so.
step "int8 kernel"
"$VENV/bin/python" -m proassist_ros.model.int8_kernel
step "ready: $VENV"
