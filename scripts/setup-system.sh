#!/usr/bin/env bash
# Installs what building and running saffron needs on Debian/Ubuntu:
# cmake, clang and libclang-dev (llama.cpp's build and its Rust bindings) and
# python3-pip (models are fetched from registry wheels); with `--tests`, also
# chromium (the report test renders report.html headless). Idempotent:
# installs only what is missing; a machine that has everything is left
# untouched.
set -euo pipefail

packages=(cmake clang libclang-dev)
if [ "${1:-}" = "--tests" ]; then
  packages+=(chromium)
fi
need=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ! python3 -m pip --version >/dev/null 2>&1; then
  need+=(python3-pip)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The serve tests drive the server with the real `openai` Python client,
# installed (pinned) into the cache, never into the system's Python.
if [ "${1:-}" = "--tests" ]; then
  target="${SAFFRON_HOME:-$HOME/.cache/saffron}/test-python"
  if ! PYTHONPATH="$target" python3 -c 'import openai, sys; sys.exit(openai.__version__ != "3.57.0")' 2>/dev/null; then
    echo "setup: installing the openai Python client into $target" >&2
    python3 -m pip install -q --disable-pip-version-check --target "$target" --upgrade openai==3.57.0 >/dev/null
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
