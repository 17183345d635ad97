#!/usr/bin/env bash
# Builds llama.cpp, pinned through the npm package node-llama-cpp, into a versioned cache folder
# outside the repository, and prints that folder on the last line of standard output.
#
#   build-native.sh             the stage launcher, then what the chat path needs: the libraries (llama, ggml, ggml-rpc,
#                               llama-common), ggml-rpc-server and the chat shim (eng/native/build-chat.sh)
#   build-native.sh --tools     that, then the tools a benchmark or a quality check starts (llama-server, llama-bench,
#                               llama-batched-bench, llama-perplexity); LlmPq asks for them on first use
#   build-native.sh --launcher  the stage launcher only
#
#   LLMPQ_LLAMA_DIR    use this existing build instead (a folder holding libllama.so and the tools)
#   LLMPQ_NATIVE_CACHE where builds are cached (default: $XDG_CACHE_HOME/llmpq or ~/.cache/llmpq)
#   LLMPQ_CUDA         1 forces a CUDA build, 0 forbids it (default: CUDA when nvcc is found)
#   LLMPQ_JOBS         parallel compile jobs (default: nproc)
#
# Idempotent: each finished stage leaves a stamp (.complete for the libraries, .complete-tools for the tools), and a
# second run only checks them (and the chat shim) and prints the folder. A cold build says what it does on standard
# error: a line per step, and while a step runs, its elapsed time and cmake's percentage at least every 5 s (rewritten
# in place on a terminal), so nobody has to guess a build from a hang through `dotnet run`, `dotnet test` or an IDE.
# Every run also makes sure the stage launcher (eng/native/llmpq-launch.c, a few lines of C that make a child die with
# its parent) is compiled into <cache>/bin, whichever llama.cpp build is used: it is not part of that build, so changing
# it never invalidates the llama.cpp stamp.
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1   # holds llama.cpp release v0.5.0, ggml 0.25.1
GGML_VERSION=0.25.1
LIBRARY_TARGETS="ggml ggml-rpc llama llama-common ggml-rpc-server"
TOOL_TARGETS="llama-server llama-bench llama-batched-bench llama-perplexity"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=eng/native/progress.sh
source "$here/native/progress.sh"

mode=libraries
case "${1:-}" in
  "") ;;
  --tools) mode=tools ;;
  --launcher) mode=launcher ;;
  *) log "unknown argument '$1' (expected --tools or --launcher)"; exit 2 ;;
esac

cache_root="${LLMPQ_NATIVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmpq}"

# Compiles the launcher when it is missing or was built from other source (worktrees share the cache, so compare the
# text, not the time). Without a C compiler LlmPq starts stages directly, and says so.
build_launcher() {
  local source bin cc
  source="$here/native/llmpq-launch.c"
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
[[ $mode == launcher ]] && exit 0

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
work="$cache_root/work-$NODE_LLAMA_CPP_VERSION-$flavor"
stamp="$prefix/.complete"
tools_stamp="$prefix/.complete-tools"
done_stamp="$stamp"; [[ $mode == tools ]] && done_stamp="$tools_stamp"

# Ends a run with the libraries ready. The chat shim (eng/native/build-chat.sh, against llama-common) is not part of
# the llama.cpp build: it is checked on every run, and rebuilt, with progress, when its source changed.
finish() {
  local said
  said="$(mktemp)"
  run_with_progress "building the chat shim" "$said" bash "$here/native/build-chat.sh" "$prefix" "$work" \
    || { cat "$said" >&2; rm -f "$said"; exit 1; }
  cat "$said" >&2
  rm -f "$said"
  echo "$prefix"
  exit 0
}
[[ -f "$done_stamp" ]] && finish

for tool in npm git cmake g++ tar flock; do
  command -v "$tool" >/dev/null 2>&1 || { log "'$tool' is required to build llama.cpp; install it (see .ci/run)"; exit 1; }
done

mkdir -p "$work" "$cache_root"
exec 9>"$cache_root/.lock-$flavor"
# Parallel tests and other worktrees share the cache: wait for whoever builds, and say so.
until flock -w 5 9; do
  progress="$(cmake_progress "$work/build.log")"
  log "waiting for another build of llama.cpp ($flavor) into $cache_root${progress:+ (at $progress)}"
done
[[ -f "$done_stamp" ]] && finish   # another process finished it while we waited

started=$SECONDS
build_stage() {   # what, targets...
  local what="$1"; shift
  log "building $what ($*) with $jobs jobs"
  run_with_progress "building $what" "$work/build.log" cmake --build "$work/build" --config Release -j "$jobs" --target "$@" \
    || { log "build failed; see $work/build.log"; tail -30 "$work/build.log" >&2; exit 1; }
}
jobs="${LLMPQ_JOBS:-$(nproc)}"

if [[ ! -f "$stamp" ]]; then
  log "no llama.cpp build in $prefix yet: building it once (several minutes; the tools come later, on first use)"
  src="$work/src"
  if [[ ! -f "$src/include/llama.h" ]]; then
    log "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION (llama.cpp source bundle)"
    rm -rf "$work/pkg" "$src"
    mkdir -p "$work/pkg"
    # shellcheck disable=SC2016
    run_with_progress "fetching llama.cpp" "$work/fetch.log" bash -c '
      cd "$1/pkg" && npm pack --silent "node-llama-cpp@$2" >/dev/null \
        && tar -xzf "node-llama-cpp-$2.tgz" package/llama/gitRelease.bundle \
        && git clone --quiet "$1/pkg/package/llama/gitRelease.bundle" "$1/src"' _ "$work" "$NODE_LLAMA_CPP_VERSION" \
      || { log "fetching failed; see $work/fetch.log"; tail -20 "$work/fetch.log" >&2; exit 1; }
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

  log "configuring llama.cpp ($flavor) in $work/build"
  run_with_progress "configuring" "$work/configure.log" cmake -S "$src" -B "$work/build" "${cmake_args[@]}" \
    || { log "cmake configure failed; see $work/configure.log"; tail -20 "$work/configure.log" >&2; exit 1; }

  # shellcheck disable=SC2086
  build_stage "the libraries and the stage server" $LIBRARY_TARGETS

  rm -rf "$prefix"
  mkdir -p "$prefix/include"
  cp -a "$work/build/bin/." "$prefix/"
  cp "$src/include/llama.h" "$src"/ggml/include/*.h "$prefix/include/"
  cp "$src/models/ggml-vocab-llama-spm.gguf" "$prefix/"
  echo "$GGML_VERSION" >"$prefix/GGML_VERSION"
  touch "$stamp"
  log "llama.cpp libraries ready in $prefix after $(elapsed $((SECONDS - started)))"
fi

if [[ $mode == tools ]]; then
  # shellcheck disable=SC2086
  build_stage "the tools" $TOOL_TARGETS
  # Only files the folder lacks, each renamed into place: running stages have the libraries there mapped.
  for file in "$work/build/bin/"*; do
    name="$(basename "$file")"
    [[ -e "$prefix/$name" ]] && continue
    cp -a "$file" "$prefix/.$name.$$" && mv -f "$prefix/.$name.$$" "$prefix/$name"
  done
  touch "$tools_stamp"
  log "llama.cpp tools ready in $prefix after $(elapsed $((SECONDS - started)))"
fi
finish
