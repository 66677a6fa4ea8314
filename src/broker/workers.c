/*
 * Handler threads. Each subscription keeps its own FIFO of messages and sits
 * at most once in the run queue, so one thread at a time runs it (in
 * arrival order) while the other threads serve other subscriptions.
 *
 * The threads wait on a condition variable of their own, not on b->cond:
 * b->cond also wakes the control thread and the callers of flush and
 * unsubscribe, and broadcasting it for every message woke every thread of
 * the broker twice per message. A thread is woken only when a subscription
 * enters the run queue and a thread is idle.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker_int.h"

/* A thread that handles several messages in a row holds their replies and
 * releases them when the run queue is empty or, between two messages, once
 * they were held this long. The I/O thread then wakes once and writes them
 * together instead of once per message. A slow handler does not delay them
 * either: the I/O thread takes held replies within 16 ms on its own
 * (cmi_http_reply_hold). */
#define WK_REPLY_HOLD_NS 50000L

/* The handler threads' state. b->workers points at threads, so the pool
 * needs no field of its own in struct cmicro_broker. */
struct wk_pool {
	pthread_cond_t wake; /* work entered the run queue, or the broker stops */
	int idle;            /* threads waiting on wake (b->lock) */
	pthread_t threads[];
};

static struct wk_pool *wk_pool_of(struct cmicro_broker *b)
{
	if (b->workers == NULL)
		return NULL;
	return (struct wk_pool *)((char *)b->workers - offsetof(struct wk_pool, threads));
}

/* Wakes one idle thread (lock held). */
static void wk_wake_one(struct cmicro_broker *b)
{
	struct wk_pool *pool = wk_pool_of(b);

	if (pool != NULL && pool->idle > 0)
		pthread_cond_signal(&pool->wake);
}

/* A handler thread woken while the I/O thread still holds b->lock would
 * only block on it again, which cost one more futex call per message under
 * strace. */
void cmi_brk_enqueue(struct cmicro_broker *b, struct cmicro_subscription *sub,
		     struct brk_job *job, pthread_cond_t **wake)
{
	struct wk_pool *pool = wk_pool_of(b);

	if (sub->jobs_tail != NULL)
		sub->jobs_tail->next = job;
	else
		sub->jobs_head = job;
	sub->jobs_tail = job;
	sub->queued++;
	if (!sub->scheduled) {
		sub->scheduled = true;
		atomic_fetch_add(&sub->refs, 1); /* the run queue's reference */
		sub->next_run = NULL;
		if (b->run_tail != NULL)
			b->run_tail->next_run = sub;
		else
			b->run_head = sub;
		b->run_tail = sub;
		if (pool != NULL && pool->idle > 0)
			*wake = &pool->wake;
	}
}

/* Takes the next subscription with work (lock held); NULL when stopping.
 * When more wait behind it, one more idle thread is woken to take them. */
static struct cmicro_subscription *wk_next(struct cmicro_broker *b, struct wk_pool *pool)
{
	struct cmicro_subscription *sub;

	while (b->run_head == NULL && !b->stopping) {
		pool->idle++;
		pthread_cond_wait(&pool->wake, &b->lock);
		pool->idle--;
	}
	sub = b->run_head;
	if (sub == NULL)
		return NULL;
	b->run_head = sub->next_run;
	if (b->run_head == NULL)
		b->run_tail = NULL;
	else
		wk_wake_one(b);
	sub->next_run = NULL;
	return sub;
}

/* Returns true when sub handled a message with the same Micro-Id recently.
 * Only a handler's success records the id, so a message whose handler
 * failed is handled again when the publisher retries it. A message without
 * the header (from a publisher that sets none) always reaches the handler. */
