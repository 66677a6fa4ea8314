/* Private to the verification modules (verify.c, verify_chain.c,
 * verify_text.c): message builders and time helpers. */
#ifndef CMICRO_TLS_VERIFY_INT_H
#define CMICRO_TLS_VERIFY_INT_H

#include <openssl/asn1.h>

#include "tls/tls_config_int.h"

/* Writes an ASN1 time as RFC 3339 UTC ("2026-11-01T12:00:00Z"). */
void cmi_tls_time_text(const ASN1_TIME *t, char *buf, size_t size);

/* Writes a span of seconds as "33 days", "2 hours", "5 minutes". */
void cmi_tls_span_text(long long seconds, char *buf, size_t size);

/* Returns the seconds from now until t; negative when t has passed. */
long long cmi_tls_seconds_from_now(const ASN1_TIME *t);

/* Fills v->reason and v->message for one certificate of the chain, where
 * depth 0 is the peer's own certificate and chain_len the chain's length. */
void cmi_tls_text_expired(struct cmicro_tls_verdict *v, X509 *x, int depth, int chain_len);
void cmi_tls_text_not_yet_valid(struct cmicro_tls_verdict *v, X509 *x, int depth, int chain_len);
void cmi_tls_text_weak_key(struct cmicro_tls_verdict *v, X509 *x, int depth);
void cmi_tls_text_weak_signature(struct cmicro_tls_verdict *v, X509 *x, int depth);
void cmi_tls_text_revoked(struct cmicro_tls_verdict *v, X509 *x, int depth);
void cmi_tls_text_bad_usage(struct cmicro_tls_verdict *v, X509 *x, int depth,
                            enum cmicro_tls_role verifier);
void cmi_tls_text_other(struct cmicro_tls_verdict *v, X509 *x, int depth, long code);

#endif
