#!/usr/bin/env bash
# Regenerates docs/performance.md from the benchmarks' own output: the engine's decide,
# plan and compile benchmarks, the search benchmark, loadtest/cpu-per-check.sh and the load
# test (loadtest/run.sh; LOAD=off keeps the last report in loadtest/results/report.md).
# Each benchmark's output is kept in loadtest/results/; loadtest/performance.py assembles
# the page from them. Needs what those scripts need (h2load; for the load test ghz, envoy).
#
#   loadtest/performance.sh                          # everything, about half an hour
#   LOAD=off loadtest/performance.sh                 # the benchmarks only
#   CPU_RUNS=3 loadtest/performance.sh               # fewer cpu-per-check.sh runs (5)
#   PDP_BENCH_DIR=/path/to/workloads loadtest/performance.sh   # S = 1,000 and 10,000 too
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=loadtest/results
LOAD=${LOAD:-on}
CPU_RUNS=${CPU_RUNS:-5}    # cpu-per-check.sh runs (the ratio moves between runs)
mkdir -p "$OUT"
commit=$(git rev-parse --short HEAD)
if ! git diff --quiet HEAD; then commit="$commit (with uncommitted changes)"; fi
printf '%s cores (%s), Linux %s\n' "$(nproc)" \
  "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "$(uname -r)" >"$OUT/machine.txt"

echo "== engine: decide" >&2
(cd engine && PDP_BENCH_QUICK=1 cargo bench -q -p pdp-engine --bench decide) >"$OUT/decide.txt"
echo "== engine: plan" >&2
(cd engine && cargo bench -q -p pdp-engine --bench decide -- plan/ --warm-up-time 1 \
  --measurement-time 3) >"$OUT/plan.txt" 2>&1
echo "== engine: compile" >&2
(cd engine && PDP_BENCH_QUICK=1 cargo bench -q -p pdp-engine --bench compile) >"$OUT/compile.txt"
echo "== search" >&2
PDP_BENCH_QUICK=1 cargo bench -q -p pdp-server --bench search >"$OUT/search.txt"
echo "== CPU per Check, $CPU_RUNS runs" >&2
rm -f "$OUT"/cpu-per-check-*.txt
for i in $(seq 1 "$CPU_RUNS"); do
  loadtest/cpu-per-check.sh >"$OUT/cpu-per-check-$i.txt" 2>&1
done
if [ "$LOAD" != off ]; then
  echo "== load test" >&2
  loadtest/run.sh >&2
fi
python3 loadtest/performance.py "$OUT" "$commit" >docs/performance.md
echo "wrote docs/performance.md" >&2
