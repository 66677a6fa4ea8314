/* Broker ids and addresses: go-micro's UUID ids and its choice of the
 * address to advertise when listening on every interface. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "broker/broker_int.h"

/* Writes the 16 bytes of b as a UUID string, 8-4-4-4-12 lowercase hex. */
static void id_format(const unsigned char b[16], char out[CMI_BRK_ID_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 0x0f];
	}
	*p = '\0';
}

/* RFC 4122 version 4 and variant bits, as Go's uuid.New(). */
static void id_mark_v4(unsigned char b[16])
{
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
}

int cmi_brk_new_id(char *buf, size_t size)
{
	unsigned char b[16];
	char text[CMI_BRK_ID_SIZE];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot draw random bytes for the broker id");
	id_mark_v4(b);
	id_format(b, text);
	cmi_fmt(buf, size, "%s", text);
	return 0;
}

/*
 * Message ids come from a random 128-bit seed drawn once per process and a
 * counter. The counter goes through a bijection of 62 bits (multiplications
 * by odd constants and xor-shifts, all invertible modulo 2^62) and is XORed
 * into the bits that the version and variant marks leave alone. So the ids
 * of one process do not repeat within 2^62 messages. Each id also carries
 * 122 bits of its process's random seed, which makes ids of two processes
 * collide with negligible probability. Drawing 16 random bytes per message
 * cost more than the rest of publishing a small message
 * (bench/profile.sh). A forked child draws a new seed.
 */
#define ID_LOW_BITS 62
#define ID_LOW_MASK ((UINT64_C(1) << ID_LOW_BITS) - 1)

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool id_seeded;
static bool id_atfork_set;
static unsigned char id_seed[16];
static atomic_uint_least64_t id_counter;

static void id_forget_seed(void)
{
	atomic_store(&id_seeded, false);
}

static int id_draw_seed(void)
{
	int rc = 0;

	pthread_mutex_lock(&id_lock);
	if (!atomic_load(&id_seeded)) {
		if (RAND_bytes(id_seed, sizeof(id_seed)) != 1) {
			rc = cmi_error_ossl(CMICRO_ECRYPTO, "cannot draw random bytes for message ids");
		} else {
			if (!id_atfork_set && pthread_atfork(NULL, NULL, id_forget_seed) == 0)
				id_atfork_set = true;
			atomic_store(&id_seeded, true);
		}
	}
	pthread_mutex_unlock(&id_lock);
	return rc;
}

static uint64_t id_mix62(uint64_t x)
{
	x &= ID_LOW_MASK;
	x = (x * UINT64_C(0x9e3779b97f4a7c15)) & ID_LOW_MASK;
	x ^= x >> 29;
	x = (x * UINT64_C(0xbf58476d1ce4e5b9)) & ID_LOW_MASK;
	x ^= x >> 31;
	return x;
}

int cmi_brk_message_id(char out[CMI_BRK_ID_SIZE])
{
	unsigned char b[16];
	uint64_t low, n;
	int rc;

	if (!atomic_load(&id_seeded) && (rc = id_draw_seed()) != 0)
		return rc;
	n = atomic_fetch_add(&id_counter, 1);
	memcpy(b, id_seed, sizeof(b));
	low = id_mix62(n);
	/* Bytes 8 to 15 hold the variant bits and the mixed counter. */
	for (int i = 15; i >= 8; i--) {
		b[i] ^= (unsigned char)(low & 0xff);
		low >>= 8;
	}
	id_mark_v4(b);
	id_format(b, out);
	return 0;
}

bool cmi_brk_host_is_any(const char *host)
{
	return host == NULL || host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
	       strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0;
}

/* Private ranges as go-micro's util/addr lists them, loopback included;
 * loopback addresses sort last anyway because they sit on loopback
 * interfaces. */
static bool addr_is_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);

		return (a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
		       (a >> 22) == (100u << 2 | 1) || (a >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return (a->s6_addr[0] & 0xfe) == 0xfc || IN6_IS_ADDR_LOOPBACK(a);
	}
	return false;
}

static int addr_text(const struct sockaddr *sa, char *out, size_t size)
{
	const void *src;

	if (sa->sa_family == AF_INET)
		src = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		return -1;
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *)src))
		return -1; /* needs a zone to be usable */
	return inet_ntop(sa->sa_family, src, out, (socklen_t)size) ? 0 : -1;
}

