#!/usr/bin/env bash
# `npm run bench`: the benchmarks behind docs/benchmarks.md, one after the other, each bounded in time.
#   1. bench-knock   knock-to-open latency and valid knocks/s of spad (pcap and UDP socket)
#   2. bench-flood   a valid knock under random-UDP and key-id+garbage floods (<= 10 s, <= 2M packets)
#   3. bench-keys    1 vs 10,000 enrolled keys: per-knock cost, spad start-up, CPU per knock
#   4. bench-fwknop  spa and fwknop 2.6.10 side by side (one table)
#   5. bench-refused CPU per refused datagram by kind (bombs included) beside a valid knock's, in process
#   6. bench-cluster knock-to-open alone and with --cluster on a local Redis, and the extra per knock
#   7. bench-plot    SVG pictures of 1, 2 and 4 from the raw figures they saved in data/
# Needs root (network namespaces). Output: stdout, and in a fresh private directory (mktemp -d,
# mode 0700) named at the end: a copy in results.txt, the raw figures in data/*.json and the
# pictures (*.svg). scripts/setup.sh installs what the comparisons need (fwknop-server and
# fwknop-client from Debian, redis-server, with no service started).
# SIGINT, SIGTERM, SIGHUP: the running benchmark gets SIGTERM and removes its namespaces and
# processes (scripts/cleanup.ts); then the script names the partial results and dies of that signal.
# Usage: npm run bench [-- quick]   ("quick": fewer knocks and keys, for a smoke run)
#        SPA_SKIP_SETUP=1 skips scripts/setup.sh (an already built tree, as the tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${SPA_SKIP_SETUP:-}" ]]; then
  bash scripts/setup.sh
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bench: needs root (network namespaces, nftables, fwknopd)" >&2
  exit 1
fi
dir="$(mktemp -d "${TMPDIR:-/tmp}/spa-bench.XXXXXXXX")"
out="$dir/results.txt"
# the benchmarks save their raw figures here (scripts/bench-lib.ts saveFigures)
export SPA_BENCH_DATA="$dir/data"
# everything to the terminal and to the file; tee ignores the Ctrl-C meant for the benchmark so
# that the cleanup's last lines still reach both
exec > >(trap '' INT TERM HUP; exec tee "$out") 2>&1

child=""
on_signal() {
  local sig=$1
  trap '' INT TERM HUP
  if [[ -n "$child" ]]; then
    # TERM whatever the signal: a background job starts with SIGINT ignored
    kill -s TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  echo "bench: interrupted by SIG$sig; partial results in $out"
  trap - "$sig"
  kill -s "$sig" $$
}
for s in INT TERM HUP; do
  # shellcheck disable=SC2064
  trap "on_signal $s" "$s"
done

quick="${1:-}"
if [[ "$quick" == quick ]]; then
  knock=(--knocks 10 --burst 50); flood=(--seconds 4 --knocks 5); keys=(--keys 500 --knocks 50)
  fwk=(--knocks 5 --burst 20 --runs 5); refused=(--runs 50); cluster=(--knocks 10 --rounds 1)
else
  knock=(--knocks 40 --burst 300); flood=(--seconds 10 --knocks 10); keys=(--keys 10000 --knocks 200)
  fwk=(--knocks 20 --burst 100 --runs 20); refused=(--runs 300); cluster=(--knocks 40 --rounds 3)
fi
echo "# spa benchmarks, $(date -u +%FT%TZ)"
echo "# machine: $(nproc) CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r), node $(node --version), $(. /etc/os-release && echo "$PRETTY_NAME")"
run() {
  local limit=$1; shift
  echo "## node $*"
  # in the background so that a signal reaches the trap at once (bash defers traps while a
  # foreground child runs); --foreground keeps node in our process group so Ctrl-C reaches it,
  # and node's own cleanup ends what it started (timeout's TERM at the limit goes the same way)
  timeout --foreground --kill-after=30 "$limit" node "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  ((rc == 0)) || echo "bench: $1 failed or timed out (${limit} s, status $rc)"
}
run 300 dist/scripts/bench-knock.js "${knock[@]}"
run 300 dist/scripts/bench-flood.js "${flood[@]}"
run 900 dist/scripts/bench-keys.js "${keys[@]}"
run 600 dist/scripts/bench-fwknop.js "${fwk[@]}"
run 180 dist/scripts/bench-refused.js "${refused[@]}"
run 300 dist/scripts/bench-cluster.js "${cluster[@]}"
run 120 dist/scripts/bench-plot.js "$dir"
echo "bench: results in $out, pictures:"
find "$dir" -maxdepth 1 -name '*.svg' | sort | sed 's/^/  /'
