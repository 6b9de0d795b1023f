#!/usr/bin/env bash
# `npm test`: install what is missing (scripts/setup.sh), build, `npm run check`, then run every
# test layer in one node:test run so there is one summary line. Layers: test/unit, test/vectors, test/security,
# test/interop (real gpg), test/e2e (network namespaces, real nftables/iptables/pcap: root only,
# each e2e test says it is skipped otherwise).
# Usage: npm test [-- FILTER]   (FILTER: a substring of the test file paths to run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# style and drift first: typecheck, scripts/check-docs.ts, ESLint (zero warnings), Prettier
npm run --silent check
filter="${1:-}"
mapfile -t files < <(find dist/test -name '*.test.js' | sort | grep -F -- "$filter" || true)
if ((${#files[@]} == 0)); then
  echo "test: no test files match '${filter}'" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "test: not root: e2e tests in network namespaces will be skipped"
fi
exec node --test --test-reporter=spec --test-timeout=300000 "${files[@]}"
