/*
 * Handler threads. Each subscription keeps its own FIFO of messages and sits
 * at most once in the run queue, so one thread at a time runs it (in
 * arrival order) while the other threads serve other subscriptions.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

bool cmi_brk_enqueue(struct cmicro_broker *b, struct cmicro_subscription *sub,
		     struct brk_job *job)
{
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
		pthread_cond_broadcast(&b->cond);
	}
	return true;
}

/* Takes the next subscription with work (lock held); NULL when stopping. */
static struct cmicro_subscription *wk_next(struct cmicro_broker *b)
{
	struct cmicro_subscription *sub;

	while (b->run_head == NULL && !b->stopping)
		pthread_cond_wait(&b->cond, &b->lock);
	sub = b->run_head;
	if (sub == NULL)
		return NULL;
	b->run_head = sub->next_run;
	if (b->run_head == NULL)
		b->run_tail = NULL;
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

static void *wk_main(void *arg)
{
	struct cmicro_broker *b = arg;

	pthread_mutex_lock(&b->lock);
	for (;;) {
		struct cmicro_subscription *sub = wk_next(b);

		if (sub == NULL)
			break;
		wk_run_one(b, sub);
		pthread_mutex_unlock(&b->lock);
		cmi_brk_sub_release(sub); /* the run queue's reference */
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

int cmi_brk_workers_start(struct cmicro_broker *b)
{
	b->workers = cmi_calloc((size_t)b->opts.handler_threads, sizeof(*b->workers));
	if (b->workers == NULL)
		return CMICRO_ENOMEM;
	for (int i = 0; i < b->opts.handler_threads; i++) {
		if (cmi_thread_create(&b->workers[i], wk_main, b) != 0)
			return cmi_error(CMICRO_EIO, "cannot start handler thread %d of %d", i + 1,
					 b->opts.handler_threads);
		b->n_workers++;
	}
	return 0;
}

void cmi_brk_workers_stop(struct cmicro_broker *b)
{
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	for (int i = 0; i < b->n_workers; i++)
		pthread_join(b->workers[i], NULL);
	free(b->workers);
	b->workers = NULL;
	b->n_workers = 0;

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