static bool wk_duplicate(struct cmicro_broker *b, struct cmicro_subscription *sub,
			 const struct brk_delivery *d)
{
	const char *id = sub->dedup ? cmicro_message_get_header(d->msg, CMI_ID_HEADER) : NULL;

	if (id == NULL || !cmi_dedup_seen(sub->dedup, id))
		return false;
	atomic_fetch_add(&b->stats.duplicates, 1);
	cmi_log(CMICRO_LOG_DEBUG, "broker", "BROKER-DUPLICATE",
		"message %s of topic %s was handled before by node %s; responded 200 without "
		"calling the handler",
		id, d->topic, sub->node_id);
	return true;
}

static int wk_call(struct cmicro_broker *b, struct cmicro_subscription *sub,
		   struct brk_delivery *d)
{
	int rc;

	if (wk_duplicate(b, sub, d))
		return 0;
	atomic_fetch_add(&b->stats.received, 1);
	rc = sub->fn(sub->user, d->topic, d->msg);
	if (rc == 0 && sub->dedup != NULL)
		cmi_dedup_add(sub->dedup, cmicro_message_get_header(d->msg, CMI_ID_HEADER));
	if (rc != 0) {
		atomic_fetch_add(&b->stats.handler_errors, 1);
		cmi_brk_log_limited(&sub->rl_error, CMICRO_LOG_WARNING, "BROKER-HANDLER-ERROR",
				    "handler of topic %s (node %s) returned %d; answered 500 so "
				    "the publisher retries",
				    d->topic, sub->node_id, rc);
	}
	return rc != 0 ? 1 : 0;
}

/* Runs one message of sub, then puts sub back at the end of the run queue
 * when it has more (lock held on entry and exit). */
static void wk_run_one(struct cmicro_broker *b, struct cmicro_subscription *sub)
{
	struct brk_job *job = sub->jobs_head;
	int outcome;

	if (job == NULL || sub->broker == NULL) {
		sub->scheduled = false;
		return;
	}
	sub->jobs_head = job->next;
	if (sub->jobs_head == NULL)
		sub->jobs_tail = NULL;
	sub->queued--;
	sub->running = true;
	sub->runner = pthread_self();
	pthread_mutex_unlock(&b->lock);

	outcome = wk_call(b, sub, job->d);
	cmi_brk_delivery_done(job->d, outcome);
	free(job);

	pthread_mutex_lock(&b->lock);
	sub->running = false;
	/* Only sub_stop waits for running to clear, and it detaches sub
	 * (broker NULL) under the lock before it waits. */
	if (sub->broker == NULL)
		pthread_cond_broadcast(&b->cond);
	if (sub->jobs_head != NULL && sub->broker != NULL) {
		atomic_fetch_add(&sub->refs, 1);
		if (b->run_tail != NULL)
			b->run_tail->next_run = sub;
		else
			b->run_head = sub;
		b->run_tail = sub;
	} else {
		sub->scheduled = false;
	}
}

void cmi_brk_run_inline(struct cmicro_broker *b, struct cmicro_subscription *sub,
			struct brk_delivery *d)
{
	int outcome;

	pthread_mutex_lock(&b->lock);
	if (sub->broker == NULL) {
		/* Unsubscribed since the request was matched: 503, as for a queued
		 * message of a subscription that closes. */
		pthread_mutex_unlock(&b->lock);
		cmi_brk_delivery_done(d, -1);
		return;
	}
	/* unsubscribe from another thread waits for running to clear. */
	sub->running = true;
	sub->runner = pthread_self();
	pthread_mutex_unlock(&b->lock);

	outcome = wk_call(b, sub, d);
	cmi_brk_delivery_done(d, outcome);

	pthread_mutex_lock(&b->lock);
	sub->running = false;
	if (sub->broker == NULL)
		pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

void cmi_brk_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmicro_broker *b = arg;
	pthread_cond_t *wake = b->wake_pending;

	(void)fd;
	(void)what;
	b->wake_pending = NULL;
	/* A thread that became busy meanwhile looks at the run queue before it
	 * waits, so a signal that wakes no thread strands no message. */
	if (wake != NULL)
		pthread_cond_signal(wake);
}

