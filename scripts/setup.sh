#!/usr/bin/env bash
# Installs what spa needs beyond Node 20/npm/python3/g++/git, idempotently:
#   - Debian packages (libpcap for the `cap` addon, nftables, iptables, iproute2, gnupg, openssh)
#     when they are missing and we are root;
#   - npm packages with `npm ci` when node_modules is missing or older than package-lock.json;
#   - the TypeScript build (dist/).
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(libpcap-dev nftables iptables iproute2 gnupg openssh-server openssh-client procps iputils-ping tmux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: warning: missing Debian packages (${missing[*]}); run as root to install them" >&2
  fi
fi

# npm ci when node_modules does not match the lock file (hash of lock file + node version).
want="$(sha256sum package-lock.json | cut -c1-64) $(node --version)"
have="$(cat node_modules/.spa-install-stamp 2>/dev/null || true)"
if [[ ! -d node_modules || "$want" != "$have" ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > node_modules/.spa-install-stamp
fi

if [[ "${1:-}" != "--no-build" ]]; then
  rm -rf dist
  npx tsc -p tsconfig.json
fi