/* Picks, in this order: a private address of a non-loopback interface, a
 * private (loopback) address, then the first public address. */
static int addr_pick(struct ifaddrs *list, char *out, size_t size)
{
	char text[INET6_ADDRSTRLEN];
	char public_ip[INET6_ADDRSTRLEN] = "";

	for (int pass = 0; pass < 2; pass++) {
		for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
			bool loop = (i->ifa_flags & IFF_LOOPBACK) != 0;

			if (i->ifa_addr == NULL || loop != (pass == 1) ||
			    addr_text(i->ifa_addr, text, sizeof(text)) != 0)
				continue;
			if (addr_is_private(i->ifa_addr)) {
				cmi_fmt(out, size, "%s", text);
				return 0;
			}
			if (public_ip[0] == '\0')
				cmi_fmt(public_ip, sizeof(public_ip), "%s", text);
		}
	}
	if (public_ip[0] == '\0')
		return -1;
	cmi_fmt(out, size, "%s", public_ip);
	return 0;
}

int cmi_brk_advertised_host(const char *listen_host, char *out, size_t size)
{
	struct ifaddrs *list = NULL;
	char buf[INET6_ADDRSTRLEN] = "";
	int rc;

	if (!cmi_brk_host_is_any(listen_host)) {
		cmi_fmt(out, size, "%s", listen_host);
		return 0;
	}
	if (getifaddrs(&list) != 0)
		return cmi_error(CMICRO_EIO, "cannot list network interfaces to choose the address "
					     "to advertise; set the broker address to a specific IP");
	rc = addr_pick(list, buf, sizeof(buf));
	freeifaddrs(list);
	if (rc != 0)
		return cmi_error(CMICRO_ENOTFOUND, "no usable IP address found to advertise; set the "
						   "broker address to a specific IP");
	cmi_fmt(out, size, "%s", buf);
	return 0;
}

void cmi_brk_free_strings(char **list, size_t n)
{
	for (size_t i = 0; list != NULL && i < n; i++)
		free(list[i]);
	free(list);
}

int cmi_brk_local_ips(char ***ips, size_t *n)
{
	struct ifaddrs *list = NULL;
	char text[INET6_ADDRSTRLEN];
	char **out = NULL;
	size_t count = 0;

	*ips = NULL;
	*n = 0;
	if (getifaddrs(&list) != 0)
		return cmi_error(CMICRO_EIO, "cannot list network interfaces for the certificate");
	for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
		char **grown;

		if (i->ifa_addr == NULL || addr_text(i->ifa_addr, text, sizeof(text)) != 0)
			continue;
		grown = realloc(out, (count + 1) * sizeof(*out));
		if (grown == NULL || (grown[count] = strdup(text)) == NULL) {
			out = grown ? grown : out;
			cmi_brk_free_strings(out, count);
			freeifaddrs(list);
			return cmi_error(CMICRO_ENOMEM, "out of memory listing local addresses");
		}
		out = grown;
		count++;
	}
	freeifaddrs(list);
	*ips = out;
	*n = count;
	return 0;
}

int cmi_brk_join_host_port(const char *host, int port, char *out, size_t size)
{
	if (strchr(host, ':') != NULL)
		cmi_fmt(out, size, "[%s]:%d", host, port);
	else
		cmi_fmt(out, size, "%s:%d", host, port);
	return 0;
}

void cmi_brk_log_flush(struct brk_ratelimit *rl, enum cmicro_log_level level, const char *msg_id,
		       const char *what)
{
	if (rl->skipped > 0)
		cmi_log(level, "broker", msg_id, "%lu more %s were not logged in the last %.0f s",
			rl->skipped, what, BRK_LOG_INTERVAL_S);
	rl->skipped = 0;
	rl->last = 0;
}

void cmi_brk_log_limited(struct brk_ratelimit *rl, enum cmicro_log_level level,
			 const char *msg_id, const char *fmt, ...)
{
	double now = cmi_now_mono();
	char text[1024];
	va_list ap;

	if (rl->last != 0 && now - rl->last < BRK_LOG_INTERVAL_S) {
		rl->skipped++;
		return;
	}
	rl->last = now;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (rl->skipped > 0)
		cmi_log(level, "broker", msg_id, "%s (%lu more like it not logged in the last %.0f s)",
			text, rl->skipped, BRK_LOG_INTERVAL_S);
	else
		cmi_log(level, "broker", msg_id, "%s", text);
	rl->skipped = 0;
}