static long wk_ns_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - start->tv_sec) * 1000000000L + (now.tv_nsec - start->tv_nsec);
}

/* The threads are joined before the broker frees its HTTP server, and each
 * releases its held replies before it waits or ends. */
static void *wk_main(void *arg)
{
	struct cmicro_broker *b = arg;
	struct wk_pool *pool = wk_pool_of(b);
	struct timespec held_since = {0, 0};
	bool holding = false;

	pthread_mutex_lock(&b->lock);
	for (;;) {
		struct cmicro_subscription *sub;

		if (holding &&
		    (b->run_head == NULL || wk_ns_since(&held_since) >= WK_REPLY_HOLD_NS)) {
			pthread_mutex_unlock(&b->lock);
			cmi_http_reply_release();
			holding = false;
			pthread_mutex_lock(&b->lock);
		}
		sub = wk_next(b, pool);
		if (sub == NULL)
			break;
		if (!holding) {
			cmi_http_reply_hold(b->server);
			clock_gettime(CLOCK_MONOTONIC, &held_since);
			holding = true;
		}
		wk_run_one(b, sub);
		pthread_mutex_unlock(&b->lock);
		cmi_brk_sub_release(sub); /* the run queue's reference */
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	if (holding)
		cmi_http_reply_release();
	return NULL;
}

void cmi_brk_workers_release(struct cmicro_broker *b)
{
	struct wk_pool *pool = b->workers_retired;

	b->workers_retired = NULL;
	if (pool != NULL) {
		pthread_cond_destroy(&pool->wake);
		free(pool);
	}
}

int cmi_brk_workers_start(struct cmicro_broker *b)
{
	struct wk_pool *pool;

	if (b->opts.inline_handlers)
		return 0;
	pool = cmi_calloc(1, sizeof(*pool) + (size_t)b->opts.handler_threads *
						 sizeof(pool->threads[0]));
	if (pool == NULL)
		return CMICRO_ENOMEM;
	pthread_cond_init(&pool->wake, NULL);

	/* Under the lock: the I/O thread reads b->workers in cmi_brk_enqueue. */
	pthread_mutex_lock(&b->lock);
	b->workers = pool->threads;
	pthread_mutex_unlock(&b->lock);
	for (int i = 0; i < b->opts.handler_threads; i++) {
		if (cmi_thread_create(&pool->threads[i], wk_main, b) != 0)
			return cmi_error(CMICRO_EIO, "cannot start handler thread %d of %d", i + 1,
					 b->opts.handler_threads);
		b->n_workers++;
	}
	return 0;
}

void cmi_brk_workers_stop(struct cmicro_broker *b)
{
	struct wk_pool *pool;

	pthread_mutex_lock(&b->lock);
	pool = wk_pool_of(b);
	b->stopping = true;
	pthread_cond_broadcast(&b->cond);
	if (pool != NULL)
		pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&b->lock);
	for (int i = 0; pool != NULL && i < b->n_workers; i++)
		pthread_join(pool->threads[i], NULL);

	/* The I/O thread may still enqueue until the loop stops; it then finds
	 * no pool to wake. It may also be about to signal the condition
	 * variable of a pool it found before, so the pool is freed only after
	 * the loop stopped (cmi_brk_workers_release). */
	pthread_mutex_lock(&b->lock);
	b->workers = NULL;
	b->n_workers = 0;
	pthread_mutex_unlock(&b->lock);
	if (pool != NULL)
		b->workers_retired = pool;

	/* Subscriptions are gone by now; drop what the run queue still holds. */
	pthread_mutex_lock(&b->lock);
	while (b->run_head != NULL) {
		struct cmicro_subscription *sub = b->run_head;

		b->run_head = sub->next_run;
		sub->scheduled = false;
		pthread_mutex_unlock(&b->lock);
		cmi_brk_sub_release(sub);
		pthread_mutex_lock(&b->lock);
	}
	b->run_tail = NULL;
	pthread_mutex_unlock(&b->lock);
}
