/* Targets: cmi_pem_read_certs and cmi_pem_read_key, the readers of every
 * certificate bundle and key file (CA files, own identity, cert commands).
 * The first byte picks whether a passphrase is offered, so both the
 * encrypted-key paths and the plain ones are reached. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "tls/tls_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	char *errors = NULL;
	const char *passphrase = NULL;

	if (size > 0) {
		passphrase = (data[0] & 1) ? "fuzz" : NULL;
		data++;
		size--;
	}
	if (cmi_pem_read_certs((const char *)data, size, "fuzz.pem", &certs, &errors) == 0) {
		if (sk_X509_num(certs) < 1)
			abort();
	} else if (certs != NULL) {
		abort();
	}
	sk_X509_pop_free(certs, X509_free);
	free(errors);

	if (cmi_pem_read_key((const char *)data, size, "fuzz.key", passphrase, &key) == 0) {
		if (key == NULL)
			abort();
	} else if (key != NULL) {
		abort();
	}
	EVP_PKEY_free(key);
	if (ERR_peek_error() != 0)
		abort();
	return 0;
}
