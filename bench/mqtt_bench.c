/*
 * The mosquitto peer of the benchmark, with libmosquitto over TLS 1.3 and
 * verification on (CA file, host name 127.0.0.1 checked against the IP SAN).
 *
 *   mqtt_bench sub CA PORT QOS COUNT TIMEOUT_S
 *   mqtt_bench pub CA PORT QOS COUNT SIZE INFLIGHT TIMEOUT_S
 *
 * The subscriber prints "READY pid=P" once subscribed and the RESULT line of
 * bench_common.h at the end. The publisher keeps INFLIGHT messages
 * unacknowledged: with QoS 1 a message counts until its PUBACK arrives; QoS 0
 * has no acknowledgement, so there a message counts only until libmosquitto
 * has written it to the socket.
 */
#include <mosquitto.h>
#include <unistd.h>

#include "bench_common.h"

#define MQTT_TOPIC "bench"

struct mqtt_state {
	struct bench_record rec;
	int qos;
	int ready;
	int done;
	long acked;
};

static void die(const char *operation, int rc)
{
	fprintf(stderr, "mqtt_bench: %s failed: %s\n", operation, mosquitto_strerror(rc));
	exit(2);
}

static void on_connect(struct mosquitto *m, void *user, int rc)
{
	struct mqtt_state *st = user;

	if (rc != 0) {
		fprintf(stderr, "mqtt_bench: connection refused: %s\n", mosquitto_connack_string(rc));
		exit(2);
	}
	if (st->rec.expected > 0)
		mosquitto_subscribe(m, NULL, MQTT_TOPIC, st->qos);
	else
		st->ready = 1;
}

static void on_subscribe(struct mosquitto *m, void *user, int mid, int n, const int *granted)
{
	struct mqtt_state *st = user;

	(void)m;
	(void)mid;
	(void)n;
	(void)granted;
	st->ready = 1;
	printf("READY pid=%ld\n", (long)getpid());
	fflush(stdout);
}

static void on_message(struct mosquitto *m, void *user, const struct mosquitto_message *msg)
{
	struct mqtt_state *st = user;

	if (bench_record_add(&st->rec, msg->payload, (size_t)msg->payloadlen) && !st->done) {
		st->done = 1;
		mosquitto_disconnect(m);
	}
}

static void on_publish(struct mosquitto *m, void *user, int mid)
{
	struct mqtt_state *st = user;

	(void)m;
	(void)mid;
	st->acked++;
}

static struct mosquitto *mqtt_connect(const char *ca, int port, struct mqtt_state *st)
{
	struct mosquitto *m = mosquitto_new(NULL, true, st);
	int rc;

	if (m == NULL)
		die("mosquitto_new", MOSQ_ERR_NOMEM);
	rc = mosquitto_tls_set(m, ca, NULL, NULL, NULL, NULL);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_tls_opts_set(m, 1, "tlsv1.3", NULL);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	if (rc != MOSQ_ERR_SUCCESS)
		die("TLS set-up", rc);
	mosquitto_connect_callback_set(m, on_connect);
	mosquitto_subscribe_callback_set(m, on_subscribe);
	mosquitto_message_callback_set(m, on_message);
	mosquitto_publish_callback_set(m, on_publish);
	rc = mosquitto_connect(m, "127.0.0.1", port, 60);
	if (rc != MOSQ_ERR_SUCCESS)
		die("connect", rc);
	return m;
}

static int run_sub(char **argv)
{
	struct mqtt_state st = {.qos = (int)bench_parse_long(argv[2], "QOS", 0, 1)};
	long count = bench_parse_long(argv[3], "COUNT", 1, 100000000);
	int64_t deadline = bench_now_ns() + bench_parse_long(argv[4], "TIMEOUT_S", 1, 3600) * 1000000000LL;
	struct mosquitto *m;
	int rc;

	if (bench_record_init(&st.rec, count) != 0)
		return 2;
	m = mqtt_connect(argv[0], (int)bench_parse_long(argv[1], "PORT", 1, 65535), &st);
	while (!st.done && bench_now_ns() < deadline) {
		rc = mosquitto_loop(m, 100, 1);
		if (rc != MOSQ_ERR_SUCCESS && !st.done)
			die("mosquitto_loop", rc);
	}
	bench_record_print(&st.rec);
	rc = st.rec.received >= count ? 0 : 1;
	mosquitto_destroy(m);
	bench_record_free(&st.rec);
	return rc;
}

static int run_pub(char **argv)
{
	struct mqtt_state st = {.qos = (int)bench_parse_long(argv[2], "QOS", 0, 1)};
	long count = bench_parse_long(argv[3], "COUNT", 1, 100000000);
	long size = bench_parse_long(argv[4], "SIZE", BENCH_STAMP_LEN, 1 << 20);
	long inflight = bench_parse_long(argv[5], "INFLIGHT", 1, 65535);
	int64_t deadline = bench_now_ns() + bench_parse_long(argv[6], "TIMEOUT_S", 1, 3600) * 1000000000LL;
	unsigned char *body = bench_payload_new((size_t)size);
	struct mosquitto *m = mqtt_connect(argv[0], (int)bench_parse_long(argv[1], "PORT", 1, 65535), &st);
	long sent = 0;
	int rc = mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, (int)inflight);

	while (rc == MOSQ_ERR_SUCCESS && st.acked < count && bench_now_ns() < deadline) {
		while (st.ready && sent < count && sent - st.acked < inflight && rc == 0) {
			bench_stamp(body);
			rc = mosquitto_publish(m, NULL, MQTT_TOPIC, (int)size, body, st.qos, false);
			sent++;
		}
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_loop(m, 10, 1);
	}
	fprintf(stderr, "PUB ok=%ld failed=%ld%s\n", st.acked, count - st.acked,
		rc != MOSQ_ERR_SUCCESS ? " (connection lost)" : "");
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	free(body);
	return st.acked >= count ? 0 : 1;
}

int main(int argc, char **argv)
{
	int rc;

	mosquitto_lib_init();
	if (argc == 7 && strcmp(argv[1], "sub") == 0) {
		rc = run_sub(argv + 2);
	} else if (argc == 9 && strcmp(argv[1], "pub") == 0) {
		rc = run_pub(argv + 2);
	} else {
		fprintf(stderr, "usage: mqtt_bench sub CA PORT QOS COUNT TIMEOUT_S\n"
				"       mqtt_bench pub CA PORT QOS COUNT SIZE INFLIGHT TIMEOUT_S\n");
		rc = 2;
	}
	mosquitto_lib_cleanup();
	return rc;
}
