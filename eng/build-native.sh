#!/usr/bin/env bash
# Builds llama.cpp, pinned through the npm package node-llama-cpp, into a versioned cache folder
# outside the repository, and prints that folder on the last line of standard output.
#
#   LLMPQ_LLAMA_DIR    use this existing build instead (a folder holding libllama.so and the tools)
#   LLMPQ_NATIVE_CACHE where builds are cached (default: $XDG_CACHE_HOME/llmpq or ~/.cache/llmpq)
#   LLMPQ_CUDA         1 forces a CUDA build, 0 forbids it (default: CUDA when nvcc is found)
#   LLMPQ_JOBS         parallel compile jobs (default: nproc)
#
# Idempotent: a finished build leaves a stamp, and a second run only prints the folder.
# Every run also makes sure the stage launcher (eng/native/llmpq-launch.c, a few lines of C that make a child die with
# its parent) is compiled into <cache>/bin, whichever llama.cpp build is used: it is not part of that build, so changing
# it never invalidates the llama.cpp stamp.
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1   # holds llama.cpp release v0.5.0, ggml 0.25.1
GGML_VERSION=0.25.1

log() { echo "build-native: $*" >&2; }

cache_root="${LLMPQ_NATIVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmpq}"

# Compiles the launcher when it is missing or was built from other source (worktrees share the cache, so compare the
# text, not the time). Without a C compiler LlmPq starts stages directly, and says so.
build_launcher() {
  local source bin cc
  source="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/native/llmpq-launch.c"
  bin="$cache_root/bin"
  [[ -x "$bin/llmpq-launch" ]] && cmp -s "$source" "$bin/llmpq-launch.c" && return 0
  cc=""
  for candidate in "${CC:-}" cc gcc clang; do
    [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1 && { cc="$candidate"; break; }
  done
  if [[ -z "$cc" ]]; then
    log "no C compiler (cc, gcc, clang) for the stage launcher; stages will not die with a killed LlmPq"
    return 0
  fi
  mkdir -p "$bin"
  (
    flock 8
    "$cc" -O2 -Wall -Wextra -Werror -o "$bin/.llmpq-launch.$$" "$source" \
      && mv -f "$bin/.llmpq-launch.$$" "$bin/llmpq-launch" \
      && cp "$source" "$bin/.llmpq-launch.c.$$" && mv -f "$bin/.llmpq-launch.c.$$" "$bin/llmpq-launch.c"
  ) 8>"$cache_root/.lock-launcher" || { rm -f "$bin/.llmpq-launch.$$"; log "the stage launcher did not compile"; return 1; }
  log "stage launcher ready in $bin"
}
build_launcher

if [[ -n "${LLMPQ_LLAMA_DIR:-}" ]]; then
  if [[ ! -f "$LLMPQ_LLAMA_DIR/libllama.so" ]]; then
    log "LLMPQ_LLAMA_DIR=$LLMPQ_LLAMA_DIR holds no libllama.so; point it at a llama.cpp build's library folder"
    exit 1
  fi
  echo "$LLMPQ_LLAMA_DIR"
  exit 0
fi

cuda=0
case "${LLMPQ_CUDA:-auto}" in
  1) cuda=1 ;;
  0) cuda=0 ;;
  *) command -v nvcc >/dev/null 2>&1 && cuda=1 ;;
esac
flavor=cpu; [[ $cuda == 1 ]] && flavor=cuda

prefix="$cache_root/llama-node-llama-cpp-$NODE_LLAMA_CPP_VERSION-$flavor"
stamp="$prefix/.complete"
if [[ -f "$stamp" ]]; then
  bash "$(dirname "${BASH_SOURCE[0]}")/native/build-chat.sh" "$prefix" "$cache_root/work-$NODE_LLAMA_CPP_VERSION-$flavor"
  echo "$prefix"
  exit 0
fi

for tool in npm git cmake g++ tar; do
  command -v "$tool" >/dev/null 2>&1 || { log "'$tool' is required to build llama.cpp; install it (see .ci/run)"; exit 1; }
done

work="$cache_root/work-$NODE_LLAMA_CPP_VERSION-$flavor"
mkdir -p "$work" "$cache_root"
exec 9>"$cache_root/.lock-$flavor"
flock 9
[[ -f "$stamp" ]] && { echo "$prefix"; exit 0; }   # another process finished it while we waited

started=$(date +%s)
src="$work/src"
if [[ ! -f "$src/include/llama.h" ]]; then
  log "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION (llama.cpp source bundle)"
  rm -rf "$work/pkg" "$src"
  mkdir -p "$work/pkg"
  (cd "$work/pkg" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null 2>&1)
  tar -xzf "$work/pkg/node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz" -C "$work/pkg" package/llama/gitRelease.bundle
  git clone --quiet "$work/pkg/package/llama/gitRelease.bundle" "$src" 2>/dev/null
  rm -rf "$work/pkg"
fi

cmake_args=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DGGML_RPC=ON
  -DGGML_NATIVE=ON
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
  -DCMAKE_INSTALL_RPATH='$ORIGIN'
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
)
[[ $cuda == 1 ]] && cmake_args+=(-DGGML_CUDA=ON)

jobs="${LLMPQ_JOBS:-$(nproc)}"
log "configuring llama.cpp ($flavor) in $work/build"
cmake -S "$src" -B "$work/build" "${cmake_args[@]}" >"$work/configure.log" 2>&1 \
  || { log "cmake configure failed; see $work/configure.log"; tail -20 "$work/configure.log" >&2; exit 1; }

# The library and the stage server first: they are what the tests need; the anchors after.
for targets in "llama ggml-rpc-server" "llama-bench llama-batched-bench llama-perplexity llama-server"; do
  log "building $targets with $jobs jobs (a cold build takes several minutes)"
  # shellcheck disable=SC2086
  cmake --build "$work/build" --config Release -j "$jobs" --target $targets >>"$work/build.log" 2>&1 \
    || { log "build failed; see $work/build.log"; tail -30 "$work/build.log" >&2; exit 1; }
done

rm -rf "$prefix"
mkdir -p "$prefix/include"
cp -a "$work/build/bin/." "$prefix/"
cp "$src/include/llama.h" "$src"/ggml/include/*.h "$prefix/include/"
cp "$src/models/ggml-vocab-llama-spm.gguf" "$prefix/"
echo "$GGML_VERSION" >"$prefix/GGML_VERSION"
touch "$stamp"
bash "$(dirname "${BASH_SOURCE[0]}")/native/build-chat.sh" "$prefix" "$cache_root/work-$NODE_LLAMA_CPP_VERSION-$flavor"
log "llama.cpp ready in $prefix after $(( $(date +%s) - started )) s"
echo "$prefix"
