/*
 * PEM loading of certificate bundles and private keys.
 *
 * OpenSSL's bundle readers stop at the first damaged block and do not report
 * its line. This file only finds the BEGIN/END lines of each block;
 * OpenSSL still decodes every block (base64 and DER), one at a time, so a
 * damaged block is reported with its line number and the others still load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "tls/tls_int.h"

/* Far above any real bundle (Debian's ca-certificates.crt is about 220 KiB), low
 * enough that a wrong path (a disk image, a log) fails fast. */
#define PEM_MAX_BYTES (16u * 1024 * 1024)

/* Damaged blocks listed in one report; the rest are counted. */
#define PEM_MAX_REPORTED 16

struct pem_block {
	const char *start; /* the BEGIN line */
	size_t len;        /* through the end of the END line */
	char type[64];     /* "CERTIFICATE", "PRIVATE KEY", ... */
	int line;          /* 1-based line of BEGIN */
	bool complete;     /* a matching END line was found */
};

struct pem_scan {
	const char *data;
	size_t len;
	size_t pos;
	int line;
};

/* Returns the line starting at s->pos (without its CR/LF and trailing blanks)
 * and advances past it. */
static bool pem_next_line(struct pem_scan *s, const char **text, size_t *text_len)
{
	const char *begin = s->data + s->pos;
	const char *nl;
	size_t n;

	if (s->pos >= s->len)
		return false;
	nl = memchr(begin, '\n', s->len - s->pos);
	n = nl ? (size_t)(nl - begin) : s->len - s->pos;
	s->pos += nl ? n + 1 : n;
	s->line++;
	while (n > 0 && (begin[n - 1] == '\r' || begin[n - 1] == ' ' || begin[n - 1] == '\t'))
		n--;
	*text = begin;
	*text_len = n;
	return true;
}

/* Copies the type of a "-----BEGIN TYPE-----" or "-----END TYPE-----" line
 * into type; returns false for any other line. */
static bool pem_marker(const char *text, size_t n, const char *word, char *type, size_t size)
{
	size_t wlen = strlen(word);
	size_t tlen;

	if (n < 5 + wlen + 5 || memcmp(text, "-----", 5) != 0 ||
	    memcmp(text + 5, word, wlen) != 0 || memcmp(text + n - 5, "-----", 5) != 0)
		return false;
	tlen = n - 10 - wlen;
	if (tlen >= size)
		return false;
	memcpy(type, text + 5 + wlen, tlen);
	type[tlen] = '\0';
	return true;
}

/* Finds the next block. A BEGIN line met before the END of the current block
 * ends it as incomplete, and the scan resumes at that BEGIN line. */
static bool pem_next_block(struct pem_scan *s, struct pem_block *blk)
{
	const char *text;
	size_t n;
	char type[64];

	memset(blk, 0, sizeof(*blk));
	while (pem_next_line(s, &text, &n)) {
		if (pem_marker(text, n, "BEGIN ", blk->type, sizeof(blk->type))) {
			blk->start = text;
			blk->line = s->line;
			break;
		}
	}
	if (blk->start == NULL)
		return false;

	for (;;) {
		size_t before = s->pos;
		int line_before = s->line;

		if (!pem_next_line(s, &text, &n))
			break;
		if (pem_marker(text, n, "BEGIN ", type, sizeof(type))) {
			s->pos = before;
			s->line = line_before;
			break;
		}
		if (pem_marker(text, n, "END ", type, sizeof(type)) &&
		    strcmp(type, blk->type) == 0) {
			blk->complete = true;
			break;
		}
	}
	blk->len = (size_t)(s->data + s->pos - blk->start);
	return true;
}

static bool pem_is_key_type(const char *type)
{
	size_t n = strlen(type);

	return n >= 11 && strcmp(type + n - 11, "PRIVATE KEY") == 0;
}

static bool pem_is_cert_type(const char *type)
{
	return strcmp(type, "CERTIFICATE") == 0 || strcmp(type, "TRUSTED CERTIFICATE") == 0 ||
	       strcmp(type, "X509 CERTIFICATE") == 0;
}

static bool pem_is_blank(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n')
			return false;
	}
	return true;
}

