#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "common/common_int.h"

struct err_row {
	int code;
	const char *name;
	enum cmicro_err_kind kind;
	const char *text;
};

static const struct err_row err_table[] = {
#define CMICRO_ERR_ENTRY(sym, val, kind, text) {val, #sym, kind, text},
#include <cmicro/errors.def>
#undef CMICRO_ERR_ENTRY
};

static _Thread_local char errmsg[CMI_ERRMSG_MAX];

static const struct err_row *err_find(int code)
{
	for (size_t i = 0; i < CMI_ARRAY_LEN(err_table); i++) {
		if (err_table[i].code == code)
			return &err_table[i];
	}
	return NULL;
}

CMICRO_API const char *cmicro_strerror(int err)
{
	const struct err_row *row = err_find(err);

	return row ? row->text : "unknown error";
}

CMICRO_API const char *cmicro_err_name(int err)
{
	const struct err_row *row = err_find(err);

	return row ? row->name : "CMICRO_EUNKNOWN";
}

CMICRO_API enum cmicro_err_kind cmicro_err_kind(int err)
{
	const struct err_row *row = err_find(err);

	return row ? row->kind : CMICRO_KIND_INTERNAL;
}

CMICRO_API const char *cmicro_last_errmsg(void)
{
	return errmsg;
}

CMICRO_API void cmicro_free(void *ptr)
{
	free(ptr);
}

void cmi_error_clear(void)
{
	errmsg[0] = '\0';
}

int cmi_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return err;
}

int cmi_ossl_drain(char *buf, size_t size)
{
	unsigned long e;
	int count = 0;
	char reason[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, reason, sizeof(reason));
		if (buf != NULL && size > 0)
			cmi_append(buf, size, "; %s", reason);
		count++;
	}
	return count;
}

int cmi_error_ossl(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	cmi_ossl_drain(errmsg, sizeof(errmsg));
	return err;
}

void *cmi_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		cmi_error(CMICRO_ENOMEM, "out of memory allocating %zu bytes", n * size);
	return p;
}

char *cmi_strdup(const char *s)
{
	return s ? cmi_strndup(s, strlen(s)) : NULL;
}

char *cmi_strndup(const char *s, size_t n)
{
	char *p;

	if (s == NULL)
		return NULL;
	p = malloc(n + 1);
	if (p == NULL) {
		cmi_error(CMICRO_ENOMEM, "out of memory copying a %zu-byte string", n);
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *cmi_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

void cmi_append(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strnlen(buf, size);
	va_list ap;

	if (len + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}
