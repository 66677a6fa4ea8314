/*
 * The duplicate filter of a subscription: the digests of the last N message
 * ids in a ring, indexed by a chained hash table, so a look-up and an
 * insertion cost O(1) and memory stays fixed. Digests (the first 128 bits
 * of SHA-256) bound the memory whatever the length of a caller-set id; two
 * different ids collide with negligible probability.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "broker/broker_int.h"

#define DD_KEY_BYTES  16
#define DD_NONE       UINT32_MAX
#define DD_WINDOW_MAX (1u << 24)

struct dd_slot {
	unsigned char key[DD_KEY_BYTES];
	uint32_t next; /* next slot in the same bucket, or DD_NONE */
};

struct cmi_dedup {
	size_t window;
	size_t count;
	size_t oldest;     /* ring index of the oldest id */
	size_t mask;       /* buckets - 1; buckets is a power of two */
	uint32_t *buckets; /* first slot of each bucket, or DD_NONE */
	struct dd_slot *slots;
};

int cmi_dedup_new(size_t window, struct cmi_dedup **out)
{
	struct cmi_dedup *d;
	size_t buckets = 1;

	*out = NULL;
	if (window == 0 || window > DD_WINDOW_MAX)
		return cmi_error(CMICRO_EINVAL,
		                 "de-duplication window of %zu ids is out of range; "
		                 "use 1 to %u",
		                 window, DD_WINDOW_MAX);
	while (buckets < window * 2)
		buckets <<= 1;
	d = cmi_calloc(1, sizeof(*d));
	if (d == NULL)
		return CMICRO_ENOMEM;
	d->window = window;
	d->mask = buckets - 1;
	d->buckets = malloc(buckets * sizeof(*d->buckets));
	d->slots = cmi_calloc(window, sizeof(*d->slots));
	if (d->buckets == NULL || d->slots == NULL) {
		cmi_dedup_free(d);
		return cmi_error(CMICRO_ENOMEM,
		                 "out of memory for a de-duplication window of %zu ids", window);
	}
	memset(d->buckets, 0xff, buckets * sizeof(*d->buckets));
	*out = d;
	return 0;
}

void cmi_dedup_free(struct cmi_dedup *d)
{
	if (d == NULL)
		return;
	free(d->buckets);
	free(d->slots);
	free(d);
}

static bool dd_digest(const char *id, unsigned char key[DD_KEY_BYTES])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_Digest(id, strlen(id), md, &len, EVP_sha256(), NULL) != 1 || len < DD_KEY_BYTES) {
		/* The caller treats the id as new, so the handler still runs. */
		cmi_ossl_drain(NULL, 0);
		return false;
	}
	memcpy(key, md, DD_KEY_BYTES);
	return true;
}

static size_t dd_bucket(const struct cmi_dedup *d, const unsigned char *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)h & d->mask;
}

static bool dd_find(const struct cmi_dedup *d, const unsigned char *key)
{
	for (uint32_t i = d->buckets[dd_bucket(d, key)]; i != DD_NONE; i = d->slots[i].next) {
		if (memcmp(d->slots[i].key, key, DD_KEY_BYTES) == 0)
			return true;
	}
	return false;
}

bool cmi_dedup_seen(const struct cmi_dedup *d, const char *id)
{
	unsigned char key[DD_KEY_BYTES];

	if (d == NULL || id == NULL || !dd_digest(id, key))
		return false;
	return dd_find(d, key);
}

/* Unlinks ring slot i from its bucket chain. */
static void dd_unlink(struct cmi_dedup *d, uint32_t i)
{
	uint32_t *link = &d->buckets[dd_bucket(d, d->slots[i].key)];

	while (*link != DD_NONE && *link != i)
		link = &d->slots[*link].next;
	if (*link == i)
		*link = d->slots[i].next;
}

void cmi_dedup_add(struct cmi_dedup *d, const char *id)
{
	unsigned char key[DD_KEY_BYTES];
	size_t at, bucket;

	if (d == NULL || id == NULL || !dd_digest(id, key) || dd_find(d, key))
		return;
	if (d->count == d->window) {
		dd_unlink(d, (uint32_t)d->oldest);
		at = d->oldest;
		d->oldest = (d->oldest + 1) % d->window;
	} else {
		at = (d->oldest + d->count) % d->window;
		d->count++;
	}
	bucket = dd_bucket(d, key);
	memcpy(d->slots[at].key, key, DD_KEY_BYTES);
	d->slots[at].next = d->buckets[bucket];
	d->buckets[bucket] = (uint32_t)at;
}
