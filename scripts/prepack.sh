#!/usr/bin/env bash
# `npm pack` runs this (package.json "prepack"): a clean build of what the package ships, from
# source. package.json "files" lists it: the compiled protocol/, cli/, keyring/, server/ and client/ (no
# tests, no scripts), with the one-file `spa` bundle and its code cache in client/
# (scripts/bundle-client.ts), the man pages built from docs/man/*.md, and the shell completions
# built from the commander definitions of spa, spad and spa-keys.
set -euo pipefail
cd "$(dirname "$0")/.."
# progress to stderr: `npm pack --json` prints its result on stdout
exec 1>&2
rm -rf dist/protocol dist/cli dist/keyring dist/server dist/client man completion
npx tsc -p tsconfig.build.json
node dist/scripts/bundle-client.js
node dist/scripts/gen-man.js man
node dist/scripts/gen-completion.js completion
