#!/usr/bin/env bash
# Compiles the chat shim (eng/native/llmpq-chat.h/.cpp, a C ABI over llama.cpp's common/chat.h) into
# PREFIX/libllmpq-chat.so, beside the libllama.so and libllama-common.so it links with rpath $ORIGIN.
#
#   build-chat.sh PREFIX WORK
#     PREFIX  the finished llama.cpp build folder (libllama.so, libllama-common.so, ...)
#     WORK    the work folder of that build (WORK/src holds the llama.cpp source whose common/ headers it needs)
#
# eng/build-native.sh runs it after the llama.cpp build and on every warm run: it is not part of that build, so a
# changed shim is rebuilt without touching the llama.cpp stamp. Like the stage launcher it compares the source text
# (worktrees share the cache) and builds under a lock, so concurrent builds neither collide nor repeat the work.
# llama.cpp builds llama-common as a shared library when BUILD_SHARED_LIBS is on (build-native.sh sets it): the shim
# links against it rather than compiling chat.cpp and its parsers again.
set -euo pipefail

log() { echo "build-chat: $*" >&2; }

prefix="$1"
work="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$prefix/libllmpq-chat.so"
copy="$prefix/libllmpq-chat.src"   # the header and source it was built from
source_text="$(cat "$here/llmpq-chat.h" "$here/llmpq-chat.cpp")"

[[ -f "$out" && -f "$copy" ]] && [[ "$(cat "$copy")" == "$source_text" ]] && exit 0

src="$work/src"
if [[ ! -f "$src/common/chat.h" || ! -e "$prefix/libllama-common.so" ]]; then
  log "no llama.cpp source in $src or no libllama-common.so in $prefix; the chat shim is not built (tool calls unavailable)"
  exit 0
fi
cxx=""
for candidate in "${CXX:-}" c++ g++ clang++; do
  [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1 && { cxx="$candidate"; break; }
done
[[ -n "$cxx" ]] || { log "no C++ compiler (c++, g++, clang++) for the chat shim"; exit 1; }

(
  flock 8
  [[ -f "$out" && -f "$copy" ]] && [[ "$(cat "$copy")" == "$source_text" ]] && exit 0   # built while we waited
  "$cxx" -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -Wall -Wextra -Werror \
    -I"$here" -isystem "$src/common" -isystem "$src/include" -isystem "$src/ggml/include" \
    -o "$out.$$" "$here/llmpq-chat.cpp" \
    -L"$prefix" -lllama-common -lllama -Wl,-rpath,'$ORIGIN' -Wl,-rpath-link,"$prefix" -Wl,--no-undefined \
    && mv -f "$out.$$" "$out" \
    && printf '%s' "$source_text" >"$copy.$$" && mv -f "$copy.$$" "$copy"
) 8>"$prefix/.lock-chat" || { rm -f "$out.$$"; log "the chat shim did not compile"; exit 1; }
log "chat shim ready: $out"
