/*
 * Host name verification with the rules of Go's crypto/x509
 * (Certificate.VerifyHostname), so that a C node and a Go node give one
 * certificate the same verdict. OpenSSL's X509_check_host differs: it falls
 * back to the subject CN, accepts partial-label wildcards such as f*o, and
 * compares IPv4-mapped IPv6 addresses differently.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

#include "tls/tls_config_int.h"

/* Parses an IP literal (brackets around IPv6 stripped) into 16 bytes, with
 * IPv4 in the IPv4-mapped form so that 10.0.0.1 equals ::ffff:10.0.0.1, as
 * Go's net.IP.Equal has it. */
static bool host_parse_ip(const char *host, unsigned char ip[16])
{
	char text[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(host);
	unsigned char v4[4];

	if (len >= 3 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len >= sizeof(text))
		return false;
	memcpy(text, host, len);
	text[len] = '\0';

	if (inet_pton(AF_INET, text, v4) == 1) {
		memset(ip, 0, 10);
		ip[10] = 0xff;
		ip[11] = 0xff;
		memcpy(ip + 12, v4, 4);
		return true;
	}
	return inet_pton(AF_INET6, text, ip) == 1;
}

bool cmi_host_is_ip(const char *host)
{
	unsigned char ip[16];

	return host != NULL && host_parse_ip(host, ip);
}

static bool host_ip_equal(const ASN1_OCTET_STRING *san, const unsigned char ip[16])
{
	const unsigned char *data = ASN1_STRING_get0_data(san);
	int len = ASN1_STRING_length(san);
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (len == 16)
		return memcmp(data, ip, 16) == 0;
	if (len == 4)
		return memcmp(ip, mapped, 12) == 0 && memcmp(data, ip + 12, 4) == 0;
	return false;
}

/* Go's validHostname: labels of letters, digits, '-' (not first) and '_',
 * which is common outside the Web PKI. A pattern may start with the label
 * "*", but a bare "*" is never valid. A host may end with one dot. */
static bool host_valid(const char *name, size_t len, bool pattern)
{
	size_t label_start = 0;

	if (!pattern && len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || (len == 1 && name[0] == '*'))
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? name[i] : '.';

		if (c == '.') {
			if (i == label_start)
				return false;
			label_start = i + 1;
			continue;
		}
		if (pattern && label_start == 0 && c == '*' && i == 0 &&
		    (len == 1 || name[1] == '.'))
			continue;
		if (isalnum((unsigned char)c) || c == '_' || (c == '-' && i != label_start))
			continue;
		return false;
	}
	return true;
}

/* Go's matchHostnames: one trailing dot ignored on both sides, the same
 * number of labels, and "*" matching exactly one whole leftmost label. */
static bool host_match_pattern(const char *pattern, size_t plen, const char *host, size_t hlen)
{
	if (plen > 0 && pattern[plen - 1] == '.')
		plen--;
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (plen == 0 || hlen == 0)
		return false;

	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = memchr(host, '.', hlen);

		if (dot == NULL || dot == host)
			return false;
		hlen -= (size_t)(dot - host);
		host = dot;
		pattern++;
		plen--;
	}
	return plen == hlen && strncasecmp(pattern, host, plen) == 0;
}

/* Go's matchExactly: a plain case-insensitive comparison, for names that are
 * not valid host names (no dot trimming, no wildcards). */
static bool host_match_exact(const char *pattern, size_t plen, const char *host, size_t hlen)
{
	if (hlen == 0 || (hlen == 1 && host[0] == '.') || plen == 0 ||
	    (plen == 1 && pattern[0] == '.'))
		return false;
	return plen == hlen && strncasecmp(pattern, host, plen) == 0;
}

static bool host_match_dns(const ASN1_IA5STRING *san, const char *host)
{
	const char *pattern = (const char *)ASN1_STRING_get0_data(san);
	size_t plen = (size_t)ASN1_STRING_length(san);
	size_t hlen = strlen(host);

	/* A SAN with an embedded NUL could otherwise match a shorter name. */
	if (memchr(pattern, '\0', plen) != NULL)
		return false;
	if (host_valid(host, hlen, false) && host_valid(pattern, plen, true))
		return host_match_pattern(pattern, plen, host, hlen);
	return host_match_exact(pattern, plen, host, hlen);
}

