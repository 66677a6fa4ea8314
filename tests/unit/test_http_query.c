/* The server's query parameter look-up: decoding, the first match, and the
 * malformed queries that libevent's evhttp_parse_query_str rejects whole. */
#include <stdlib.h>
#include <string.h>

#include "http/http_server_int.h"
#include "testkit.h"

struct query_case {
	const char *query;
	const char *name;
	const char *expected; /* NULL: no value */
};

static const struct query_case cases[] = {
	{"id=topic-1234", "id", "topic-1234"},
	{"ID=upper", "id", "upper"},
	{"a=1&id=x%20y+z", "id", "x y z"},
	{"id=first&id=second", "id", "first"},
	{"id=%zz%4", "id", "%zz%4"},
	{"id=%41%62", "id", "Ab"},
	{"id=", "id", ""},
	{"id=a&", "id", "a"},
	{"a=1", "id", NULL},
	{"", "id", NULL},
	{"id", "id", NULL},
	{"=x&id=a", "id", NULL},
	{"id=a&&b=c", "id", NULL},
	{"id=a&b", "id", NULL},
	{"&id=a", "id", NULL},
	{"i%64=a", "id", NULL},
};

static void test_query_value_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = cmi_http_query_value(cases[i].query, cases[i].name);

		if (cases[i].expected == NULL) {
			if (got != NULL)
				fail_msg("query \"%s\": expected no value of %s, got \"%s\"",
					 cases[i].query, cases[i].name, got);
			continue;
		}
		if (got == NULL)
			fail_msg("query \"%s\": no value of %s, expected \"%s\"", cases[i].query,
				 cases[i].name, cases[i].expected);
		assert_string_equal(got, cases[i].expected);
		free(got);
	}
}

static void test_query_value_null_query(void **state)
{
	(void)state;
	assert_null(cmi_http_query_value(NULL, "id"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_value_cases),
		cmocka_unit_test(test_query_value_null_query),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
