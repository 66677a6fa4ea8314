/* Targets: cmicro_cert_load_pem (the PEM scanner and certificate/key
 * decoding behind every certificate file cmicro reads) and
 * cmicro_cert_inspect on each certificate that loads. The input is split at
 * the first NUL byte: certificate PEM before it, key PEM after it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmicro/cert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inspect_all(const struct cmicro_cert *cert)
{
	size_t n = cmicro_cert_chain_len(cert);

	for (size_t i = 0; i < n; i++) {
		struct cmicro_cert_info *info = NULL;

		if (cmicro_cert_inspect(cert, i, &info) != 0)
			continue;
		/* Every string inspect returns is printable ASCII. */
		for (const char *p = info->subject; *p != '\0'; p++) {
			if (*p < 0x20 || *p > 0x7e)
				abort();
		}
		cmicro_cert_info_free(info);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nul = memchr(data, '\0', size);
	size_t cert_len = nul != NULL ? (size_t)(nul - text) : size;
	const char *key = nul != NULL ? nul + 1 : NULL;
	size_t key_len = nul != NULL ? size - cert_len - 1 : 0;
	struct cmicro_cert *cert = NULL;

	if (cmicro_cert_load_pem(text, cert_len, key, key_len, "fuzz", &cert) == 0) {
		if (cmicro_cert_chain_len(cert) == 0)
			abort();
		inspect_all(cert);
		cmicro_cert_free(cert);
	}
	return 0;
}
