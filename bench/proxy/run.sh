#!/usr/bin/env bash
# Sluice proxy data plane benchmark: a direct connection, HAProxy (1 and 2
# threads), nginx stream (1 worker) and `sluice run`, measured in one run on
# loopback with the same backends, clients and rule, so the ratios compare like
# with like on whatever machine runs it.
#
#   bash bench/proxy/run.sh [--quick] [--reps N] [--idle N] [--paths LIST] ...
#   npm run bench:proxy -- --quick
#
# See docs/benchmarks.md ("Proxy data plane") for what each figure means.
set -uo pipefail

usage() {
  cat <<'EOF'
Usage: bash bench/proxy/run.sh [options]

  --quick            1 repetition, short runs (finishes in under 2 minutes)
  --reps N           repetitions; the order of paths alternates, medians are reported (default 3)
  --idle N           idle connections for the memory figure, 1-9900 (default 2000)
  --paths LIST       comma-separated subset of: direct,haproxy1,haproxy2,nginx,sluice
  --no-pin           do not pin the latency run to one CPU
  --sluice-arg ARG   extra argument for `sluice run` (repeatable), e.g. --sluice-arg=--log-level=warn
  --out FILE         Markdown report (default bench/results/proxy-<date>.md)
  --keep-work        keep the temporary directory (configurations, logs, binaries)
  --no-install       never call apt-get; fail if a tool is missing
  -h, --help         this text
EOF
}

# ---------------------------------------------------------------- settings ---

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR="$REPO/bench/proxy"

# Backends and frontends live on distinct loopback addresses, and on ports that
# the quick start and the test suites do not use, so the benchmark can run
# beside them.
BACKENDS=(127.0.0.2 127.0.0.3)
ECHO_PORT=17000
BULK_PORT=15201
declare -A FRONTEND=([direct]=127.0.0.2 [haproxy1]=127.0.0.20 [haproxy2]=127.0.0.21 [nginx]=127.0.0.22 [sluice]=127.0.0.23)
declare -A LABEL=([direct]="direct" [haproxy1]="HAProxy, 1 thread" [haproxy2]="HAProxy, 2 threads"
  [nginx]="nginx stream, 1 worker" [sluice]="Sluice")
ALL_PATHS=(direct haproxy1 haproxy2 nginx sluice)
MAX_IDLE=9900 # a proxied flow holds two descriptors; the hard open-files limit here is 20,000

REPS=3
QUICK=0
IDLE=2000
PIN=1
INSTALL=1
KEEP_WORK=0
OUT=""
PATHS_ARG=""
SLUICE_ARGS=()

while (($# > 0)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=${2:-}; shift ;;
    --reps=*) REPS=${1#*=} ;;
    --idle) IDLE=${2:-}; shift ;;
    --idle=*) IDLE=${1#*=} ;;
    --paths) PATHS_ARG=${2:-}; shift ;;
    --paths=*) PATHS_ARG=${1#*=} ;;
    --no-pin) PIN=0 ;;
    --sluice-arg) SLUICE_ARGS+=("${2:-}"); shift ;;
    --sluice-arg=*) SLUICE_ARGS+=("${1#*=}") ;;
    --out) OUT=${2:-}; shift ;;
    --out=*) OUT=${1#*=} ;;
    --keep-work) KEEP_WORK=1 ;;
    --no-install) INSTALL=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [[ ! $REPS =~ ^[0-9]+$ ]] || ((REPS < 1 || REPS > 20)); then
  echo "run.sh: --reps must be 1-20" >&2; exit 2
fi
if [[ ! $IDLE =~ ^[0-9]+$ ]] || ((IDLE < 1 || IDLE > MAX_IDLE)); then
  echo "run.sh: --idle must be 1-$MAX_IDLE (two descriptors per proxied flow, 20,000 open files at most)" >&2
  exit 2
fi

if ((QUICK)); then
  REPS=1
  BULK_SECS=2
  CPS_SECS=2
  PP_ITERS=10000
else
  BULK_SECS=5
  CPS_SECS=5
  PP_ITERS=100000
fi
CPS_CONCURRENCY=16
PP_SIZE=64

