#!/usr/bin/env bash
# `npm run demo`: install what is missing, build, then tell the whole story (scripts/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec node dist/scripts/demo.js
