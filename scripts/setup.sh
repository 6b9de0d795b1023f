#!/usr/bin/env bash
# Installs what spa needs beyond Node 20/npm/python3/g++/git, idempotently:
#   - the Debian packages in `pkgs` below that are missing, when we are root (apt-get update, then
#     apt-get install --no-install-recommends), with no service started or left enabled: see
#     install_without_services;
#   - npm packages with `npm ci` when node_modules is missing or older than package-lock.json;
#   - the system user `spa` for spad's unprivileged processes, when missing and we are root;
#   - the TypeScript build (dist/), then the one-file `spa` bundle and its code cache
#     (scripts/bundle-client.ts).
# README.md "What setup installs and changes" lists the effects on the host.
# Usage: scripts/setup.sh [--no-build]
#        (sourced, it only defines the functions: test/unit/setup-leaves-no-service.test.ts)
set -euo pipefail

# What the tests and the benchmarks need. openssh-server is here only for /usr/sbin/sshd, which the
# ProxyCommand e2e test starts itself with its own config; redis-server only for
# /usr/bin/redis-server, which the cluster tests start themselves on loopback or in their
# namespaces; fwknop-client for the fwknop migration tests and fwknop-server for bench-fwknop,
# which starts fwknopd itself in a namespace. Their services stay disabled and stopped (see below).
pkgs=(libpcap-dev nftables iptables iproute2 gnupg openssh-server openssh-client procps iputils-ping tmux systemd man-db groff-base zsh redis-server fwknop-client fwknop-server)

# A fake root for the tests of this script; empty means the real /.
root="${SPA_SETUP_ROOT:-}"
POLICY="$root/usr/sbin/policy-rc.d"
SAVED="$POLICY.spa-setup-saved"
MARK="# written by spa scripts/setup.sh for the length of its apt-get install"

# The links that make a service start at boot or login, one per line, sorted: systemd's
# (enable: wants/requires links and aliases, system and user), runit's, and SysV S links.
enable_links() {
  {
    find "$root/etc/systemd/system" "$root/etc/systemd/user" "$root/etc/service" -type l 2>/dev/null || true
    find "$root"/etc/rc[0-6S].d -name 'S*' -type l 2>/dev/null || true
  } | LC_ALL=C sort
}

# Puts the admin's policy-rc.d back (or removes ours); also repairs after a run killed by SIGKILL.
restore_policy() {
  if [[ -e "$SAVED" || -L "$SAVED" ]]; then
    mv -f "$SAVED" "$POLICY"
  elif grep -qsF "$MARK" "$POLICY"; then
    rm -f "$POLICY"
  fi
}

# A policy-rc.d that refuses every action (101): invoke-rc.d and deb-systemd-invoke then start
# nothing, as Debian's policy-rc.d interface intends; an existing one is kept aside.
block_services() {
  restore_policy
  if [[ -e "$POLICY" || -L "$POLICY" ]]; then
    mv "$POLICY" "$SAVED"
  fi
  mkdir -p "$(dirname "$POLICY")"
  printf '#!/bin/sh\n%s\nexit 101\n' "$MARK" >"$POLICY.tmp"
  chmod 0755 "$POLICY.tmp"
  mv -f "$POLICY.tmp" "$POLICY"
}

# Disables what appeared since the snapshot $1: systemd and runit links are removed (what
# `systemctl disable` does; deb-systemd-helper's state stays, so upgrades keep them disabled),
# SysV S links become K links (what `update-rc.d NAME disable` does). Older links stay.
disable_new_links() {
  local link
  while IFS= read -r link; do
    case "$link" in
      "$root"/etc/rc?.d/S*) mv -f "$link" "$(dirname "$link")/K${link##*/S}" ;;
      *) rm -f "$link" ;;
    esac
    echo "setup: disabled what the install enabled: ${link#"$root"}"
  done < <(LC_ALL=C comm -13 "$1" <(enable_links))
}

# apt-get install "$@" with no service started, then disables the services it enabled. Runs the
# same undo when apt-get fails or we get SIGINT/SIGTERM/SIGHUP.
install_without_services() {
  local before rc=0
  before="$(mktemp)"
  enable_links >"$before"
  # shellcheck disable=SC2064
  trap "undo_install '$before'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  block_services
  {
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  } || rc=$?
  trap - EXIT INT TERM HUP
  undo_install "$before"
  return "$rc"
}

undo_install() {
  disable_new_links "$1"
  restore_policy
  rm -f "$1"
}

main() {
  cd "$(dirname "$0")/.."
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      echo "setup: installing Debian packages (no service started or enabled): ${missing[*]}"
      install_without_services "${missing[@]}"
    else
      echo "setup: warning: missing Debian packages (${missing[*]}); run as root to install them" >&2
    fi
  fi

  # The unprivileged account of spad's verifier and capture processes (SECURITY.md "Privilege
  # separation"); spad falls back to nobody without it.
  if [[ -z "$root" && $(id -u) -eq 0 ]] && ! getent passwd spa >/dev/null && command -v useradd >/dev/null; then
    echo "setup: creating system user spa"
    useradd --system --no-create-home --shell /usr/sbin/nologin spa
  fi

  # npm ci when node_modules does not match the lock file (hash of lock file + node version).
  local want have
  want="$(sha256sum package-lock.json | cut -c1-64) $(node --version)"
  have="$(cat node_modules/.spa-install-stamp 2>/dev/null || true)"
  if [[ ! -d node_modules || "$want" != "$have" ]]; then
    echo "setup: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >node_modules/.spa-install-stamp
  fi

  if [[ "${1:-}" != "--no-build" ]]; then
    rm -rf dist
    npx tsc -p tsconfig.json
    node dist/scripts/bundle-client.js
  fi
}

# run unless sourced (`return` only works in a sourced file)
if ! (return 0 2>/dev/null); then
  main "$@"
fi