PATHS=()
if [[ -n $PATHS_ARG ]]; then
  IFS=',' read -r -a wanted <<<"$PATHS_ARG"
  for p in "${wanted[@]}"; do
    if [[ -z ${FRONTEND[$p]:-} ]]; then
      echo "run.sh: unknown path '$p' (known: ${ALL_PATHS[*]})" >&2; exit 2
    fi
    PATHS+=("$p")
  done
else
  PATHS=("${ALL_PATHS[@]}")
fi

[[ -z $OUT ]] && OUT="$REPO/bench/results/proxy-$(date +%F).md"

# ------------------------------------------------------- processes, cleanup ---

WORK=""
STARTED=() # every PID this script started, so cleanup stops those and nothing else

log() { printf '%s\n' "$*" >&2; }

alive() { kill -0 "$1" 2>/dev/null; }

# Stops one process this script started: TERM, then KILL after 3 s.
stop_pid() {
  local pid=$1 i
  alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 30; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  local i
  trap - EXIT INT TERM
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    stop_pid "${STARTED[i]}"
  done
  if [[ -n $WORK && -d $WORK ]]; then
    if ((KEEP_WORK)); then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Forgets a PID once stopped, so cleanup does not signal a recycled PID later.
forget() {
  local pid=$1 i
  for i in "${!STARTED[@]}"; do
    [[ ${STARTED[i]} == "$pid" ]] && unset 'STARTED[i]'
  done
  STARTED=("${STARTED[@]}")
}

# ------------------------------------------------------------------- tools ---

ensure_tools() {
  local missing=()
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v nginx >/dev/null || missing+=(nginx)
  # Debian builds the stream module as a loadable module in its own package.
  if ! nginx -V 2>&1 | grep -q -- '--with-stream ' && [[ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]]; then
    missing+=(libnginx-mod-stream)
  fi
  command -v iperf3 >/dev/null || missing+=(iperf3)
  command -v jq >/dev/null || missing+=(jq)
  command -v taskset >/dev/null || missing+=(util-linux)
  command -v ps >/dev/null || missing+=(procps)
  command -v ss >/dev/null || missing+=(iproute2)
  ((${#missing[@]} == 0)) && return 0
  if ((!INSTALL)); then
    log "missing: ${missing[*]} (run without --no-install to install them)"; exit 1
  fi
  if ((EUID != 0)); then
    log "missing: ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root"; exit 1
  fi
  log "installing ${missing[*]}"
  # Services that the packages would start are not used: the benchmark runs its
  # own instances with its own configuration.
  if ! DEBIAN_FRONTEND=noninteractive apt-get update -q >"$WORK/apt.log" 2>&1 ||
    ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$WORK/apt.log" 2>&1; then
    tail -20 "$WORK/apt.log" >&2
    log "apt-get failed"; exit 1
  fi
}

compile_programs() {
  local f
  for f in echo-server conn-rate ping-pong idle-hold; do
    if ! gcc -O2 -Wall -Wextra -o "$WORK/bin/$f" "$BENCH_DIR/$f.c"; then
      log "gcc failed on bench/proxy/$f.c"; exit 1
    fi
  done
}

# ------------------------------------------------------ process accounting ---

# A proxy may be several processes (nginx's master and worker, a Sluice that
# forks): figures are summed over the whole tree.
proc_tree() {
  local pid=$1 c
  echo "$pid"
  for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do proc_tree "$c"; done
}

cpu_ticks() {
  local total=0 p s
  local -a f
  for p in $(proc_tree "$1"); do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    # The command name may contain spaces; fields are counted after its ')'.
    read -r -a f <<<"${s##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

rss_kb() {
  local total=0 p v
  for p in $(proc_tree "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

set_affinity() {
  local cpus=$1 p
  shift
  for root in "$@"; do
    for p in $(proc_tree "$root"); do taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1; done
  done
}

# Waits until ADDRESS:PORT accepts a connection, at most SECONDS.
wait_port() {
  local addr=$1 port=$2 secs=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    if timeout 1 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

port_in_use() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# ---------------------------------------------------------------- backends ---

BACKEND_PIDS=()

start_backends() {
  local b pid
  for b in "${BACKENDS[@]}"; do
    if port_in_use "$b" "$ECHO_PORT"; then log "$b:$ECHO_PORT is already in use"; exit 1; fi
    "$WORK/bin/echo-server" "$b" "$ECHO_PORT" >"$WORK/echo-$b.log" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    BACKEND_PIDS+=("$pid")
    wait_port "$b" "$ECHO_PORT" 5 || { log "echo server on $b did not start"; cat "$WORK/echo-$b.log" >&2; exit 1; }
  done
  # iperf3 runs one test at a time and needs its control and data connections on
  # the same server, so bulk goes to a single backend.
  if port_in_use "${BACKENDS[0]}" "$BULK_PORT"; then log "${BACKENDS[0]}:$BULK_PORT is already in use"; exit 1; fi
  iperf3 -s -B "${BACKENDS[0]}" -p "$BULK_PORT" >"$WORK/iperf3-server.log" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  BACKEND_PIDS+=("$pid")
  for ((i = 0; i < 50; i++)); do
    ss -Hltn "src ${BACKENDS[0]}:$BULK_PORT" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  log "iperf3 server did not start"; cat "$WORK/iperf3-server.log" >&2; exit 1
}

# ------------------------------------------------------------------ proxies ---

write_haproxy_config() {
  local threads=$1 fe=$2
  cat >"$WORK/haproxy-$threads.cfg" <<EOF
global
    nbthread $threads
    maxconn $((MAX_IDLE + 50))

defaults
    mode tcp
    maxconn $((MAX_IDLE + 50))
    timeout connect 5s
    timeout client 30m
    timeout server 30m

frontend echo
    bind $fe:$ECHO_PORT
    default_backend echo

backend echo
    balance roundrobin
    server b1 ${BACKENDS[0]}:$ECHO_PORT
    server b2 ${BACKENDS[1]}:$ECHO_PORT

frontend bulk
    bind $fe:$BULK_PORT
    default_backend bulk

backend bulk
    server b1 ${BACKENDS[0]}:$BULK_PORT
EOF
}

write_nginx_config() {
  local fe=$1 module=""
  [[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] &&
    module="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx.conf" <<EOF
$module
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;

events {
    worker_connections 19990;
}

stream {
    upstream echo {
        server ${BACKENDS[0]}:$ECHO_PORT;
        server ${BACKENDS[1]}:$ECHO_PORT;
    }
    upstream bulk {
        server ${BACKENDS[0]}:$BULK_PORT;
    }
    server {
        listen $fe:$ECHO_PORT;
        proxy_pass echo;
        proxy_connect_timeout 5s;
        proxy_timeout 30m;
    }
    server {
        listen $fe:$BULK_PORT;
        proxy_pass bulk;
        proxy_connect_timeout 5s;
        proxy_timeout 30m;
    }
}
EOF
}

# The same two rules as the other proxies, in the ARM form a user would export
# from Azure: idle timeout 30 minutes with TCP reset, as a long-lived service
# would configure it, so no flow of the benchmark ever reaches idle.
write_sluice_config() {
  local fe=$1
  local lb="/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench/providers/Microsoft.Network/loadBalancers/bench-lb"
  cat >"$WORK/sluice.json" <<EOF
{
  "name": "bench-lb",
  "id": "$lb",
  "type": "Microsoft.Network/loadBalancers",
  "location": "local",
  "sku": { "name": "Standard", "tier": "Regional" },
  "properties": {
    "frontendIPConfigurations": [
      {
        "name": "fe",
        "id": "$lb/frontendIPConfigurations/fe",
        "properties": { "privateIPAddress": "$fe", "privateIPAllocationMethod": "Static", "privateIPAddressVersion": "IPv4" }
      }
    ],
    "backendAddressPools": [
      {
        "name": "echo",
        "id": "$lb/backendAddressPools/echo",
        "properties": {
          "loadBalancerBackendAddresses": [
            { "name": "echo-1", "properties": { "ipAddress": "${BACKENDS[0]}" } },
            { "name": "echo-2", "properties": { "ipAddress": "${BACKENDS[1]}" } }
          ]
        }
      },
      {
        "name": "bulk",
        "id": "$lb/backendAddressPools/bulk",
        "properties": {
          "loadBalancerBackendAddresses": [{ "name": "bulk-1", "properties": { "ipAddress": "${BACKENDS[0]}" } }]
        }
      }
    ],
    "loadBalancingRules": [
      {
        "name": "echo",
        "id": "$lb/loadBalancingRules/echo",
        "properties": {
          "frontendIPConfiguration": { "id": "$lb/frontendIPConfigurations/fe" },
          "backendAddressPool": { "id": "$lb/backendAddressPools/echo" },
          "protocol": "Tcp",
          "frontendPort": $ECHO_PORT,
          "backendPort": $ECHO_PORT,
          "idleTimeoutInMinutes": 30,
          "enableTcpReset": true,
          "enableFloatingIP": false,
          "loadDistribution": "Default"
        }
      },
      {
        "name": "bulk",
        "id": "$lb/loadBalancingRules/bulk",
        "properties": {
          "frontendIPConfiguration": { "id": "$lb/frontendIPConfigurations/fe" },
          "backendAddressPool": { "id": "$lb/backendAddressPools/bulk" },
          "protocol": "Tcp",
          "frontendPort": $BULK_PORT,
          "backendPort": $BULK_PORT,
          "idleTimeoutInMinutes": 30,
          "enableTcpReset": true,
          "enableFloatingIP": false,
          "loadDistribution": "Default"
        }
      }
    ]
  }
}
EOF
}

SLUICE_STATUS="" # empty when `sluice run` is available, else why the path is skipped

detect_sluice() {
  local main="$REPO/dist/src/cli/main.js" out rc
  if [[ ! -f $main ]]; then
    SLUICE_STATUS="dist/src/cli/main.js is not built (npm run build)"
    return
  fi
  out=$(cd "$REPO" && timeout 20 node dist/src/cli/main.js run --help 2>&1)
  rc=$?
  # An unknown command still exits 0 on --help (the program's own help is
  # shown), so the usage line must also be the run command's.
  if ((rc != 0)); then
    SLUICE_STATUS="\`node dist/src/cli/main.js run --help\` exited $rc"
  elif ! head -1 <<<"$out" | grep -q '^Usage: sluice run'; then
    SLUICE_STATUS="\`node dist/src/cli/main.js run --help\` does not describe a run command (not implemented yet)"
  fi
}

PROXY_PID=""

# Starts PATH's proxy and waits until it serves; returns 1 (with the reason
# logged) if it does not.
start_proxy() {
  local path=$1 fe=${FRONTEND[$1]} i
  PROXY_PID=""
  [[ $path == direct ]] && return 0
  if port_in_use "$fe" "$ECHO_PORT"; then log "$path: $fe:$ECHO_PORT is already in use"; return 1; fi
  case "$path" in
    haproxy1 | haproxy2)
      local threads=${path#haproxy}
      write_haproxy_config "$threads" "$fe"
      haproxy -db -f "$WORK/haproxy-$threads.cfg" >>"$WORK/$path.log" 2>&1 &
      ;;
    nginx)
      write_nginx_config "$fe"
      nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" >>"$WORK/$path.log" 2>&1 &
      ;;
    sluice)
      write_sluice_config "$fe"
      # TCP only, no API: every descriptor but the reserve goes to TCP flows (9,968 at 20,000).
      (cd "$REPO" && exec node dist/src/cli/main.js run "$WORK/sluice.json" --api off --max-udp-flows 0 "${SLUICE_ARGS[@]}") >>"$WORK/$path.log" 2>&1 &
      ;;
  esac
  PROXY_PID=$!
  STARTED+=("$PROXY_PID")
  for ((i = 0; i < 200; i++)); do
    if ! alive "$PROXY_PID"; then
      log "$path: exited during start-up:"; tail -5 "$WORK/$path.log" >&2
      wait "$PROXY_PID" 2>/dev/null; forget "$PROXY_PID"; PROXY_PID=""
      return 1
    fi
    if [[ $path == sluice ]]; then
      grep -q '"msg":"ready"' "$WORK/$path.log" && return 0
    elif timeout 1 bash -c "exec 3<>/dev/tcp/$fe/$ECHO_PORT" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "$path: not ready after 20 s:"; tail -5 "$WORK/$path.log" >&2
  stop_proxy
  return 1
}

stop_proxy() {
  [[ -z $PROXY_PID ]] && return 0
  stop_pid "$PROXY_PID"
  forget "$PROXY_PID"
  PROXY_PID=""
}

# ------------------------------------------------------------ measurements ---

RESULTS="" # path, metric, repetition, value (tab-separated)

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

measure_bulk() {
  local path=$1 rep=$2 streams=$3 fe=${FRONTEND[$1]} out gbps=""
  out="$WORK/iperf3-$path-$rep-$streams.json"
  # The server refuses a test while the previous one is still being torn down
  # behind the proxy, so a busy answer is retried.
  for _ in 1 2 3; do
    timeout $((BULK_SECS + 20)) iperf3 -c "$fe" -p "$BULK_PORT" -t "$BULK_SECS" -P "$streams" \
      --connect-timeout 3000 -J >"$out" 2>&1
    gbps=$(jq -r 'if .error then empty else .end.sum_received.bits_per_second / 1e9 end' "$out" 2>/dev/null)
    [[ -n $gbps ]] && break
    sleep 1
  done
  if [[ -z $gbps ]]; then
    log "  bulk x$streams failed: $(jq -r '.error // empty' "$out" 2>/dev/null || head -c 200 "$out")"
    return
  fi
  record "$path" "bulk$streams" "$rep" "$(printf '%.2f' "$gbps")"
  log "  bulk, $streams stream(s): $(printf '%.2f' "$gbps") Gbit/s"
}

measure_cps() {
  local path=$1 rep=$2 fe=${FRONTEND[$1]} t0=0 t1=0 out conns rate
  [[ -n $PROXY_PID ]] && t0=$(cpu_ticks "$PROXY_PID")
  out=$(timeout $((CPS_SECS + 30)) "$WORK/bin/conn-rate" "$fe" "$ECHO_PORT" "$CPS_CONCURRENCY" "$CPS_SECS" 100000000)
  [[ -n $PROXY_PID ]] && t1=$(cpu_ticks "$PROXY_PID")
  conns=$(sed -n 's/.*connections=\([0-9]*\).*/\1/p' <<<"$out")
  rate=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' <<<"$out")
  if [[ -z $rate || ${conns:-0} -eq 0 ]]; then log "  connections/s failed: $out"; return; fi
  record "$path" cps "$rep" "$rate"
  local msg="  connections/s: $rate ($out)"
  if [[ -n $PROXY_PID ]]; then
    local us
    us=$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$conns" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    record "$path" cpu_us "$rep" "$us"
    msg+=", proxy CPU $us us per connection"
  fi
  log "$msg"
}

measure_latency() {
  local path=$1 rep=$2 fe=${FRONTEND[$1]} out
  local -a pin=()
  if ((PIN)); then
    # Two threads squeezed onto one CPU would measure the squeeze, not HAProxy.
    if [[ $path == haproxy2 ]]; then log "  latency: not measured pinned with 2 threads"; return; fi
    set_affinity 0 "${BACKEND_PIDS[@]}" ${PROXY_PID:+"$PROXY_PID"}
    pin=(taskset -c 0)
  fi
  out=$(timeout 120 "${pin[@]}" "$WORK/bin/ping-pong" "$fe" "$ECHO_PORT" "$PP_ITERS" "$PP_SIZE" 60 2>&1)
  ((PIN)) && set_affinity "0-$((NCPU - 1))" "${BACKEND_PIDS[@]}" ${PROXY_PID:+"$PROXY_PID"}
  local p50 p99 p999
  p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$out")
  p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$out")
  p999=$(sed -n 's/.*p999_us=\([0-9.]*\).*/\1/p' <<<"$out")
  if [[ -z $p50 ]]; then log "  latency failed: $out"; return; fi
  record "$path" p50 "$rep" "$p50"
  record "$path" p99 "$rep" "$p99"
  record "$path" p999 "$rep" "$p999"
  log "  $PP_SIZE B ping-pong: $out"
}

measure_idle() {
  local path=$1 rep=$2 fe=${FRONTEND[$1]} before after pid i state=""
  [[ -z $PROXY_PID ]] && return
  # A fresh proxy: after the connection-rate run a garbage-collected heap has
  # room to spare, and new flows would fit in it without raising RSS at all.
  # One short ping-pong warms the relay path first.
  stop_proxy
  if ! start_proxy "$path"; then
    log "  idle: $path did not restart"
    return
  fi
  timeout 30 "$WORK/bin/ping-pong" "$fe" "$ECHO_PORT" 1000 "$PP_SIZE" 20 >/dev/null 2>&1
  sleep 1
  before=$(rss_kb "$PROXY_PID")
  local out="$WORK/idle-$path-$rep.out"
  "$WORK/bin/idle-hold" "$fe" "$ECHO_PORT" "$IDLE" 300 >"$out" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  for ((i = 0; i < 1200; i++)); do
    state=$(grep -Eo '^(held|failed)=' "$out" 2>/dev/null)
    [[ -n $state ]] && break
    alive "$pid" || break
    sleep 0.1
  done
  if [[ $state == held= ]]; then
    # Let the proxy finish whatever it does lazily after a flow starts.
    sleep 1
    after=$(rss_kb "$PROXY_PID")
    local kb
    kb=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.1f", (a - b) / n }')
    record "$path" idle_kb "$rep" "$kb"
    log "  idle: $IDLE connections, RSS $before -> $after KB, $kb KB per connection"
  else
    log "  idle connections failed: $(cat "$out")"
  fi
  stop_pid "$pid"
  forget "$pid"
}

run_path() {
  local path=$1 rep=$2
  if [[ $path == sluice && -n $SLUICE_STATUS ]]; then
    log "[$rep/$REPS] ${LABEL[$path]}: skipped"
    return
  fi
  log "[$rep/$REPS] ${LABEL[$path]} (${FRONTEND[$path]})"
  if ! start_proxy "$path"; then
    record "$path" failed "$rep" 1
    return
  fi
  measure_bulk "$path" "$rep" 1
  measure_bulk "$path" "$rep" 4
  measure_cps "$path" "$rep"
  measure_latency "$path" "$rep"
  measure_idle "$path" "$rep"
  stop_proxy
}

# ------------------------------------------------------------------ report ---

version_of() {
  case "$1" in
    haproxy) haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }' ;;
    nginx) nginx -v 2>&1 | sed 's|.*nginx/||' ;;
    iperf3) iperf3 --version 2>/dev/null | awk 'NR == 1 { print $2 }' ;;
    node) node --version ;;
  esac
}

# Medians per path and metric, then one Markdown table with ratios to HAProxy
# with 1 thread (the reference for the proxy plane's targets).
render_table() {
  local cols="" heads="" p
  for p in "${PATHS[@]}"; do
    cols+="$p "
    heads+="${LABEL[$p]}|"
  done
  awk -F'\t' -v cols="$cols" -v heads="$heads" -v idle="$IDLE" -v skipped="$SLUICE_STATUS" '
    function median(key,    n, i, j, t, a) {
      n = split(vals[key], a, " ")
      if (n == 0 || vals[key] == "") return ""
      for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function fmt(v, m) {
      if (m == "cps") return sprintf("%.1fk", v / 1000)
      if (m == "bulk1" || m == "bulk4") return sprintf("%.1f", v)
      return sprintf("%.1f", v)
    }
    $3 != "" { key = $1 SUBSEP $2; vals[key] = (key in vals ? vals[key] " " : "") $4 }
    END {
      nc = split(cols, c, " "); split(heads, h, "|")
      nm = split("bulk1 bulk4 cps cpu_us p50 p99 p999 idle_kb", m, " ")
      name["bulk1"] = "bulk, 1 stream (Gbit/s)"; name["bulk4"] = "bulk, 4 streams (Gbit/s)"
      name["cps"] = "connections/s, 16 concurrent"; name["cpu_us"] = "proxy CPU per connection (us)"
      name["p50"] = "64 B ping-pong p50 (us)"; name["p99"] = "64 B ping-pong p99 (us)"
      name["p999"] = "64 B ping-pong p99.9 (us)"; name["idle_kb"] = "memory per idle connection (KB, " idle " connections)"
      line = "| metric |"; sep = "|---|"
      for (i = 1; i <= nc; i++) { line = line " " h[i] " |"; sep = sep "---|" }
      print line; print sep
      for (k = 1; k <= nm; k++) {
        line = "| " name[m[k]] " |"
        ref = median("haproxy1" SUBSEP m[k])
        for (i = 1; i <= nc; i++) {
          v = median(c[i] SUBSEP m[k])
          if (v == "") {
            cell = (c[i] == "sluice" && skipped != "") ? "pending" : "-"
          } else {
            cell = fmt(v, m[k])
            if (ref != "" && ref > 0 && c[i] != "haproxy1") cell = cell sprintf(" (%.2fx)", v / ref)
          }
          line = line " " cell " |"
        }
        print line
      }
    }' "$RESULTS"
}

# -------------------------------------------------------------------- main ---

WORK=$(mktemp -d /tmp/sluice-bench-proxy.XXXXXX)
mkdir -p "$WORK/bin"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

ensure_tools
compile_programs
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < 2 * IDLE + 100)); then
  log "open-files limit $(ulimit -n) is too low for --idle $IDLE"; exit 1
fi

detect_sluice
for p in "${PATHS[@]}"; do
  if [[ $p == sluice && -n $SLUICE_STATUS ]]; then
    echo "sluice: path skipped: $SLUICE_STATUS"
  fi
done

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date '+%Y-%m-%d %H:%M:%S %Z')
SECONDS=0
start_backends

