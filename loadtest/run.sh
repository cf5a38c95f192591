#!/usr/bin/env bash
# The published load test: builds release, runs `pdp serve` (the example policies,
# `--http-listen off`) pinned to CPU 0 and `pdp-loadtest` (ghz-compatible, the configs in
# loadtest/ghz/) pinned to CPU 1, through the standard scenarios, and writes
# loadtest/results/report.md, loadtest/results/latency.png and one JSON report (ghz's format)
# per scenario.
#
#   loadtest/run.sh                       # 7 minutes of load, after the release build
#   DUR=5s OPEN_DUR=10s SOAK=30s loadtest/run.sh
#   GHZ=off ENVOY=off loadtest/run.sh     # without the real ghz, or without Envoy and h2load
#
# Scenarios: Check at 1 in flight and saturated, decision cache on and off; Check in open loop
# at half the cache-off saturation rate; CheckBatch (10 items); Check with a JWT subject; Envoy
# ext_authz Check; the same open loop against the empty handler (`empty-server`, the transport
# floor); an overload against `--max-concurrency 8` and the recovery after it; a soak sampling
# the server's RSS. Every scenario runs a warm-up of the same load first (unreported).
# Beside them: the saturated cache-off load run by the real ghz (`ghz` on PATH or in
# ~/go/bin), and HTTP through the real Envoy with ext_authz on and off (envoy and h2load;
# the Envoy configuration is deploy/envoy/envoy.yaml rewritten by loadtest/envoy-config.py).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}            # each closed-loop scenario
WARMUP=${WARMUP:-2s}       # before each scenario, same load, not reported
OPEN_DUR=${OPEN_DUR:-30s}  # the open-loop scenario
SHED_DUR=${SHED_DUR:-5s}   # overload, then recovery
SOAK=${SOAK:-150s}         # the soak
SAMPLE=${SAMPLE:-5s}       # RSS sampling during the soak
OUT=${OUT:-loadtest/results}
GHZ=${GHZ:-$(command -v ghz || echo "$HOME/go/bin/ghz")}  # the real ghz, or `off`
ENVOY=${ENVOY:-on}         # Envoy with ext_authz on and off, or `off`

command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 2; }
if [ "$GHZ" != off ] && ! [ -x "$GHZ" ]; then
  echo "needs ghz (go install github.com/bojand/ghz/cmd/ghz@v0.121.0), or GHZ=off" >&2
  exit 2
fi
if [ "$ENVOY" != off ]; then
  for tool in envoy h2load python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool for the Envoy scenarios, or ENVOY=off" >&2; exit 2; }
  done
  python3 -c 'import yaml' 2>/dev/null || { echo "needs PyYAML (pip install pyyaml), or ENVOY=off" >&2; exit 2; }
fi
cargo build --release -q -p pdp-server -p pdp-loadtest
bin=target/release
work=$(mktemp -d)
server=
envoy_pid=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  if [ -n "$envoy_pid" ]; then kill "$envoy_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/envoy-*.txt

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

# alive PID WHAT LOG: fails unless PID still runs (another process may hold its port).
alive() {
  kill -0 "$1" 2>/dev/null && return 0
  echo "$2 exited (is its port taken?):" >&2
  tail -5 "$3" >&2
  exit 1
}

# start PORT ARGS...: `pdp serve` on CPU 0; sets $server and $port.
start() {
  port=$1
  shift
  taskset -c 0 "$bin/pdp" serve --http-listen off --listen "127.0.0.1:$port" "$@" 2>>"$work/pdp-$port.log" &
  server=$!
  wait_port "$port"
  alive "$server" "pdp serve on port $port" "$work/pdp-$port.log"
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

# cpu PID: the process's user + system time so far, in seconds.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a - b }'; }

echo "scenario                                                calls/s"
start 50101
load check-1-cache "Check, 1 in flight, cache on" check-1 check-mix -z "$DUR" -c 1 --connections 1
load check-sat-cache "Check, 32 in flight, cache on" check-saturation-cache check-mix -z "$DUR"
stop

start 50102 --decision-cache off
load check-1-nocache "Check, 1 in flight, cache off" check-1-nocache check-mix -z "$DUR" -c 1 --connections 1
load check-sat-nocache "Check, 32 in flight, cache off" check-saturation-nocache check-mix -z "$DUR"
# The same load from the real ghz, on the same server and core, as loadtest/README.md runs it
# (the config, reflection, no --proto). Its report loses ghz's per-call `details` (one record
# per call: hundreds of MB).
if [ "$GHZ" != off ]; then
  taskset -c 1 "$GHZ" --config loadtest/ghz/check-mix.json -z "$WARMUP" -O json -o /dev/null "127.0.0.1:$port"
  before=$(cpu "$server")
  taskset -c 1 "$GHZ" --config loadtest/ghz/check-mix.json -z "$DUR" \
    --name "Check, 32 in flight, cache off (ghz)" --tags '{"role":"ghz"}' \
    -O json -o "$work/ghz.json" "127.0.0.1:$port"
  ghz_cpu=$(minus "$(cpu "$server")" "$before")
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); r.pop("details", None); json.dump(r, open(sys.argv[2], "w"), indent=2)' \
    "$work/ghz.json" "$OUT/ghz-check-sat-nocache.json"
  printf '%-55s %s\n' "the same, from ghz" "$(python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["rps"]))' "$OUT/ghz-check-sat-nocache.json") calls/s"