/* Describes why one block failed to decode, with OpenSSL's reason. */
static void pem_describe_damage(char *buf, size_t size, const char *label,
                                const struct pem_block *blk)
{
	const char *reason = ERR_reason_error_string(ERR_peek_last_error());

	if (buf[0] != '\0')
		cmi_append(buf, size, "; ");
	if (!blk->complete)
		cmi_append(buf, size, "%s line %d: BEGIN %s block has no END %s line", label,
		           blk->line, blk->type, blk->type);
	else
		cmi_append(buf, size, "%s line %d: BEGIN %s block is not valid base64 / DER%s%s%s",
		           label, blk->line, blk->type, reason ? " (" : "", reason ? reason : "",
		           reason ? ")" : "");
	ERR_clear_error();
}

/* Findings of a certificate scan other than certificates, used for the
 * error raised when none loaded. */
struct pem_cert_scan {
	int damaged;
	int keys;
	char other[64];
	char report[CMI_ERRMSG_MAX];
};

static X509 *pem_decode_cert(const struct pem_block *blk)
{
	BIO *bio;
	X509 *x = NULL;

	if (!blk->complete)
		return NULL;
	bio = BIO_new_mem_buf(blk->start, (int)blk->len);
	if (bio == NULL)
		return NULL;
	if (strcmp(blk->type, "TRUSTED CERTIFICATE") == 0)
		x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
	else
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return x;
}

static void pem_note_damage(struct pem_cert_scan *scan, const char *label,
                            const struct pem_block *blk)
{
	scan->damaged++;
	if (scan->damaged <= PEM_MAX_REPORTED)
		pem_describe_damage(scan->report, sizeof(scan->report), label, blk);
	else
		ERR_clear_error();
}

/* Decodes each certificate block into sk; other blocks are only noted. */
static int pem_collect_certs(const char *data, size_t len, const char *label, STACK_OF(X509) *sk,
                             struct pem_cert_scan *scan)
{
	struct pem_scan s = {.data = data, .len = len};
	struct pem_block blk;

	while (pem_next_block(&s, &blk)) {
		X509 *x;

		if (pem_is_key_type(blk.type)) {
			scan->keys++;
			continue;
		}
		if (!pem_is_cert_type(blk.type)) {
			if (scan->other[0] == '\0')
				cmi_fmt(scan->other, sizeof(scan->other), "%s", blk.type);
			continue;
		}
		x = pem_decode_cert(&blk);
		if (x == NULL) {
			pem_note_damage(scan, label, &blk);
			continue;
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			return cmi_error_ossl(CMICRO_ENOMEM, "out of memory loading %s", label);
		}
	}
	if (scan->damaged > PEM_MAX_REPORTED)
		cmi_append(scan->report, sizeof(scan->report), "; and %d more damaged blocks",
		           scan->damaged - PEM_MAX_REPORTED);
	return 0;
}

static int pem_no_cert_error(const char *data, size_t len, const char *label,
                             const struct pem_cert_scan *scan)
{
	if (scan->damaged > 0)
		return cmi_error(CMICRO_EPEM,
		                 "%s contains no valid certificate: %s; replace the "
		                 "damaged blocks with intact copies of the certificates",
		                 label, scan->report);
	if (scan->keys > 0)
		return cmi_error(CMICRO_EPEM,
		                 "%s contains a private key, not a certificate; give "
		                 "the certificate file (-----BEGIN CERTIFICATE-----) in "
		                 "its place",
		                 label);
	if (scan->other[0] != '\0')
		return cmi_error(CMICRO_EPEM,
		                 "%s contains a %s block, not a certificate; give a "
		                 "PEM file with -----BEGIN CERTIFICATE----- blocks",
		                 label, scan->other);
	if (pem_is_blank(data, len))
		return cmi_error(CMICRO_EPEM,
		                 "%s is empty; give a PEM file with -----BEGIN "
		                 "CERTIFICATE----- blocks",
		                 label);
	if ((unsigned char)data[0] == 0x30)
		return cmi_error(CMICRO_EPEM,
		                 "%s is not PEM (it looks like binary DER); convert "
		                 "it with `openssl x509 -inform DER -in %s -out %s.pem`",
		                 label, label, label);
	return cmi_error(CMICRO_EPEM,
	                 "%s contains no PEM certificate (no -----BEGIN "
	                 "CERTIFICATE----- line); give a PEM certificate file",
	                 label);
}

