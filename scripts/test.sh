#!/usr/bin/env bash
# Everything a fresh machine needs to run Sluice's whole test suite, then the suite itself:
# system tools (as root, only those missing), npm packages, type-check, lint, import cycles, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v nft >/dev/null 2>&1 || need+=(nftables)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  # The packet plane's system tests: endpoints in namespaces, checksums verified with offloads off.
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
  # Calls to the API inside a namespace.
  command -v curl >/dev/null 2>&1 || need+=(curl)
  # Real servers for the client tests (test/*/clients-*.test.ts): PostgreSQL and Redis.
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  # The shared desired state (--state etcd://): the tests start their own etcd on loopback.
  command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
  # The pool's system tests and sluice lab: FRR as the router, BIRD 2 for each instance.
  [ -x /usr/lib/frr/bgpd ] || need+=(frr)
  command -v bird >/dev/null 2>&1 || need+=(bird2)
  # The live page's tests drive Debian's Chromium headless (playwright-core downloads no browser).
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing system tools: ${need[*]}"
    apt-get update -qq
    # The servers are started by the tests that need them, on their own ports, and stopped by
    # them: keep the packages from starting their system services at install.
    guard=''
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      guard=/usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" </dev/null || {
      [ -z "$guard" ] || rm -f "$guard"
      exit 1
    }
    [ -z "$guard" ] || rm -f "$guard"
  fi
fi

npm ci --no-audit --no-fund
npm run check
npm test
