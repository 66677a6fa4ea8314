/* Text and JSON output of certificate details. */
#include <string.h>
#include <time.h>

#include "cert_print.h"

const char *cert_print_time(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "%lld (seconds since 1970)", (long long)t);
	return buf;
}

/* Formats t as ISO 8601 UTC ("2025-01-31T12:00:00Z") for JSON. */
static const char *cert_print_iso(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)t);
	return buf;
}

const char *cert_print_role(const struct cmicro_cert_info *info, size_t depth)
{
	/* A self-signed CA is a root wherever it sits, so `cert inspect ca.pem`
	 * and `tls check` label the same certificate alike. */
	if (info->self_signed && info->is_ca)
		return "root";
	if (depth == 0)
		return "leaf";
	return info->self_signed ? "root" : "intermediate";
}

static void cert_print_list(FILE *out, const char *indent, const char *label, char **items,
                            size_t n)
{
	fprintf(out, "%s%-14s ", indent, label);
	if (n == 0)
		fputs("(none)", out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%s", i > 0 ? ", " : "", items[i]);
	fputc('\n', out);
}

/* Describes the validity relative to now: "expires in 30 days", "EXPIRED 3
 * days ago", "NOT YET VALID". */
static void cert_print_expiry(char *buf, size_t size, const struct cmicro_cert_info *info)
{
	time_t now = time(NULL);

	if (now < info->not_before)
		snprintf(buf, size, "NOT YET VALID");
	else if (now >= info->not_after)
		snprintf(buf, size, "EXPIRED %ld days ago", -info->days_until_expiry);
	else if (info->days_until_expiry == 0)
		snprintf(buf, size, "expires within a day");
	else
		snprintf(buf, size, "expires in %ld days", info->days_until_expiry);
}

static const char *cert_print_usages(const struct cmicro_cert_info *info)
{
	if (!info->has_eku)
		return "any (no extendedKeyUsage extension)";
	if (info->server_auth && info->client_auth)
		return "serverAuth, clientAuth";
	if (info->server_auth)
		return "serverAuth";
	if (info->client_auth)
		return "clientAuth";
	return "neither serverAuth nor clientAuth";
}

void cert_print_text(FILE *out, const struct cmicro_cert_info *info, const char *indent)
{
	char from[64];
	char until[64];
	char expiry[64];

	cert_print_time(from, sizeof(from), info->not_before);
	cert_print_time(until, sizeof(until), info->not_after);
	cert_print_expiry(expiry, sizeof(expiry), info);

	fprintf(out, "%s%-14s %s\n", indent, "subject:", info->subject);
	fprintf(out, "%s%-14s %s\n", indent, "issuer:", info->issuer);
	fprintf(out, "%s%-14s %s\n", indent, "serial:", info->serial);
	cert_print_list(out, indent, "DNS names:", info->dns_names, info->n_dns_names);
	cert_print_list(out, indent, "IP addresses:", info->ip_addresses, info->n_ip_addresses);
	fprintf(out, "%s%-14s %s\n", indent, "valid from:", from);
	fprintf(out, "%s%-14s %s (%s)\n", indent, "valid until:", until, expiry);
	fprintf(out, "%s%-14s %s%s%s (%d bits)\n", indent, "key:", info->key_type,
	        info->curve ? " " : "", info->curve ? info->curve : "", info->key_bits);
	fprintf(out, "%s%-14s %s\n", indent, "signature:", info->signature_algorithm);
	fprintf(out, "%s%-14s %s\n", indent, "CA:", info->is_ca ? "yes" : "no");
	fprintf(out, "%s%-14s %s\n", indent, "self-signed:", info->self_signed ? "yes" : "no");
	fprintf(out, "%s%-14s %s\n", indent, "usages:", cert_print_usages(info));
	fprintf(out, "%s%-14s %s\n", indent, "SHA-256:", info->sha256_fingerprint);
}

static json_t *cert_print_json_list(char **items, size_t n)
{
	json_t *array = json_array();

	for (size_t i = 0; array != NULL && i < n; i++) {
		if (json_array_append_new(array, json_string(items[i])) != 0) {
			json_decref(array);
			return NULL;
		}
	}
	return array;
}

json_t *cert_print_json(const struct cmicro_cert_info *info)
{
	char from[32];
	char until[32];

	return json_pack(
	    "{s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:I, s:I, s:I, s:s, s:i, s:s?, "
	    "s:s, s:b, s:b, s:b, s:b, s:s, s:b}",
	    "subject", info->subject, "issuer", info->issuer, "serial", info->serial, "dns_names",
	    cert_print_json_list(info->dns_names, info->n_dns_names), "ip_addresses",
	    cert_print_json_list(info->ip_addresses, info->n_ip_addresses), "not_before",
	    cert_print_iso(from, sizeof(from), info->not_before), "not_after",
	    cert_print_iso(until, sizeof(until), info->not_after), "not_before_unix",
	    (json_int_t)info->not_before, "not_after_unix", (json_int_t)info->not_after,
	    "days_until_expiry", (json_int_t)info->days_until_expiry, "key_type", info->key_type,
	    "key_bits", info->key_bits, "curve", info->curve, "signature_algorithm",
	    info->signature_algorithm, "is_ca", info->is_ca, "self_signed", info->self_signed,
	    "server_auth", info->server_auth, "client_auth", info->client_auth,
	    "sha256_fingerprint", info->sha256_fingerprint, "has_eku", info->has_eku);
}
