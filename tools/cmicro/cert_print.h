/* Text and JSON output of certificate details, shared by `cmicro cert
 * inspect` and `cmicro tls check`. */
#ifndef CMICRO_CLI_CERT_PRINT_H
#define CMICRO_CLI_CERT_PRINT_H

#include <stdio.h>

#include <jansson.h>

#include <cmicro/cert.h>

/* Formats t as "YYYY-MM-DD HH:MM:SS UTC" into buf. */
const char *cert_print_time(char *buf, size_t size, time_t t);

/* Prints the details of one certificate, each line indented by indent. */
void cert_print_text(FILE *out, const struct cmicro_cert_info *info, const char *indent);

/* Returns a new JSON object with the details of one certificate, or NULL
 * when out of memory. */
json_t *cert_print_json(const struct cmicro_cert_info *info);

/* Returns the chain role of a certificate: "root" for a self-signed CA at any
 * depth, else "leaf" at depth 0 and "intermediate" (or "root") above. */
const char *cert_print_role(const struct cmicro_cert_info *info, size_t depth);

#endif