int cmi_pem_read_certs(const char *data, size_t len, const char *label, STACK_OF(X509) **out,
                       char **errors)
{
	struct pem_cert_scan scan = {0};
	STACK_OF(X509) *sk = NULL;
	int rc;

	if (errors != NULL)
		*errors = NULL;
	if (out == NULL || (data == NULL && len > 0))
		return cmi_error(CMICRO_EINVAL, "cmi_pem_read_certs: data and out must be given");
	label = label ? label : "certificate PEM";
	if (len > PEM_MAX_BYTES)
		return cmi_error(CMICRO_ELIMIT,
		                 "%s is larger than the %u-byte limit for a PEM "
		                 "bundle; check that it names the intended file",
		                 label, PEM_MAX_BYTES);

	sk = sk_X509_new_null();
	if (sk == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory loading %s", label);
	rc = pem_collect_certs(data ? data : "", len, label, sk, &scan);
	if (rc == 0 && sk_X509_num(sk) == 0)
		rc = pem_no_cert_error(data ? data : "", len, label, &scan);
	if (rc != 0)
		goto out;

	if (scan.damaged > 0 && errors != NULL)
		*errors = strdup(scan.report);
	*out = sk;
	sk = NULL;
out:
	sk_X509_pop_free(sk, X509_free);
	ERR_clear_error();
	return rc;
}

int cmi_pem_read_cert_file(const char *path, STACK_OF(X509) **out, char **errors)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	if (errors != NULL)
		*errors = NULL;
	rc = cmi_read_file(path, PEM_MAX_BYTES, &data, &len);
	if (rc == 0)
		rc = cmi_pem_read_certs(data, len, path, out, errors);
	free(data);
	return rc;
}

struct pem_password {
	const char *passphrase;
	bool requested;
};

/* Supplies the passphrase to OpenSSL, which otherwise prompts on the
 * terminal; without one it fails, so an encrypted key is an error. */
static int pem_passphrase_cb(char *buf, int size, int rwflag, void *user)
{
	struct pem_password *pw = user;
	size_t n;

	(void)rwflag;
	pw->requested = true;
	if (pw->passphrase == NULL)
		return -1;
	n = strlen(pw->passphrase);
	if (size < 0 || n > (size_t)size)
		return -1;
	memcpy(buf, pw->passphrase, n);
	return (int)n;
}

/* Finds the first private key block; counts the certificates met before. */
static bool pem_find_key(const char *data, size_t len, struct pem_block *key, int *certs)
{
	struct pem_scan s = {.data = data, .len = len};
	struct pem_block blk;

	*certs = 0;
	while (pem_next_block(&s, &blk)) {
		if (pem_is_key_type(blk.type)) {
			*key = blk;
			return true;
		}
		if (pem_is_cert_type(blk.type))
			(*certs)++;
	}
	return false;
}

static int pem_no_key_error(const char *data, size_t len, const char *label, int certs)
{
	if (certs > 0)
		return cmi_error(CMICRO_EKEY,
		                 "%s contains a certificate, not a private key; give "
		                 "the key file here and the certificate file as the certificate",
		                 label);
	if (pem_is_blank(data, len))
		return cmi_error(CMICRO_EKEY,
		                 "key %s is empty; give a PEM private key file "
		                 "(one that `openssl pkey -in FILE -noout` reads)",
		                 label);
	return cmi_error(CMICRO_EKEY,
	                 "%s contains no PEM private key (no BEGIN line of a private key "
	                 "block); give a PEM key file, or convert a DER key with `openssl "
	                 "pkey -inform DER -in %s -out %s.pem`",
	                 label, label, label);
}

/* Sets the detail message like cmi_error_ossl, but appends each distinct
 * OpenSSL reason once: decoders that try several key formats queue the same
 * reason several times. */
static int pem_error_ossl_once(int err, char *msg, size_t size)
{
	char reason[256];
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, reason, sizeof(reason));
		if (strstr(msg, reason) == NULL)
			cmi_append(msg, size, "; %s", reason);
	}
	return cmi_error(err, "%s", msg);
}

