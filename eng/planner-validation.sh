#!/usr/bin/env bash
# Regenerates docs/planner-validation.md's measurements: for each local cluster, profile its devices
# (llmpq profile) and run the plan and its baselines (llmpq plan --validate). Run on an idle machine.
# Usage: eng/planner-validation.sh [OUT]   (default /tmp/llmpq-planner-validation)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/llmpq-planner-validation}
mkdir -p "$out"
dotnet build src/LlmPq.Host -c Release --nologo -v q
llmpq() { dotnet src/LlmPq.Host/bin/Release/net10.0/llmpq.dll "$@"; }

small=$out/tiny-8x256.gguf
wide=$out/m16x512.gguf
[[ -f $small ]] || llmpq make-model --out "$small" --layers 8 --embd 256
[[ -f $wide ]] || llmpq make-model --out "$wide" --layers 16 --embd 512 --ff 1536 --heads 8 --kv-heads 8

run() { # name model cluster-file batch prompt generate
  local dir=$out/$1
  mkdir -p "$dir"
  cp "docs/clusters/$3" "$dir/cluster.json"
  llmpq profile --model "$2" --cluster "$dir/cluster.json" --batch "$4" --prompt "$5" --generate "$6" --cache "$out/profiles" | tee "$dir/profile.txt"
  llmpq plan --model "$2" --cluster "$dir/cluster.json" --batch "$4" --prompt "$5" --generate "$6" \
    --validate --validate-out "$dir/validation" --repeat 5 | tee "$dir/validate.txt"
}

run demo "$small" local-cpu-3stage.json 6 128 48
run tight "$wide" local-cpu-tight-3stage.json 8 128 32
run memspeed "$wide" local-cpu-memory-vs-speed.json 8 128 32
echo "tables: $out/*/validation/validation.md"
