#!/usr/bin/env bash
# Signal-to-enforcement latency across two replicas sharing a real redis-server: starts
# redis-server and two `pdp serve --signals redis://...` on loopback, then runs
# `signal-latency` (Publish on the first replica, Checks on the second until it denies).
# Usage: loadtest/signal-latency.sh [N]   (default 500 revocations)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
cargo build --release -q -p pdp-server -p pdp-loadtest
bin=target/release
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  exit 1
}

redis-server --port 56379 --bind 127.0.0.1 --save "" --dir "$dir" >/dev/null &
pids+=($!)
wait_port 56379
for port in 50071 50072; do
  # --admin-loopback: this benchmark publishes from loopback (a development setting).
  "$bin/pdp" serve --listen "127.0.0.1:$port" --http-listen off --admin-loopback true \
    --signals redis://127.0.0.1:56379 2>>"$dir/pdp.log" &
  pids+=($!)
  wait_port "$port"
done
"$bin/signal-latency" 127.0.0.1:50071 127.0.0.1:50072 "$n"
