#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible server, `llama-server`, for the remote
# policy's tests and the overhead measurement (docs/scale.md), and prints its
# path. The source is the llama.cpp that llama-cpp-python's source package
# vendors (fetched with pip, as bench/compare-llama-cpp.sh does); it lives
# under $SAFFRON_HOME/llama-server, never in the repository, and is built
# once (portable CPU flags; 19 minutes here on 2 cores shared with a cargo build).
#
# usage: scripts/llama-server.sh        # prints the binary's path
set -euo pipefail

home=${SAFFRON_HOME:-$HOME/.cache/saffron}
work=$home/llama-server
reference=llama-cpp-python==0.3.36
bin=$work/llama.cpp/build/bin/llama-server

if [ ! -x "$bin" ]; then
  mkdir -p "$work"
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$work" "$reference" >&2
  rm -rf "$work/llama.cpp" "$work/src"
  mkdir -p "$work/src"
  tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work/src"
  mv "$work"/src/llama_cpp_python-*/vendor/llama.cpp "$work/llama.cpp"
  rm -rf "$work/src"
  cmake -S "$work/llama.cpp" -B "$work/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF >&2
  cmake --build "$work/llama.cpp/build" --target llama-server -j "$(nproc)" >&2
fi
echo "$bin"
