# What eng/build-native.sh says while it works, sourced by it (and by the test of the parsing). Every line goes to
# standard error: the last line of standard output is the script's answer.

# A line with the time since the script started, so a reader sees both what runs and for how long.
log() { printf 'build-native: [%s] %s\n' "$(elapsed "$SECONDS")" "$*" >&2; }

# Seconds as m:ss.
elapsed() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

# The last progress a build log shows, as "42% (llama-vocab.cpp)": Makefiles write "[ 42%] Building CXX object
# src/CMakeFiles/llama.dir/llama-vocab.cpp.o", Ninja writes "[120/286] Building ..." (a fraction of the steps).
# Nothing before the first such line, or without the log.
cmake_progress() {
  local line percent rest
  line="$(grep -E '^\[ *[0-9]+(%|/[0-9]+)\] ' "$1" 2>/dev/null | tail -n 1)" || true
  if [[ $line =~ ^\[\ *([0-9]+)%\]\ (.*)$ ]]; then
    percent=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
  elif [[ $line =~ ^\[([0-9]+)/([0-9]+)\]\ (.*)$ ]] && ((BASH_REMATCH[2] > 0)); then
    percent=$((BASH_REMATCH[1] * 100 / BASH_REMATCH[2])) rest=${BASH_REMATCH[3]}
  else
    return 0
  fi
  rest=${rest##* }   # the object, library or target the step is about
  rest=${rest##*/}
  echo "$percent% (${rest%.o})"
}

# Runs a command with its output in a log and, while it runs, says so with the time and the log's progress: in place
# every second on a terminal, else a line every 5 s (a build tool's log, an IDE). Returns the command's status.
run_with_progress() {   # label, log, command...
  local label="$1" logfile="$2" pid status=0 tick=0 line progress
  shift 2
  "$@" >>"$logfile" 2>&1 &
  pid=$!
  # A stopped script (Ctrl+C, or a killed LlmPq) stops its build instead of leaving it running under the lock.
  trap 'kill "$pid" 2>/dev/null; exit 130' INT TERM HUP
  # Short polls: a step with nothing to do (a warm run) costs no full second.
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    tick=$((tick + 1))
    ((tick % 5 == 0)) || continue
    if [[ -t 2 ]] || ((tick % 25 == 0)); then
      progress="$(cmake_progress "$logfile")"
      line="$label${progress:+: $progress}"
      if [[ -t 2 ]]; then
        printf '\r\033[Kbuild-native: [%s] %s' "$(elapsed "$SECONDS")" "$line" >&2
      else
        log "$line"
      fi
    fi
  done
  ((tick >= 5)) && [[ -t 2 ]] && printf '\r\033[K' >&2
  trap - INT TERM HUP
  wait "$pid" || status=$?
  return "$status"
}
