/* The strict request head check; see http_head.h for why it exists. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_head.h"

enum head_field { FIELD_OTHER = 0, FIELD_CONTENT_LENGTH, FIELD_TRANSFER_ENCODING };

void cmi_http_head_init(struct cmi_http_head_scan *scan, unsigned max_fields)
{
	memset(scan, 0, sizeof(*scan));
	scan->max_fields = max_fields ? max_fields : CMI_HTTP_HEAD_MAX_FIELDS;
	scan->in_name = true;
}

bool cmi_http_head_started(const struct cmi_http_head_scan *scan)
{
	return scan->lines > 0 || scan->line_len > 0 || scan->after_cr;
}

static enum cmi_http_head_result head_reject(struct cmi_http_head_scan *scan, int status,
					     const char *reason)
{
	scan->status = status;
	scan->reason = reason;
	scan->result = CMI_HTTP_HEAD_BAD;
	return CMI_HTTP_HEAD_BAD;
}

/* tchar of RFC 9110, section 5.6.2: the bytes allowed in a field name. */
static bool head_is_tchar(unsigned char c)
{
	unsigned char lower = (unsigned char)(c | 0x20);

	if ((lower >= 'a' && lower <= 'z') || (c >= '0' && c <= '9') || c == '-')
		return true;
	return c != 0 && strchr("!#$%&'*+.^_`|~", c) != NULL;
}

static bool head_is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Length of the run of bytes at data that are neither control bytes nor
 * line ends: what the request line and most field values consist of. */
static size_t head_plain_run(const unsigned char *data, size_t len)
{
	size_t n = 0;

	while (n < len && (data[n] >= 0x20 || data[n] == '\t') && data[n] != 0x7f)
		n++;
	return n;
}

/* True where a run of plain bytes needs no look at each byte: inside the
 * request line, or in the value of a field that framing does not use. */
static bool head_in_plain_text(const struct cmi_http_head_scan *scan)
{
	return !scan->after_cr && scan->line_len > 0 &&
	       (scan->lines == 0 || (!scan->in_name && scan->field == FIELD_OTHER));
}

static void head_name_end(struct cmi_http_head_scan *scan)
{
	scan->in_name = false;
	scan->value_len = 0;
	scan->value_long = false;
	scan->field = FIELD_OTHER;
	if (scan->name_len >= sizeof(scan->name))
		return;
	scan->name[scan->name_len] = '\0';
	if (strcmp(scan->name, "content-length") == 0)
		scan->field = FIELD_CONTENT_LENGTH;
	else if (strcmp(scan->name, "transfer-encoding") == 0)
		scan->field = FIELD_TRANSFER_ENCODING;
}

/* Records a complete Content-Length or Transfer-Encoding field. */
static void head_field_end(struct cmi_http_head_scan *scan)
{
	size_t n = scan->value_len;

	while (n > 0 && (scan->value[n - 1] == ' ' || scan->value[n - 1] == '\t'))
		n--;
	scan->value[n] = '\0';
	if (scan->field == FIELD_CONTENT_LENGTH) {
		scan->content_lengths++;
		if (n == 0 || scan->value_long || strspn(scan->value, "0123456789") != n)
			scan->content_length_invalid = true;
	} else if (scan->field == FIELD_TRANSFER_ENCODING) {
		scan->transfer_encodings++;
		if (scan->value_long || strcasecmp(scan->value, "chunked") != 0)
			scan->transfer_encoding_other = true;
	}
}

/* Checks the fields that decide where the body ends, once the head is
 * complete: two readings of them are how requests get smuggled. */
static enum cmi_http_head_result head_check_framing(struct cmi_http_head_scan *scan)
{
	if (scan->content_lengths > 1)
		return head_reject(scan, 400, "more than one Content-Length field; send exactly one");
	if (scan->content_length_invalid)
		return head_reject(scan, 400, "Content-Length is not a decimal number of bytes");
	if (scan->transfer_encodings > 1)
		return head_reject(scan, 400, "more than one Transfer-Encoding field; send one");
	if (scan->transfer_encodings > 0 && scan->content_lengths > 0)
		return head_reject(scan, 400, "both Content-Length and Transfer-Encoding are set; "
					      "send only one of them");
	if (scan->transfer_encoding_other)
		return head_reject(scan, 501, "unsupported Transfer-Encoding; the server accepts "
					      "only \"chunked\"");
	scan->result = CMI_HTTP_HEAD_DONE;
	return CMI_HTTP_HEAD_DONE;
}

