#!/usr/bin/env bash
# `npm run bench`: the benchmarks of DESIGN.md §7, one after the other, each bounded in time.
#   1. bench-knock   knock-to-open latency and valid knocks/s of spad (pcap and UDP socket)
#   2. bench-flood   a valid knock under random-UDP and key-id+garbage floods (<= 10 s, <= 2M packets)
#   3. bench-keys    1 vs 10,000 enrolled keys: per-knock cost, spad start-up, CPU per knock
#   4. bench-fwknop  spa and fwknop 2.6.10 side by side (one table)
# Needs root (network namespaces). Output: stdout, and a copy in /tmp/spa-bench-results.txt (or $BENCH_OUT).
# Usage: npm run bench [-- quick]   ("quick": fewer knocks and keys, for a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run build --silent
if [[ $(id -u) -ne 0 ]]; then
  echo "bench: needs root (network namespaces, nftables, fwknopd)" >&2
  exit 1
fi
out="${BENCH_OUT:-/tmp/spa-bench-results.txt}"
quick="${1:-}"
if [[ "$quick" == quick ]]; then
  knock=(--knocks 10 --burst 50); flood=(--seconds 4 --knocks 5); keys=(--keys 500 --knocks 50)
  fwk=(--knocks 5 --burst 20 --runs 5)
else
  knock=(--knocks 40 --burst 300); flood=(--seconds 10 --knocks 10); keys=(--keys 10000 --knocks 200)
  fwk=(--knocks 20 --burst 100 --runs 20)
fi
{
  echo "# spa benchmarks, $(date -u +%FT%TZ)"
  echo "# machine: $(nproc) CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), node $(node --version), $(. /etc/os-release && echo "$PRETTY_NAME")"
} | tee "$out"
run() {
  local limit=$1; shift
  echo "## node $*" | tee -a "$out"
  timeout --kill-after=10 "$limit" node "$@" 2>&1 | tee -a "$out" || echo "bench: $1 failed or timed out (${limit})" | tee -a "$out"
}
run 300 dist/scripts/bench-knock.js "${knock[@]}"
run 300 dist/scripts/bench-flood.js "${flood[@]}"
run 900 dist/scripts/bench-keys.js "${keys[@]}"
run 600 dist/scripts/bench-fwknop.js "${fwk[@]}"
echo "bench: results in $out"
