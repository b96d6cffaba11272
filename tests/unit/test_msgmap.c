/*
 * Unit tests for msgmap: set, replace, forget, and eviction of the least
 * recently set entry past the bound.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "rollbackd/msgmap.h"

Test(msgmap, set_get_replace_forget)
{
	struct msgmap *m = msgmap_new(10);
	cr_assert_not_null(m);
	cr_assert_null(msgmap_get(m, "inc-1"));
	cr_assert_eq(msgmap_set(m, "inc-1", "C1 1.1"), 0);
	cr_assert_eq(msgmap_set(m, "inc-2", "C2 2.2"), 0);
	cr_assert_str_eq(msgmap_get(m, "inc-1"), "C1 1.1");
	cr_assert_eq(msgmap_set(m, "inc-1", "C1 1.5"), 0);
	cr_assert_str_eq(msgmap_get(m, "inc-1"), "C1 1.5");
	cr_assert_eq(msgmap_count(m), 2);
	msgmap_forget(m, "inc-1");
	msgmap_forget(m, "inc-9"); /* not there: nothing */
	cr_assert_null(msgmap_get(m, "inc-1"));
	cr_assert_str_eq(msgmap_get(m, "inc-2"), "C2 2.2");
	cr_assert_eq(msgmap_count(m), 1);
	msgmap_free(m);
}

Test(msgmap, the_least_recently_set_goes_past_the_bound)
{
	struct msgmap *m = msgmap_new(3);
	char k[16];
	for (int i = 0; i < 3; i++) {
		snprintf(k, sizeof(k), "inc-%d", i);
		cr_assert_eq(msgmap_set(m, k, k), 0);
	}
	cr_assert_eq(msgmap_set(m, "inc-0", "again"), 0); /* now the newest */
	cr_assert_eq(msgmap_set(m, "inc-3", "new"), 0);
	cr_assert_eq(msgmap_count(m), 3);
	cr_assert_null(msgmap_get(m, "inc-1"), "the oldest is forgotten");
	cr_assert_str_eq(msgmap_get(m, "inc-0"), "again");
	cr_assert_str_eq(msgmap_get(m, "inc-2"), "inc-2");
	cr_assert_str_eq(msgmap_get(m, "inc-3"), "new");
	/* Many keys in few buckets' worth: still bounded, still found. */
	for (int i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		cr_assert_eq(msgmap_set(m, k, k), 0);
	}
	cr_assert_eq(msgmap_count(m), 3);
	cr_assert_str_eq(msgmap_get(m, "k4999"), "k4999");
	cr_assert_null(msgmap_get(m, "k4996"));
	msgmap_free(m);
}
