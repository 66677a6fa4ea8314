/* The OpenSSL errors of a libevent OpenSSL bufferevent, which the etcd
 * client still uses. */
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "http/http_int.h"

/* libevent 2.1 stores, before the OpenSSL errors, the SSL_get_error() result
 * (SSL_ERROR_SSL, SSL_ERROR_SYSCALL, ...) in the same list, and hands the
 * list back last in, first out. Those small codes are not OpenSSL errors:
 * ERR_error_string renders them as "lib(0)::reason(N)". */
#define REQUEUE_MAX 16

int cmi_http_requeue_ssl_errors(struct bufferevent *bev)
{
	unsigned long errors[REQUEUE_MAX];
	unsigned long e;
	size_t n = 0;
	int ssl_error = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		if (ERR_GET_LIB(e) == 0 && !ERR_SYSTEM_ERROR(e))
			ssl_error = (int)e;
		else if (n < REQUEUE_MAX)
			errors[n++] = e;
	}

	/* Raised oldest first, as OpenSSL queued them. */
	while (n > 0) {
		e = errors[--n];
		ERR_raise(ERR_GET_LIB(e), ERR_GET_REASON(e));
	}
	return ssl_error;
}
