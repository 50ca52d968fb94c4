#!/usr/bin/env bash
# Sluice packet data plane benchmark: plain kernel forwarding, nftables DNAT and
# `sluice run --dataplane packet`, each in the same fresh topology of network
# namespaces (client -- lb -- backend, addresses from 198.18.0.0/15), measured in
# one run with the same clients and servers.
#
#   bash bench/packet/run.sh [--reps N] [--seconds S] [--out FILE] [--paths "forward nftables sluice"]
#   npm run bench:packet
#
# --paths measures a subset (for profiling Sluice alone); comparisons need all three in one run.
#
# Needs root, iperf3, gcc and nft. See docs/benchmarks.md ("Packet data plane").
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REPS=1
SECONDS_RUN=5
OUT=""
PATHS="forward nftables sluice"
while (($# > 0)); do
  case "$1" in
    --reps) REPS=$2; shift ;;
    --seconds) SECONDS_RUN=$2; shift ;;
    --out) OUT=$2; shift ;;
    --paths) PATHS=$2; shift ;;
    -h | --help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "bench/packet needs root (network namespaces, TUN)" >&2; exit 1; }
for t in iperf3 gcc nft ip; do command -v $t >/dev/null || { echo "missing: $t" >&2; exit 1; }; done
[ -f "$REPO/native/build/Release/sluice_tun.node" ] || { echo "the TUN addon is not built (npm run install)" >&2; exit 1; }
[ -f "$REPO/dist/src/cli/main.js" ] || { echo "build first (npm run build)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/sluice-bench-packet.XXXXXX)
P="slbench$$"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  for r in c lb b; do ip netns del "${P}$r" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/bin"
for f in echo-server ping-pong conn-rate; do
  gcc -O2 -Wall -Wextra -o "$WORK/bin/$f" "$REPO/bench/proxy/$f.c" || exit 1
done

CLIENT=198.18.1.2
BACKEND=198.18.2.2
FRONTEND=198.18.100.10
SOURCES=198.18.5.1 # conn-rate binds 250 source addresses from here
ECHO_PORT=17000
BULK_PORT=15201

node -e "
const lb = (ports) => ({
  name: 'bench', id: '/subscriptions/0/resourceGroups/b/providers/Microsoft.Network/loadBalancers/bench',
  type: 'Microsoft.Network/loadBalancers', sku: { name: 'Standard' },
  properties: {
    frontendIPConfigurations: [{ name: 'fe', properties: { privateIPAddress: '$FRONTEND' } }],
    backendAddressPools: [{ name: 'pool', properties: { loadBalancerBackendAddresses: [{ name: 'b', properties: { ipAddress: '$BACKEND' } }] } }],
    loadBalancingRules: ports.map((p) => ({ name: 'r' + p, properties: {
      frontendIPConfiguration: { id: '/subscriptions/0/resourceGroups/b/providers/Microsoft.Network/loadBalancers/bench/frontendIPConfigurations/fe' },
      backendAddressPool: { id: '/subscriptions/0/resourceGroups/b/providers/Microsoft.Network/loadBalancers/bench/backendAddressPools/pool' },
      protocol: 'Tcp', frontendPort: p, backendPort: p, idleTimeoutInMinutes: 30, enableTcpReset: true } })),
  },
});
require('fs').writeFileSync('$WORK/lb.json', JSON.stringify(lb([$ECHO_PORT, $BULK_PORT])));
"

topology() {
  for r in c lb b; do ip netns add "${P}$r"; ip -n "${P}$r" link set lo up; done
  ip -n "${P}c" link add eth0 type veth peer name lbc netns "${P}lb"
  ip -n "${P}b" link add eth0 type veth peer name lbb netns "${P}lb"
  ip -n "${P}c" addr add $CLIENT/24 dev eth0
  for i in $(seq 1 250); do echo "address add 198.18.5.$i/32 dev eth0"; done | ip -n "${P}c" -batch -
  ip -n "${P}c" link set eth0 up
  ip -n "${P}c" route add default via 198.18.1.1
  ip -n "${P}b" addr add $BACKEND/24 dev eth0
  ip -n "${P}b" link set eth0 up
  ip -n "${P}b" route add default via 198.18.2.1
  ip -n "${P}lb" addr add 198.18.1.1/24 dev lbc
  ip -n "${P}lb" addr add 198.18.2.1/24 dev lbb
  ip -n "${P}lb" link set lbc up
  ip -n "${P}lb" link set lbb up
  ip -n "${P}lb" route add 198.18.5.0/24 via $CLIENT
  ip netns exec "${P}lb" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "${P}b" "$WORK/bin/echo-server" 0.0.0.0 $ECHO_PORT & PIDS+=($!)
  ip netns exec "${P}b" iperf3 -s -p $BULK_PORT >/dev/null 2>&1 & PIDS+=($!)
  sleep 0.3
}

teardown() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  PIDS=()
  for r in c lb b; do ip netns del "${P}$r" 2>/dev/null; done
}