for ((rep = 1; rep <= REPS; rep++)); do
  # Alternate the order so that drift (thermal, other load, TIME_WAIT build-up)
  # does not always favour the same path.
  order=("${PATHS[@]}")
  if ((rep % 2 == 0)); then
    order=()
    for ((i = ${#PATHS[@]} - 1; i >= 0; i--)); do order+=("${PATHS[i]}"); done
  fi
  for p in "${order[@]}"; do run_path "$p" "$rep"; done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

TABLE=$(render_table)
mkdir -p "$(dirname "$OUT")"
{
  echo "# Proxy data plane benchmark, $STARTED_AT"
  echo
  echo "Sluice $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (uncommitted changes)'),"
  echo "HAProxy $(version_of haproxy), nginx $(version_of nginx), iperf3 $(version_of iperf3), Node.js $(version_of node);"
  echo "$(uname -sr), $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')."
  echo
  echo "Mode: $([[ $QUICK == 1 ]] && echo quick || echo full), $REPS repetition(s) in alternating order, medians;"
  echo "bulk ${BULK_SECS} s per run; connections/s ${CPS_SECS} s at $CPS_CONCURRENCY concurrent; ping-pong $PP_ITERS round trips"
  echo "of $PP_SIZE B$([[ $PIN == 1 ]] && echo ', client, backends and proxy pinned to CPU 0'); $IDLE idle connections."
  echo "Load average at start $LOAD_START, at end $LOAD_END: with other work on the machine, figures are noisy."
  echo "Ratios are to HAProxy with 1 thread. Wall time ${SECONDS} s."
  echo
  echo "$TABLE"
  if [[ -n $SLUICE_STATUS ]] && [[ " ${PATHS[*]} " == *" sluice "* ]]; then
    echo
    echo "Sluice: pending ($SLUICE_STATUS)."
  fi
  if grep -q $'\tfailed\t' "$RESULTS"; then
    echo
    echo "Paths that failed to start: $(awk -F'\t' '$2 == "failed" { print $1 " (repetition " $3 ")" }' "$RESULTS" | paste -sd, -)."
  fi
  echo
  echo "Every run (path, metric, repetition, value):"
  echo
  echo '```'
  cat "$RESULTS"
  echo '```'
} >"$OUT"

echo
echo "$TABLE"
echo
echo "report: ${OUT#"$REPO"/}"
