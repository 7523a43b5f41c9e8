#!/bin/bash
# B1 with the api and its redis-server pinned to given CPUs (taskset), to show
# how much B1 depends on where the scheduler puts the two (BENCHMARKS.md, "B1
# placement"). Usage: bench/pin_b1.sh API_CPUS REDIS_CPUS, e.g. 0 1, 0 0 or 0,1 0,1.
# Pins only the processes this bench run starts, found by their command lines.
set -euo pipefail
api_cpus=$1 redis_cpus=$2
out=$(mktemp)
jindou bench B1 --runs 2 --duration 6 >"$out" 2>&1 &
bench=$!
api="" redis=""
for _ in $(seq 1 100); do
  api=$(pgrep -P "$bench" -f "[-]m broker api" || true)
  redis=$(pgrep -P "$bench" -f "redis-server" || true)
  [ -n "$api" ] && [ -n "$redis" ] && break
  sleep 0.2
done
taskset -p -c "$api_cpus" "$api" >/dev/null
taskset -p -c "$redis_cpus" "$redis" >/dev/null
wait "$bench"
echo "api on $api_cpus, redis on $redis_cpus:"
grep -E "^\| B1 \| (send rate|api CPU|redis-server CPU)" "$out" | cut -d"|" -f3-6
rm -f "$out"