# measure PATH TARGET: prints "gbps p50 p99 conns" for one path
measure() {
  local target=$1
  local gbps rr cr
  gbps=$(ip netns exec "${P}c" iperf3 -c "$target" -p $BULK_PORT -t "$SECONDS_RUN" -J 2>/dev/null |
    node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{try{console.log((JSON.parse(s).end.sum_received.bits_per_second/1e9).toFixed(2))}catch{console.log('-')}})")
  rr=$(ip netns exec "${P}c" "$WORK/bin/ping-pong" "$target" $ECHO_PORT 50000 64 "$SECONDS_RUN" 2>/dev/null)
  cr=$(ip netns exec "${P}c" "$WORK/bin/conn-rate" "$target" $ECHO_PORT 16 "$SECONDS_RUN" 60000 $SOURCES 2>/dev/null)
  local p50 p99 rate
  p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$rr")
  p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$rr")
  rate=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$cr")
  echo "$gbps ${p50:--} ${p99:--} ${rate:--}"
}

declare -A RESULTS
declare -A FAILED
# Paths alternate their order from one repetition to the next (as the proxy harness does), so
# no path always runs first on a cold machine or last on a warm one.
read -r -a FORWARD_ORDER <<<"$PATHS"
REVERSE_ORDER=()
for ((i = ${#FORWARD_ORDER[@]} - 1; i >= 0; i--)); do REVERSE_ORDER+=("${FORWARD_ORDER[i]}"); done
for rep in $(seq 1 "$REPS"); do
  if ((rep % 2 == 1)); then order=("${FORWARD_ORDER[@]}"); else order=("${REVERSE_ORDER[@]}"); fi
  for path in "${order[@]}"; do
    topology
    case $path in
      forward) target=$BACKEND ;;
      nftables)
        target=$FRONTEND
        ip netns exec "${P}lb" nft -f - <<NFT
table ip bench {
  chain pre { type nat hook prerouting priority dstnat; ip daddr $FRONTEND tcp dport { $ECHO_PORT, $BULK_PORT } dnat to $BACKEND; }
}
NFT
        ;;
      sluice)
        target=$FRONTEND
        ip netns exec "${P}lb" node "$REPO/dist/src/cli/main.js" run "$WORK/lb.json" --dataplane packet \
          --log-level warn --api off >"$WORK/sluice.log" 2>&1 &
        PIDS+=($!)
        started=0
        for _ in $(seq 1 100); do
          if ip -n "${P}lb" route | grep -q "$FRONTEND dev sluice0"; then started=1; break; fi
          sleep 0.1
        done
        if ((started == 0)); then
          echo "rep $rep sluice: did not start within 10 s; its log:" >&2
          sed 's/^/  /' "$WORK/sluice.log" >&2
          RESULTS[$path,$rep]="- - - -"
          FAILED[$path]=$((${FAILED[$path]:-0} + 1))
          teardown
          continue
        fi
        ;;
    esac
    RESULTS[$path,$rep]=$(measure "$target")
    # A measurement that produced nothing (a client failed) is reported, not silently left out.
    if [[ "${RESULTS[$path,$rep]}" == *-* ]]; then FAILED[$path]=$((${FAILED[$path]:-0} + 1)); fi
    echo "rep $rep $path: ${RESULTS[$path,$rep]} (Gbit/s, p50 us, p99 us, conn/s)" >&2
    teardown
  done
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }
col() { for rep in $(seq 1 "$REPS"); do awk -v c="$2" '{print $c}' <<<"${RESULTS[$1,$rep]}"; done | grep -v -- - | median; }

{
  echo "| path | bulk, 1 stream (Gbit/s) | 64 B RR p50 / p99 (us) | connections/s (16 concurrent) |"
  echo "|---|---|---|---|"
  for path in $PATHS; do
    echo "| $path | $(col $path 1) | $(col $path 2) / $(col $path 3) | $(col $path 4) |"
  done
  if [[ " $PATHS " == *" nftables "* && " $PATHS " == *" sluice "* ]]; then
    nb=$(col nftables 1); sb=$(col sluice 1); n99=$(col nftables 3); s99=$(col sluice 3); nc=$(col nftables 4); sc=$(col sluice 4)
    echo
    echo "Sluice / nftables: bulk $(awk -v a="$sb" -v b="$nb" 'BEGIN{printf "%.2f", a/b}')x," \
      "p99 $(awk -v a="$s99" -v b="$n99" 'BEGIN{printf "%.2f", a/b}')x," \
      "connections/s $(awk -v a="$sc" -v b="$nc" 'BEGIN{printf "%.2f", a/b}')x ($REPS repetition(s), medians, ${SECONDS_RUN} s runs)"
  fi
  for path in $PATHS; do
    if [ -n "${FAILED[$path]:-}" ]; then
      echo
      echo "$path: ${FAILED[$path]} of $REPS repetition(s) failed or lacked a value; medians are of the rest"
    fi
  done
} | tee "${OUT:-/dev/null}"
