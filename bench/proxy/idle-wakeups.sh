#!/usr/bin/env bash
# How often an idle Sluice wakes up, and what it costs: `sluice run CONFIG --api off` with no
# flow, its main thread's voluntary context switches and CPU time over a window.
#
#   bash bench/proxy/idle-wakeups.sh [--seconds S] [--config FILE]
#
# Build first (npm run build). Each wake-up of the main thread is a return from epoll_wait:
# a timer, a probe, a socket. See docs/benchmarks.md ("Idle wake-ups").
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_RUN=20
CONFIG="$REPO/examples/quickstart.json"
while (($# > 0)); do
  case "$1" in
    --seconds) SECONDS_RUN=$2; shift ;;
    --config) CONFIG=$2; shift ;;
    -h | --help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$REPO/dist/src/cli/main.js" ] || { echo "build first (npm run build)" >&2; exit 1; }
STATE=$(mktemp -d /tmp/sluice-idle-wakeups.XXXXXX)
node "$REPO/dist/src/cli/main.js" run "$CONFIG" --api off --state-dir "$STATE" --log-level warn >/dev/null 2>&1 &
PID=$!
trap 'kill -INT $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$STATE"' EXIT
sleep 3
kill -0 $PID 2>/dev/null || { echo "sluice did not start" >&2; exit 1; }
switches() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$PID/task/$PID/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$PID/$1/stat"; }
HZ=$(getconf CLK_TCK)
v0=$(switches); m0=$(ticks "task/$PID"); p0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
sleep "$SECONDS_RUN"
v1=$(switches); m1=$(ticks "task/$PID"); p1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
awk -v v=$((v1 - v0)) -v m=$((m1 - m0)) -v p=$((p1 - p0)) -v s="$SECONDS_RUN" -v hz="$HZ" 'BEGIN {
  printf "idle sluice run, %d s: main thread %.1f wake-ups/s (%d), main thread CPU %.2f%% of one core, whole process %.2f%%\n",
    s, v / s, v, 100 * m / hz / s, 100 * p / hz / s
}'