static int pem_decode_key(const struct pem_block *blk, const char *label, const char *passphrase,
                          EVP_PKEY **out)
{
	struct pem_password pw = {.passphrase = passphrase};
	char report[CMI_ERRMSG_MAX] = "";
	BIO *bio;

	if (!blk->complete) {
		pem_describe_damage(report, sizeof(report), label, blk);
		return cmi_error(CMICRO_EPEM, "%s; replace the key file with an intact copy",
		                 report);
	}
	bio = BIO_new_mem_buf(blk->start, (int)blk->len);
	if (bio == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory loading key %s", label);
	*out = PEM_read_bio_PrivateKey(bio, NULL, pem_passphrase_cb, &pw);
	BIO_free(bio);
	if (*out != NULL)
		return 0;

	/* The OpenSSL queue only repeats "interrupted or cancelled" here, once
	 * per key format tried, so it is dropped rather than appended. */
	if (pw.requested && passphrase == NULL) {
		ERR_clear_error();
		return cmi_error(CMICRO_EKEY,
		                 "key %s is encrypted and no passphrase was given; decrypt "
		                 "it with `openssl pkey -in %s -out %s.plain` and use the "
		                 "decrypted file",
		                 label, label, label);
	}
	if (pw.requested) {
		cmi_fmt(report, sizeof(report),
		        "key %s could not be decrypted: the passphrase is wrong or the key is "
		        "damaged; check the passphrase",
		        label);
		return pem_error_ossl_once(CMICRO_EKEY, report, sizeof(report));
	}
	pem_describe_damage(report, sizeof(report), label, blk);
	return cmi_error(CMICRO_EPEM, "%s; replace the key file with an intact copy", report);
}

int cmi_pem_read_key(const char *data, size_t len, const char *label, const char *passphrase,
                     EVP_PKEY **out)
{
	struct pem_block key;
	int certs = 0;
	int rc;

	if (out == NULL || (data == NULL && len > 0))
		return cmi_error(CMICRO_EINVAL, "cmi_pem_read_key: data and out must be given");
	*out = NULL;
	label = label ? label : "key PEM";
	data = data ? data : "";
	if (len > PEM_MAX_BYTES)
		return cmi_error(CMICRO_ELIMIT,
		                 "key %s is larger than the %u-byte limit; check "
		                 "that it names the intended file",
		                 label, PEM_MAX_BYTES);

	if (!pem_find_key(data, len, &key, &certs))
		rc = pem_no_key_error(data, len, label, certs);
	else
		rc = pem_decode_key(&key, label, passphrase, out);
	ERR_clear_error();
	return rc;
}

static int pem_crl_error(const char *path, const struct pem_block *blk)
{
	char report[CMI_ERRMSG_MAX] = "";

	pem_describe_damage(report, sizeof(report), path, blk);
	return cmi_error(CMICRO_EPEM,
	                 "%s; a damaged CRL file is rejected whole so that no "
	                 "revocation is missed: download the CRL again",
	                 report);
}

static int pem_collect_crls(const char *data, size_t len, const char *path, STACK_OF(X509_CRL) *sk)
{
	struct pem_scan s = {.data = data, .len = len};
	struct pem_block blk;

	while (pem_next_block(&s, &blk)) {
		X509_CRL *crl = NULL;
		BIO *bio;

		if (strcmp(blk.type, "X509 CRL") != 0)
			continue;
		if (!blk.complete)
			return pem_crl_error(path, &blk);
		bio = BIO_new_mem_buf(blk.start, (int)blk.len);
		if (bio != NULL)
			crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		BIO_free(bio);
		if (crl == NULL)
			return pem_crl_error(path, &blk);
		if (!sk_X509_CRL_push(sk, crl)) {
			X509_CRL_free(crl);
			return cmi_error_ossl(CMICRO_ENOMEM, "out of memory loading %s", path);
		}
	}
	if (sk_X509_CRL_num(sk) == 0)
		return cmi_error(
		    CMICRO_EPEM,
		    "%s contains no PEM CRL (no -----BEGIN X509 CRL----- "
		    "line); give a PEM CRL file, or convert a DER one with `openssl crl "
		    "-inform DER -in %s -out %s.pem`",
		    path, path, path);
	return 0;
}

int cmi_pem_read_crl_file(const char *path, STACK_OF(X509_CRL) **out)
{
	STACK_OF(X509_CRL) *sk = NULL;
	char *data = NULL;
	size_t len = 0;
	int rc;

	rc = cmi_read_file(path, PEM_MAX_BYTES, &data, &len);
	if (rc != 0)
		return rc;
	sk = sk_X509_CRL_new_null();
	if (sk == NULL) {
		rc = cmi_error_ossl(CMICRO_ENOMEM, "out of memory loading %s", path);
		goto out;
	}
	rc = pem_collect_crls(data, len, path, sk);
	if (rc != 0)
		goto out;
	*out = sk;
	sk = NULL;
out:
	sk_X509_CRL_pop_free(sk, X509_CRL_free);
	free(data);
	ERR_clear_error();
	return rc;
}
