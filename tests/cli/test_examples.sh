#!/usr/bin/env bash
# Runs the TLS examples, built against the shared library and the public
# headers only, and checks what they print. They cover the environment
# option under several MICRO_TLS_SECURE values, the secure preset, a custom
# CA made here by `cmicro cert ca` (or the openssl CLI when that fails), and
# the guide's "verify secure mode is active" program.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

: "${CMICRO_BUILD_DIR:?set CMICRO_BUILD_DIR to the build directory}"
examples=${CMICRO_EXAMPLES_DIR:-$CMICRO_BUILD_DIR/examples}
work=$(mktemp -d /tmp/cmicro-examples-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

unset MICRO_TLS_SECURE MICRO_TLS_INSECURE MICRO_TLS_CA_FILE MICRO_TLS_CERT_FILE \
	MICRO_TLS_KEY_FILE MICRO_TLS_CLIENT_AUTH SSLKEYLOGFILE

# Option 1: the environment decides.
expect_exit 0 env MICRO_TLS_SECURE=true "$examples/env_secure"
expect_line out.txt "verification: on (MICRO_TLS_SECURE=true)"
expect_line out.txt "InsecureSkipVerify: false"

expect_exit 0 env MICRO_TLS_SECURE=false "$examples/env_secure"
expect_line out.txt "InsecureSkipVerify: true"
expect_in err.txt "[TLS-VERIFY-OFF]"
expect_in err.txt "set MICRO_TLS_SECURE=true"

expect_exit 0 env MICRO_TLS_SECURE=audit "$examples/env_secure"
expect_line out.txt "verification: audit (MICRO_TLS_SECURE=audit)"
expect_in err.txt "[TLS-AUDIT-MODE]"

expect_exit 0 env MICRO_TLS_SECURE=sometimes "$examples/env_secure"
expect_line out.txt "InsecureSkipVerify: false"
expect_in err.txt "MICRO_TLS_SECURE=\"sometimes\" is not recognised"

expect_exit 1 env MICRO_TLS_CLIENT_AUTH=optional "$examples/env_secure"
expect_in err.txt "MICRO_TLS_CLIENT_AUTH=\"optional\" is not recognised"

# Option 2: the secure preset.
expect_exit 0 "$examples/secure_preset"
expect_line out.txt "InsecureSkipVerify: false"
expect_line out.txt "MinVersion: TLS 1.2"
expect_line out.txt "system roots: yes"

# Option 3: a custom CA, made by cmicro itself when the CLI can do it.
if [ -n "${CMICRO_BIN:-}" ] && "$CMICRO_BIN" cert ca --out-cert ca.pem --out-key ca.key \
	--cn "examples CA" >/dev/null 2>&1; then
	echo "CA made by cmicro cert ca"
else
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
		-out ca.pem -subj "/CN=examples CA" -days 30 2>/dev/null || fail "openssl req failed"
	echo "CA made by the openssl CLI"
fi
expect_exit 0 "$examples/custom_ca" "$work/ca.pem"
expect_line out.txt "InsecureSkipVerify: false"
expect_line out.txt "MinVersion: TLS 1.2"
expect_line out.txt "trusted CA file: $work/ca.pem"

expect_exit 1 "$examples/custom_ca" "$work/missing.pem"
expect_in err.txt "missing.pem: file not found"
expect_exit 1 "$examples/custom_ca" "$work/ca.key"
expect_in err.txt "contains a private key, not a certificate"
expect_exit 2 "$examples/custom_ca"
expect_in err.txt "usage: custom_ca CA_FILE"

# The guide's check program sets MICRO_TLS_SECURE=true itself, overriding
# the caller's environment.
expect_exit 0 env MICRO_TLS_SECURE=false "$examples/verify_secure"
expect_line out.txt "InsecureSkipVerify: false (should be false)"

if [ "$failures" -ne 0 ]; then
	echo "$failures of $checks checks failed" >&2
	exit 1
fi
echo "ok: $checks checks passed"