/* Appends one SAN to a ", "-separated list, truncating safely. */
static void host_list_add(char *names, size_t size, const char *name)
{
	if (names == NULL || size == 0)
		return;
	cmi_append(names, size, "%s%s", names[0] != '\0' ? ", " : "", name);
}

static void host_list_san(char *names, size_t size, const GENERAL_NAME *gen)
{
	char text[INET6_ADDRSTRLEN];
	char buf[256];
	const unsigned char *data;
	int len;

	if (gen->type == GEN_DNS) {
		data = ASN1_STRING_get0_data(gen->d.dNSName);
		len = ASN1_STRING_length(gen->d.dNSName);
		cmi_fmt(buf, sizeof(buf), "%.*s", len, (const char *)data);
		host_list_add(names, size, cmi_tls_printable(buf, text, sizeof(text)));
		return;
	}
	data = ASN1_STRING_get0_data(gen->d.iPAddress);
	len = ASN1_STRING_length(gen->d.iPAddress);
	if ((len == 4 && inet_ntop(AF_INET, data, text, sizeof(text)) != NULL) ||
	    (len == 16 && inet_ntop(AF_INET6, data, text, sizeof(text)) != NULL))
		host_list_add(names, size, text);
}

int cmi_host_matches(X509 *cert, const char *host, char *names, size_t names_size)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	unsigned char ip[16];
	bool is_ip = host != NULL && host_parse_ip(host, ip);
	int matched = 0;

	if (names != NULL && names_size > 0)
		names[0] = '\0';
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(sans, i);

		/* Go lists the SANs of the kind it compared: IPs for an IP host. */
		if (gen->type != (is_ip ? GEN_IPADD : GEN_DNS))
			continue;
		host_list_san(names, names_size, gen);
		if (host == NULL || matched)
			continue;
		if (is_ip)
			matched = host_ip_equal(gen->d.iPAddress, ip);
		else
			matched = host_match_dns(gen->d.dNSName, host);
	}
	GENERAL_NAMES_free(sans);
	return matched;
}

/* Returns whether the certificate has a subjectAltName extension at all. */
static bool host_has_san_ext(X509 *cert)
{
	return X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) >= 0;
}

/* Returns whether the subject CN would match host under the SAN rules, for
 * Go's "relies on legacy Common Name field" message. */
static bool host_cn_matches(X509 *cert, const char *host)
{
	const X509_NAME *subject = X509_get_subject_name(cert);
	int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	const ASN1_STRING *cn;
	const char *text;
	size_t len;

	if (i < 0)
		return false;
	cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
	text = (const char *)ASN1_STRING_get0_data(cn);
	len = (size_t)ASN1_STRING_length(cn);
	if (memchr(text, '\0', len) != NULL || !host_valid(text, len, true))
		return false;
	return host_match_pattern(text, len, host, strlen(host));
}

void cmi_host_mismatch_message(X509 *cert, const char *host, char *buf, size_t size)
{
	char names[384];
	char shown[256];
	unsigned char ip[16];
	bool is_ip = host_parse_ip(host, ip);

	cmi_host_matches(cert, host, names, sizeof(names));
	cmi_tls_printable(host, shown, sizeof(shown));
	/* Go names an IP host without its brackets. */
	if (is_ip && shown[0] == '[' && strlen(shown) > 2) {
		memmove(shown, shown + 1, strlen(shown));
		shown[strlen(shown) - 1] = '\0';
	}
	if (!host_has_san_ext(cert) && host_cn_matches(cert, host)) {
		cmi_fmt(buf, size,
		        "certificate relies on legacy Common Name field, use SANs "
		        "instead: reissue it with %s in its subject alternative names",
		        shown);
		return;
	}
	if (is_ip && names[0] == '\0') {
		cmi_fmt(buf, size,
		        "cannot validate certificate for %s because it doesn't contain "
		        "any IP SANs; reissue it with IP:%s in its subject alternative names, or "
		        "connect by a DNS name it lists",
		        shown, shown);
		return;
	}
	if (names[0] == '\0') {
		cmi_fmt(buf, size,
		        "certificate is not valid for any names, but wanted to match %s; "
		        "reissue it with %s in its subject alternative names",
		        shown, shown);
		return;
	}
	cmi_fmt(buf, size,
	        "certificate is valid for %s, not %s; connect with a listed name or "
	        "reissue the certificate with %s",
	        names, shown, shown);
}
