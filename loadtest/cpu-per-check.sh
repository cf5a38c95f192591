#!/usr/bin/env bash
# Server CPU per Check and latency at one request in flight: `pdp serve` (decision cache off,
# the example policies, the README's request) against the empty-handler floor
# (`empty-server`), measured in the same run with h2load (Debian package nghttp2-client)
# over h2c on loopback. The server is pinned to CPU 0 and h2load to CPU 1.
#
# With TELEMETRY=1 it also measures the cost of telemetry on the Check path, against
# `pdp serve --metrics off` in the same run: per-decision metrics; metrics and the decision
# log; tracing on but unsampled; tracing with every call sampled and exported to `otlp-sink`
# (a real OTLP/gRPC receiver, on CPU 1 beside h2load).
#
#   loadtest/cpu-per-check.sh            # N=200000 calls, 16 connections x 8 streams
#   N=50000 C=4 M=4 loadtest/cpu-per-check.sh
#   TELEMETRY=1 loadtest/cpu-per-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
C=${C:-16}
M=${M:-8}
LAT_N=${LAT_N:-5000}

command -v h2load >/dev/null || { echo "needs h2load: apt-get install nghttp2-client" >&2; exit 2; }
cargo build --release -q -p pdp-server -p pdp-loadtest
bin=target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/grpc-frame" "$work/check.bin"
# The same request with the subject as a signed token (test key; the server verifies it once,
# then finds it in its token cache).
"$bin/grpc-frame" "$work/check-token.bin" server/tests/fixtures/rsa.pem
ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_port() {
  # Up to 20 s: a server starts in well under a second, but far slower on a loaded machine.
  for _ in $(seq 1 400); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

FRAME=$work/check.bin
h2() {
  taskset -c 1 h2load "http://127.0.0.1:$1/pdp.v1.AuthorizationService/Check" -d "$FRAME" \
    -H 'content-type: application/grpc' -H 'te: trailers' "${@:2}"
}

# measure NAME PORT COMMAND...: prints "NAME cpu_us_per_call calls_per_s p50_us"
measure() {
  local name=$1 port=$2
  shift 2
  taskset -c 0 "$@" 2>"$work/$name.log" &
  local pid=$!
  wait_port "$port"
  # h2load counts HTTP statuses only: check once that the call really succeeds in gRPC terms.
  if command -v curl >/dev/null; then
    curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
      --data-binary @"$FRAME" -D "$work/$name.headers" -o "$work/$name.body" \
      "http://127.0.0.1:$port/pdp.v1.AuthorizationService/Check"
    grep -qi '^grpc-status: 0' "$work/$name.headers" || { echo "$name: the call fails:" >&2; cat "$work/$name.headers" >&2; exit 1; }
    # The answer must be an allow (decision = 1: field 1, varint), not e.g. an identity deny.
    [ "$(od -An -tx1 -j5 -N2 "$work/$name.body" | tr -d ' ')" = "0801" ] || { echo "$name: not an allow" >&2; exit 1; }
  fi
  h2 "$port" -n 5000 -c "$C" -m "$M" >/dev/null
  local t0 elapsed t1
  t0=$(cpu_ticks "$pid")
  h2 "$port" -n "$N" -c "$C" -m "$M" >"$work/$name.load"
  t1=$(cpu_ticks "$pid")
  grep -q "0 failed, 0 errored" "$work/$name.load" || { cat "$work/$name.load" >&2; exit 1; }
  grep -q "status codes: $N 2xx" "$work/$name.load" || { cat "$work/$name.load" >&2; exit 1; }
  local rps
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$work/$name.load")
  h2 "$port" -n "$LAT_N" -c 1 -m 1 --log-file="$work/$name.lat" >/dev/null
  local p50
  p50=$(awk '{print $3}' "$work/$name.lat" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  awk -v n="$name" -v d="$((t1 - t0))" -v t="$ticks" -v c="$N" -v r="$rps" -v p="$p50" \
    'BEGIN { printf "%s %.2f %s %s\n", n, d / t * 1e6 / c, r, p }'
}

empty=$(measure empty 50061 "$bin/empty-server" 127.0.0.1:50061)
pdp=$(measure pdp 50062 "$bin/pdp" serve --http-listen off --listen 127.0.0.1:50062 --decision-cache off)
FRAME=$work/check-token.bin
token=$(measure pdp-token 50063 "$bin/pdp" serve --http-listen off --listen 127.0.0.1:50063 --decision-cache off \
  --jwks server/tests/fixtures/jwks.json --issuer https://idp.example.test --audience pdp)

echo "calls: $N per server, $C connections x $M streams; latency: $LAT_N calls at 1 in flight"
echo
echo "| server | CPU per call (µs) | calls/s on one core | p50 at 1 in flight (µs) |"
echo "|---|---:|---:|---:|"
for row in "$empty" "$pdp" "$token"; do
  read -r name cpu rps p50 <<<"$row"
  echo "| $name | $cpu | $rps | $p50 |"
done
read -r _ cpu_empty _ _ <<<"$empty"
read -r _ cpu_pdp _ p50_pdp <<<"$pdp"
read -r _ cpu_token _ p50_token <<<"$token"
awk -v a="$cpu_pdp" -v t="$cpu_token" -v b="$cpu_empty" -v p="$p50_pdp" -v q="$p50_token" 'BEGIN {
  printf "\nratio pdp / empty: %.2fx, with a (cached) token %.2fx (target <= 1.5x): %s\n", a / b, t / b, (t / b <= 1.5 && a / b <= 1.5 ? "PASS" : "FAIL")
  printf "p50 at 1 in flight: %d us, with a token %d us (target <= 100 us): %s\n", p, q, (p <= 100 && q <= 100 ? "PASS" : "FAIL")
}'

[ "${TELEMETRY:-0}" = 1 ] || exit 0
FRAME=$work/check.bin
taskset -c 1 "$bin/otlp-sink" 127.0.0.1:54317 >"$work/sink.out" &
sink=$!
wait_port 54317
serve=("$bin/pdp" serve --http-listen off --decision-cache off)
rows=()
rows+=("$(measure no-telemetry 50064 "${serve[@]}" --listen 127.0.0.1:50064 --metrics off)")
rows+=("$(measure metrics 50065 "${serve[@]}" --listen 127.0.0.1:50065)")
rows+=("$(measure metrics+log 50066 "${serve[@]}" --listen 127.0.0.1:50066 --decision-log "$work/decisions.jsonl")")
rows+=("$(measure tracing-unsampled 50067 "${serve[@]}" --listen 127.0.0.1:50067 --metrics off \
  --otlp-endpoint http://127.0.0.1:54317 --trace-sample-ratio 0)")
rows+=("$(measure tracing-sampled 50068 "${serve[@]}" --listen 127.0.0.1:50068 --metrics off \
  --otlp-endpoint http://127.0.0.1:54317 --trace-sample-ratio 1)")
kill "$sink"
wait "$sink" 2>/dev/null || true
records=$(grep -vc '^{"checkpoint"' "$work/decisions.jsonl" || true)
echo
echo "| telemetry | CPU per call (µs) | vs none | calls/s on one core | p50 at 1 in flight (µs) |"
echo "|---|---:|---:|---:|---:|"
read -r _ base _ _ <<<"${rows[0]}"
for row in "${rows[@]}"; do
  read -r name cpu rps p50 <<<"$row"
  awk -v n="$name" -v c="$cpu" -v b="$base" -v r="$rps" -v p="$p50" \
    'BEGIN { printf "| %s | %s | %+.1f%% | %s | %s |\n", n, c, (c / b - 1) * 100, r, p }'
done
read -r _ logged _ _ <<<"${rows[2]}"
echo
echo "decision log records written: $records; $(cat "$work/sink.out")"
awk -v l="$logged" -v b="$base" 'BEGIN {
  printf "metrics + decision log: %+.1f%% CPU per call (target <= +10%%): %s\n", (l / b - 1) * 100, (l / b <= 1.10 ? "PASS" : "FAIL")
}'
