#!/usr/bin/env bash
# The published load test: builds release, runs `pdp serve` (the example policies,
# `--http-listen off`) pinned to CPU 0 and `pdp-loadtest` (ghz-compatible, the configs in
# loadtest/ghz/) pinned to CPU 1, through the standard scenarios, and writes
# loadtest/results/report.md, loadtest/results/latency.png and one JSON report (ghz's format)
# per scenario.
#
#   loadtest/run.sh                       # 6 minutes of load, after the release build
#   DUR=5s OPEN_DUR=10s SOAK=30s loadtest/run.sh
#
# Scenarios: Check at 1 in flight and saturated, decision cache on and off; Check in open loop
# at half the cache-off saturation rate; CheckBatch (10 items); Check with a JWT subject; Envoy
# ext_authz Check; the same open loop against the empty handler (`empty-server`, the transport
# floor); an overload against `--max-concurrency 8` and the recovery after it; a soak sampling
# the server's RSS. Every scenario runs a warm-up of the same load first (unreported).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}            # each closed-loop scenario
WARMUP=${WARMUP:-2s}       # before each scenario, same load, not reported
OPEN_DUR=${OPEN_DUR:-30s}  # the open-loop scenario
SHED_DUR=${SHED_DUR:-5s}   # overload, then recovery
SOAK=${SOAK:-150s}         # the soak
SAMPLE=${SAMPLE:-5s}       # RSS sampling during the soak
OUT=${OUT:-loadtest/results}

command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 2; }
cargo build --release -q -p pdp-server -p pdp-loadtest
bin=target/release
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$OUT"
rm -f "$OUT"/*.json

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

# start PORT ARGS...: `pdp serve` on CPU 0; sets $server and $port.
start() {
  port=$1
  shift
  taskset -c 0 "$bin/pdp" serve --http-listen off --listen "127.0.0.1:$port" "$@" 2>>"$work/pdp-$port.log" &
  server=$!
  wait_port "$port"
}

stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=
}

# load FILE NAME ROLE CONFIG [FLAGS...]: pdp-loadtest on CPU 1 against the running server.
reports=()
load() {
  local file=$1 name=$2 role=$3 config=$4
  shift 4
  taskset -c 1 "$bin/pdp-loadtest" --config "loadtest/ghz/$config.json" --warmup "$WARMUP" \
    --server-pid "$server" --name "$name" --tags "{\"role\":\"$role\"$EXTRA_TAGS}" \
    -O pretty -o "$OUT/$file.json" "$@" "127.0.0.1:$port"
  reports+=("$OUT/$file.json")
  printf '%-55s %s\n' "$name" "$(rps "$OUT/$file.json") calls/s"
}
EXTRA_TAGS=

rps() { sed -n 's/^  "rps": \([0-9.]*\),$/\1/p' "$1" | cut -d. -f1; }

echo "scenario                                                calls/s"
start 50101
load check-1-cache "Check, 1 in flight, cache on" check-1 check-mix -z "$DUR" -c 1 --connections 1
load check-sat-cache "Check, 32 in flight, cache on" check-saturation-cache check-mix -z "$DUR"
stop

start 50102 --decision-cache off
load check-1-nocache "Check, 1 in flight, cache off" check-1-nocache check-mix -z "$DUR" -c 1 --connections 1
load check-sat-nocache "Check, 32 in flight, cache off" check-saturation-nocache check-mix -z "$DUR"
half=$(( $(rps "$OUT/check-sat-nocache.json") / 2 ))
load check-open-loop "Check, open loop at half that rate, cache off" open-loop check-mix -z "$OPEN_DUR" --rps "$half"
load check-batch "CheckBatch (10 items), 32 in flight, cache off" check-batch check-batch -z "$DUR"
stop

# The same open loop against the empty handler (the transport floor of cpu-per-check.sh): what
# of the open loop's tail is the transport and the machine rather than the PDP.
port=50106
taskset -c 0 "$bin/empty-server" "127.0.0.1:$port" 2>>"$work/empty.log" &
server=$!
wait_port "$port"
load floor-open-loop "Empty handler (transport floor), same open loop" open-loop-floor check-mix -z "$OPEN_DUR" --rps "$half"
stop

start 50103 --decision-cache off --jwks server/tests/fixtures/jwks.json \
  --issuer https://idp.example.test --audience pdp
load check-jwt "Check with a JWT subject, 32 in flight, cache off" check-jwt check-jwt -z "$DUR"
load ext-authz "Envoy ext_authz Check (JWT), 32 in flight, cache off" ext-authz ext-authz -z "$DUR"
stop

start 50104 --decision-cache off --max-concurrency 8
EXTRA_TAGS=',"max-concurrency":"8"'
load shed "Overload: 64 in flight on 1 connection, limit 8" shed check-mix -z "$SHED_DUR" -c 64 --connections 1
load recover "Recovery: 8 in flight on 1 connection, limit 8" recover check-mix -z "$SHED_DUR" -c 8 --connections 1
EXTRA_TAGS=
stop

# The shared signal store out of reach (nothing listens on port 1): the server must keep
# answering (sensitive actions denied once the store is stale), without errors or growth.
start 50107 --decision-cache off --signals redis://127.0.0.1:1
load redis-down "Check, Redis unreachable, 32 in flight, cache off" redis-down check-mix -z "$OPEN_DUR" \
  --sample-interval "$SAMPLE"
stop

start 50105
load soak "Soak: open loop at half the saturation rate, cache on" soak check-mix -z "$SOAK" --rps "$half" \
  --sample-interval "$SAMPLE"
stop

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cat >"$work/preamble.md" <<PRE
Run by \`loadtest/run.sh\` on $(date -u +%Y-%m-%d) at commit $commit, on $(nproc) cores ($cpu),
Linux $(uname -r). \`pdp serve\` (the example policies in \`policies/\`, \`--http-listen off\`,
other settings default unless the scenario says) is pinned to CPU 0 with \`taskset\`; the load
generator, \`pdp-loadtest\` (ghz-compatible; configs in \`loadtest/ghz/\`), to CPU 1, on a
single-threaded runtime. Each scenario runs $WARMUP of the same load first, unreported; closed-loop
scenarios then run for $DUR, the open loop for $OPEN_DUR, the soak for $SOAK. Requests vary by
request number: the resource id over 10,000 values and, for the mixed configs, one request in
four is denied. The machine is a shared virtual machine: expect a few percent of noise in
calls/s and occasional multi-millisecond stalls of either process.
PRE
"$bin/loadtest-report" --out "$OUT" --preamble "$work/preamble.md" "${reports[@]}"
echo
echo "wrote $OUT/report.md, $OUT/latency.png and $(( ${#reports[@]} )) JSON reports"
