/* Names and fixes of the verification failure reasons. */
#include "tls/tls_int.h"

struct reason_row {
	const char *name;
	const char *hint;
};

static const struct reason_row reason_rows[CMICRO_TLS_REASON_COUNT] = {
    [CMICRO_TLS_REASON_NONE] = {"none", "the peer passed verification"},
    [CMICRO_TLS_REASON_UNKNOWN_AUTHORITY] =
        {"unknown_authority", "add the issuing CA to the trust (MICRO_TLS_CA_FILE or --ca)"},
    [CMICRO_TLS_REASON_SELF_SIGNED] =
        {"self_signed", "trust this certificate itself (MICRO_TLS_CA_FILE or --ca), or "
                        "replace it with one issued by a CA you trust"},
    [CMICRO_TLS_REASON_INCOMPLETE_CHAIN] =
        {"incomplete_chain", "configure the peer to send its intermediate CA certificates "
                             "after its own (a full-chain file)"},
    [CMICRO_TLS_REASON_EXPIRED] = {"expired", "renew the certificate"},
    [CMICRO_TLS_REASON_NOT_YET_VALID] = {"not_yet_valid",
                                         "check the clock (NTP) on both hosts, or wait until the "
                                         "certificate's start date"},
    [CMICRO_TLS_REASON_REVOKED] = {"revoked",
                                   "issue a new certificate; the CA has revoked this one"},
    [CMICRO_TLS_REASON_HOSTNAME_MISMATCH] =
        {"hostname_mismatch", "connect with a name the certificate lists, or reissue it "
                              "with this name in its subject alternative names"},
    [CMICRO_TLS_REASON_BAD_USAGE] =
        {"bad_usage", "reissue the certificate with the extended key usage of its role "
                      "(serverAuth for servers, clientAuth for clients)"},
    [CMICRO_TLS_REASON_WEAK_KEY] =
        {"weak_key", "reissue the certificate with an ECDSA P-256 or RSA >= 2048 key"},
    [CMICRO_TLS_REASON_WEAK_SIGNATURE] = {"weak_signature",
                                          "reissue the certificate with a SHA-256 (or stronger) "
                                          "signature"},
    [CMICRO_TLS_REASON_PROTOCOL_VERSION] = {"protocol_version",
                                            "upgrade the peer to TLS 1.2 or later"},
    [CMICRO_TLS_REASON_NO_CERTIFICATE] =
        {"no_certificate", "give the peer a certificate and key (MICRO_TLS_CERT_FILE and "
                           "MICRO_TLS_KEY_FILE)"},
    [CMICRO_TLS_REASON_PLAINTEXT] =
        {"plaintext", "the peer speaks plain HTTP: use https on both sides, or http on "
                      "both"},
    [CMICRO_TLS_REASON_OTHER] =
        {"other", "see the OpenSSL message; run `cmicro tls check HOST:PORT` for details"},
};

CMICRO_API const char *cmicro_tls_reason_name(enum cmicro_tls_reason reason)
{
	if ((int)reason < 0 || reason >= CMICRO_TLS_REASON_COUNT)
		return "unknown";
	return reason_rows[reason].name;
}

CMICRO_API const char *cmicro_tls_reason_hint(enum cmicro_tls_reason reason)
{
	if ((int)reason < 0 || reason >= CMICRO_TLS_REASON_COUNT)
		return "not a cmicro_tls_reason value";
	return reason_rows[reason].hint;
}