/* Ends the current line at its CRLF. */
static enum cmi_http_head_result head_line_end(struct cmi_http_head_scan *scan)
{
	if (scan->line_len == 0 && scan->lines == 0)
		return head_reject(scan, 400, "empty line before the request line");
	if (scan->line_len == 0)
		return head_check_framing(scan);
	if (scan->lines > 0) {
		if (scan->in_name)
			return head_reject(scan, 400, "header line without a colon");
		head_field_end(scan);
	}
	scan->lines++;
	scan->line_len = 0;
	scan->in_name = true;
	scan->name_len = 0;
	if (scan->lines - 1 > scan->max_fields)
		return head_reject(scan, 431, "too many header fields; send fewer");
	return CMI_HTTP_HEAD_MORE;
}

static enum cmi_http_head_result head_name_byte(struct cmi_http_head_scan *scan, unsigned char c)
{
	if (c == ':') {
		if (scan->name_len == 0)
			return head_reject(scan, 400, "empty header field name");
		head_name_end(scan);
		return CMI_HTTP_HEAD_MORE;
	}
	if (!head_is_tchar(c))
		return head_reject(scan, 400, "invalid byte in a header field name (a space before "
					      "the colon, a separator or a control byte)");
	if (scan->name_len < sizeof(scan->name) - 1)
		scan->name[scan->name_len] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
	if (scan->name_len < sizeof(scan->name))
		scan->name_len++;
	return CMI_HTTP_HEAD_MORE;
}

static enum cmi_http_head_result head_value_byte(struct cmi_http_head_scan *scan, unsigned char c)
{
	if (head_is_ctl(c))
		return head_reject(scan, 400, "control byte in a header field value");
	if (scan->field == FIELD_OTHER || (scan->value_len == 0 && (c == ' ' || c == '\t')))
		return CMI_HTTP_HEAD_MORE;
	if (scan->value_len < sizeof(scan->value) - 1)
		scan->value[scan->value_len++] = (char)c;
	else
		scan->value_long = true;
	return CMI_HTTP_HEAD_MORE;
}

/* Checks one byte that is neither CR nor LF. */
static enum cmi_http_head_result head_byte(struct cmi_http_head_scan *scan, unsigned char c)
{
	bool line_start = scan->line_len == 0;

	scan->line_len++;
	if (scan->lines == 0)
		return head_is_ctl(c) ? head_reject(scan, 400, "control byte in the request line")
				      : CMI_HTTP_HEAD_MORE;
	if (line_start && (c == ' ' || c == '\t'))
		return head_reject(scan, 400, "obsolete line folding (a header line that starts "
					      "with a space or tab); send each field on one line");
	return scan->in_name ? head_name_byte(scan, c) : head_value_byte(scan, c);
}

enum cmi_http_head_result cmi_http_head_feed(struct cmi_http_head_scan *scan, const char *data,
					     size_t len, size_t *used)
{
	enum cmi_http_head_result rc = scan->result;
	size_t i;

	*used = 0;
	for (i = 0; i < len && rc == CMI_HTTP_HEAD_MORE; i++) {
		unsigned char c;

		if (head_in_plain_text(scan)) {
			size_t run = head_plain_run((const unsigned char *)data + i, len - i);

			scan->line_len += run;
			i += run;
			if (i == len) {
				*used = len;
				break;
			}
		}
		c = (unsigned char)data[i];
		*used = i + 1;
		if (scan->after_cr) {
			scan->after_cr = false;
			rc = c == '\n' ? head_line_end(scan)
				       : head_reject(scan, 400, "bare CR in the request head; end "
								 "every line with CRLF");
		} else if (c == '\r') {
			scan->after_cr = true;
		} else if (c == '\n') {
			rc = head_reject(scan, 400, "bare LF line end in the request head; end every "
						    "line with CRLF");
		} else {
			rc = head_byte(scan, c);
		}
	}
	/* A rejected byte is not used; the byte that ends the head is. */
	if (rc == CMI_HTTP_HEAD_BAD && *used > 0)
		(*used)--;
	return rc;
}
