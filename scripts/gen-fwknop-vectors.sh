#!/usr/bin/env bash
# Makes test/vectors/fwknop/*.json with the REAL Debian fwknop client (fwknop-client 2.6.10) and
# GnuPG: throw-away key pairs (RSA-2048 and Ed25519/Curve25519; no passphrases, example.test
# identities, nobody's real keys), then one packet per scenario saved with `fwknop --test -B`
# (built, never sent). The keys go into the files next to the packets (server secret key, the
# enrolled public keys, the HMAC key), so the vectors are self-contained; see
# test/vectors/fwknop/README.md for the format. Re-running makes new keys and new packets.
# Usage: scripts/gen-fwknop-vectors.sh   (needs /usr/bin/fwknop and gpg; writes nothing else)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=test/vectors/fwknop
W="$(mktemp -d)"
trap 'gpgconf --homedir "$W/srv-rsa" --kill all 2>/dev/null || true
      for h in "$W"/*/; do gpgconf --homedir "$h" --kill all 2>/dev/null || true; done; rm -rf "$W"' EXIT
export HOME="$W/home"
mkdir -p "$HOME"

gen() { # homedir uid algo
  mkdir -p "$W/$1"
  chmod 700 "$W/$1"
  gpg --homedir "$W/$1" --batch --pinentry-mode loopback --passphrase '' --quick-gen-key "$2" "$3" default never 2>/dev/null
  local fpr
  fpr="$(gpg --homedir "$W/$1" --list-keys --with-colons | awk -F: '/^fpr/{print $10; exit}')"
  if [[ "$3" == rsa2048 ]]; then
    gpg --homedir "$W/$1" --batch --pinentry-mode loopback --passphrase '' --quick-add-key "$fpr" rsa2048 encr never 2>/dev/null
  fi
  echo "$fpr"
}

SRV_RSA="$(gen srv-rsa 'spa test server rsa <server-rsa@example.test>' rsa2048)"
SRV_ECC="$(gen srv-ecc 'spa test server ecc <server-ecc@example.test>' future-default)"
CLI_RSA="$(gen cli-rsa 'fwknop user rsa <alice@example.test>' rsa2048)"
CLI_ECC="$(gen cli-ecc 'fwknop user ecc <bob@example.test>' future-default)"
STRANGER="$(gen stranger 'not enrolled <mallory@example.test>' future-default)"
HMAC_B64="$(fwknop --no-rc-file --key-gen | awk '/HMAC_KEY_BASE64/{print $2}')"

# every client keyring holds both server public keys
for c in cli-rsa cli-ecc stranger; do
  gpg --homedir "$W/srv-rsa" --export "$SRV_RSA" 2>/dev/null | gpg --homedir "$W/$c" --import 2>/dev/null
  gpg --homedir "$W/srv-ecc" --export "$SRV_ECC" 2>/dev/null | gpg --homedir "$W/$c" --import 2>/dev/null
done

# packet NAME CLIENT_HOME SERVER_FPR SIGNER_FPR|- fwknop-args...
packet() {
  local name="$1" home="$2" srv="$3" signer="$4"
  shift 4
  local sign=()
  [[ "$signer" != - ]] && sign=(--gpg-signer-key "$signer" --gpg-no-signing-pw)
  date +%s >"$W/$name.now"
  fwknop --no-rc-file --no-save-args -D 198.51.100.1 --gpg-recipient-key "$srv" "${sign[@]}" \
    --gpg-home-dir "$W/$home" --test -v -B "$W/$name.pkt" "$@" >"$W/$name.log" 2>&1 || true
  [[ -s "$W/$name.pkt" ]] || { cat "$W/$name.log" >&2; echo "gen-fwknop-vectors: $name: no packet" >&2; exit 1; }
}

H=(--use-hmac --key-base64-hmac "$HMAC_B64")
packet ok-access-rsa cli-rsa "$SRV_RSA" "$CLI_RSA" -A tcp/22 -a 198.51.100.2
packet ok-access-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22,udp/53 -a 198.51.100.2
packet ok-timeout-sha512-hmac-rsa cli-rsa "$SRV_RSA" "$CLI_RSA" -A tcp/22 -a 198.51.100.2 -f 45 -m sha512 "${H[@]}"
packet ok-hmac-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22 -a 198.51.100.2 "${H[@]}"
packet ok-command-rsa cli-rsa "$SRV_RSA" "$CLI_RSA" -C 'uptime' -a 198.51.100.2
packet ok-source-any-user-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22 -s -U alice
packet ok-sha3-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22 -a 198.51.100.2 -m sha3_256
packet nat-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22 -a 198.51.100.2 -N 192.0.2.10,2222
packet nat-local-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/40022 -a 198.51.100.2 --nat-local --nat-port 22
packet unsigned-ecc cli-ecc "$SRV_ECC" - -A tcp/22 -a 198.51.100.2
packet signer-unknown-ecc stranger "$SRV_ECC" "$STRANGER" -A tcp/22 -a 198.51.100.2
packet stale-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22 -a 198.51.100.2 --time-offset-minus 5min
packet hmac-broken-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22 -a 198.51.100.2 "${H[@]}"
packet hmac-missing-ecc cli-ecc "$SRV_ECC" "$CLI_ECC" -A tcp/22 -a 198.51.100.2
packet not-for-us-ecc cli-ecc "$SRV_RSA" "$CLI_ECC" -A tcp/22 -a 198.51.100.2

armor() { gpg --homedir "$W/$1" --armor "$2" "$3" 2>/dev/null; }
export W SRV_RSA SRV_ECC CLI_RSA CLI_ECC STRANGER HMAC_B64 OUT
armor srv-rsa --export-secret-keys "$SRV_RSA" >"$W/srv-rsa.sec"
armor srv-ecc --export-secret-keys "$SRV_ECC" >"$W/srv-ecc.sec"
armor cli-rsa --export "$CLI_RSA" >"$W/cli-rsa.pub"
armor cli-ecc --export "$CLI_ECC" >"$W/cli-ecc.pub"
armor stranger --export "$STRANGER" >"$W/stranger.pub"
python3 scripts/gen-fwknop-vectors.py
echo "gen-fwknop-vectors: wrote $(ls "$OUT"/*.json | wc -l) files to $OUT"
