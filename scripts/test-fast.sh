#!/usr/bin/env bash
# `npm run test:fast`: the quick loop while editing. An incremental build (no clean, no setup),
# then the protocol, vector, security and unit tests, several files at once, without the tests
# marked slow (test/helpers/slow.ts). `npm test` runs everything, slow and e2e tests included.
# Usage: npm run test:fast [-- FILTER]   (FILTER: a substring of the test file paths to run)
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json --incremental --tsBuildInfoFile dist/.tsbuildinfo
filter="${1:-}"
mapfile -t files < <(find dist/test/unit dist/test/vectors dist/test/security -name '*.test.js' | sort | grep -F -- "$filter" || true)
if ((${#files[@]} == 0)); then
  echo "test:fast: no test files match '${filter}'" >&2
  exit 1
fi
SPA_TEST_FAST=1 exec node --test --test-concurrency=4 --test-timeout=120000 "${files[@]}"
