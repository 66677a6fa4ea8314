/* Message ids: the UUID form go-micro uses, no repeats within a process,
 * different ids from different processes and after a fork. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "testkit.h"

#define ID_COUNT 200000

static void assert_uuid_v4(const char *id)
{
	assert_int_equal(strlen(id), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			assert_int_equal(id[i], '-');
			continue;
		}
		if (strchr("0123456789abcdef", id[i]) == NULL)
			fail_msg("id %s has '%c' at %d", id, id[i], i);
	}
	assert_int_equal(id[14], '4');
	if (strchr("89ab", id[19]) == NULL)
		fail_msg("id %s lacks the RFC 4122 variant", id);
}

static int compare_ids(const void *a, const void *b)
{
	return memcmp(a, b, CMI_BRK_ID_SIZE);
}

static void test_message_id_format_and_unique(void **state)
{
	char (*ids)[CMI_BRK_ID_SIZE] = calloc(ID_COUNT, CMI_BRK_ID_SIZE);

	(void)state;
	assert_non_null(ids);
	for (size_t i = 0; i < ID_COUNT; i++) {
		TK_OK(cmi_brk_message_id(ids[i]));
		assert_uuid_v4(ids[i]);
	}
	qsort(ids, ID_COUNT, CMI_BRK_ID_SIZE, compare_ids);
	for (size_t i = 1; i < ID_COUNT; i++) {
		if (strcmp(ids[i - 1], ids[i]) == 0)
			fail_msg("id %s repeated", ids[i]);
	}
	free(ids);
}

/* Ids from consecutive counters must not share long prefixes, so a hash
 * table keyed on any part of an id spreads them. */
static void test_message_id_counter_mixed(void **state)
{
	char a[CMI_BRK_ID_SIZE], b[CMI_BRK_ID_SIZE];
	int differing = 0;

	(void)state;
	TK_OK(cmi_brk_message_id(a));
	TK_OK(cmi_brk_message_id(b));
	for (int i = 19; i < 36; i++)
		differing += a[i] != b[i];
	if (differing < 8)
		fail_msg("consecutive ids %s and %s differ in %d of the last 17 characters", a, b,
			 differing);
}

/* Reads one id of a forked child through a pipe. */
static void child_id(char out[CMI_BRK_ID_SIZE])
{
	int fds[2];
	pid_t pid;
	int status = 0;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char id[CMI_BRK_ID_SIZE];

		close(fds[0]);
		if (cmi_brk_message_id(id) != 0 || write(fds[1], id, sizeof(id)) != sizeof(id))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], out, CMI_BRK_ID_SIZE), CMI_BRK_ID_SIZE);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A child that kept its parent's seed and counter would send the ids the
 * parent sends next. */
static void test_message_id_fork_reseeds(void **state)
{
	char parent[CMI_BRK_ID_SIZE], next[CMI_BRK_ID_SIZE];
	char first[CMI_BRK_ID_SIZE], second[CMI_BRK_ID_SIZE];

	(void)state;
	TK_OK(cmi_brk_message_id(parent));
	child_id(first);
	child_id(second);
	TK_OK(cmi_brk_message_id(next));
	assert_uuid_v4(first);
	assert_string_not_equal(first, next);
	assert_string_not_equal(first, second);
	/* The random part (before the counter bits) differs too. */
	assert_memory_not_equal(first, parent, 18);
	assert_memory_not_equal(first, second, 18);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_id_format_and_unique),
		cmocka_unit_test(test_message_id_counter_mixed),
		cmocka_unit_test(test_message_id_fork_reseeds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