fi
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

# HTTP through the real Envoy to an echo upstream, ext_authz on (this PDP) and off (the same
# configuration without the filter): what a request pays for the PDP. h2load speaks HTTP/2 with
# alice's token; Envoy (one worker) and h2load share CPU 1, the PDP has CPU 0. h2load connects
# from 127.0.0.1, so the PDP serves the example policies with 127.0.0.0/8 added to the source
# networks they allow (10.0.0.0/8): the requests are allowed, as most are in production.
envoy_runs=()
if [ "$ENVOY" != off ]; then
  mkdir "$work/policies"
  find policies -maxdepth 1 -type f -exec cp {} "$work/policies/" \;
  sed -i 's#"10\.0\.0\.0/8"#"10.0.0.0/8", "127.0.0.0/8"#g' "$work/policies"/*
  start 50108 --decision-cache off --policies "$work/policies" --jwks server/tests/fixtures/jwks.json \
    --issuer https://idp.example.test --audience pdp
  for i in $(seq 0 999); do echo "http://127.0.0.1:50180/data/report-$i.csv"; done >"$work/uris"
  h2=(-H "authorization: Bearer $(cat loadtest/ghz/alice.jwt)" -i "$work/uris")
  for mode in off on; do
    loadtest/envoy-config.py --pdp "127.0.0.1:$port" --listen 50180 --upstream 50181 --ext-authz "$mode" \
      >"$work/envoy-$mode.yaml"
    taskset -c 1 envoy -c "$work/envoy-$mode.yaml" --concurrency 1 --disable-hot-restart \
      --log-level warn 2>>"$work/envoy-$mode.log" &
    envoy_pid=$!
    wait_port 50180
    wait_port 50181
    alive "$envoy_pid" "envoy" "$work/envoy-$mode.log"
    for flight in 1 32; do
      if [ "$flight" = 1 ]; then shape=(-c 1 -m 1); else shape=(-c 2 -m 16); fi
      taskset -c 1 h2load "${h2[@]}" "${shape[@]}" -D "$WARMUP" >/dev/null
      e0=$(cpu "$envoy_pid")
      p0=$(cpu "$server")
      taskset -c 1 h2load "${h2[@]}" "${shape[@]}" -D "$DUR" --log-file "$work/h2-$mode-$flight.log" \
        >"$OUT/envoy-$mode-$flight.txt"
      e=$(minus "$(cpu "$envoy_pid")" "$e0")
      p=$(minus "$(cpu "$server")" "$p0")
      envoy_runs+=("$mode:$flight:$OUT/envoy-$mode-$flight.txt:$work/h2-$mode-$flight.log:$e:$p")
      printf '%-55s %s\n' "Envoy, ext_authz $mode, $flight in flight" \
        "$(sed -n 's/^finished in [^,]*, \([0-9]*\).* req\/s.*/\1/p' "$OUT/envoy-$mode-$flight.txt") requests/s"
    done
    kill "$envoy_pid"
    wait "$envoy_pid" 2>/dev/null || true
    envoy_pid=
  done
  stop
fi

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
# The side-by-side sections, before the plot.
{
  sed '/^## Latency percentiles/,$d' "$OUT/report.md"
  if [ "$GHZ" != off ]; then
    python3 loadtest/compare.py ghz "$OUT/ghz-check-sat-nocache.json" "$OUT/check-sat-nocache.json" "$ghz_cpu"
  fi
  if [ "$ENVOY" != off ]; then
    python3 loadtest/compare.py envoy "$OUT/envoy-ext-authz.json" "${envoy_runs[@]}"
  fi
  sed -n '/^## Latency percentiles/,$p' "$OUT/report.md"
} >"$work/report.md"
mv "$work/report.md" "$OUT/report.md"
echo
echo "wrote $OUT/report.md, $OUT/latency.png and $(( ${#reports[@]} )) JSON reports"
