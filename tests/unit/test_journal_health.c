/*
 * Unit tests for journal's checks of its own file under a running writer
 * (journal_healthy) and for open --recover, through the real writer thread.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rollbackd/journal.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"

static char dir[64], path[128];

static void setup(void)
{
	log_set_level(LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/rollbackd-journal-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 0);
	metrics_free_all();
}

static struct journal *open_with(bool recover)
{
	struct journal_options jo = {.state_dir = dir, .recover = recover};
	struct journal *j = NULL;
	struct error err = {{0}};
	cr_assert_eq(journal_open(&jo, &j, &err), 0, "%s", err.msg);
	return j;
}

static void append_durable(struct journal *j, int n)
{
	uint64_t t = 0;
	for (int i = 0; i < n; i++)
		cr_assert_eq(journal_append(j, "test", "", ",\"n\":1", 6, &t), 0);
	for (int i = 0; i < 500 && !journal_durable(j, t); i++)
		usleep(10000);
	cr_assert(journal_durable(j, t));
}

/* The reason journal_healthy gives within 2 s, or "" when it stays healthy. */
static void wait_unhealthy(struct journal *j, char *why, size_t n)
{
	for (int i = 0; i < 200; i++) {
		if (!journal_healthy(j, why, n))
			return;
		usleep(10000);
	}
	why[0] = '\0';
}

Test(journal_health, healthy_while_left_alone, .init = setup, .fini = cleanup)
{
	struct journal *j = open_with(false);
	char why[700] = "x";
	append_durable(j, 3);
	usleep(600 * 1000); /* two idle checks */
	cr_assert(journal_healthy(j, why, sizeof(why)));
	cr_assert_str_eq(why, "");
	journal_close(j, 1000);
}

Test(journal_health, removed_file_stops_writing, .init = setup, .fini = cleanup)
{
	struct journal *j = open_with(false);
	char why[700], want[700];
	append_durable(j, 2);
	cr_assert_eq(unlink(path), 0);
	wait_unhealthy(j, why, sizeof(why));
	snprintf(want, sizeof(want),
		 "%s was removed while rollbackd was running; nothing more is written, no action "
		 "starts and webhooks get 503 until rollbackd is restarted (see 'rollbackd serve "
		 "--recover')",
		 path);
	cr_assert_str_eq(why, want);
	cr_assert_not(journal_available(j));
	uint64_t t = 0;
	cr_assert_eq(journal_append(j, "test", "", NULL, 0, &t), 0, "still buffered");
	usleep(300 * 1000);
	cr_assert_not(journal_durable(j, t));
	struct stat st;
	cr_assert_neq(stat(path, &st), 0, "nothing recreated the file");
	journal_close(j, 0);
}

Test(journal_health, appended_by_another_writer, .init = setup, .fini = cleanup)
{
	struct journal *j = open_with(false);
	char why[700];
	append_durable(j, 1);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	FILE *f = fopen(path, "a");
	fputs("{\"x\":1}\n", f);
	fclose(f);
	wait_unhealthy(j, why, sizeof(why));
	char want[300];
	snprintf(want, sizeof(want),
		 "%s was written by something else while rollbackd was running (%lld bytes, "
		 "rollbackd wrote %lld);",
		 path, (long long)st.st_size + 8, (long long)st.st_size);
	cr_assert(strncmp(why, want, strlen(want)) == 0, "%s", why);
	journal_close(j, 0);
}

Test(journal_recover, refuses_then_moves_aside, .init = setup, .fini = cleanup)
{
	struct journal *j = open_with(false);
	append_durable(j, 4);
	journal_close(j, 1000);
	/* Flip a byte in the third record. */
	FILE *f = fopen(path, "r+");
	char line[4096];
	long off = 0;
	for (int i = 0; i < 2; i++) {
		cr_assert_not_null(fgets(line, sizeof(line), f));
		off += (long)strlen(line);
	}
	fseek(f, off + 2, SEEK_SET);
	fputc('X', f); /* {"Xeq": the record no longer hashes */
	fclose(f);

	struct journal_options jo = {.state_dir = dir};
	struct error err = {{0}};
	cr_assert_eq(journal_open(&jo, &j, &err), -1);
	cr_assert(strstr(err.msg, "record seq 3 is bad"), "%s", err.msg);
	cr_assert(strstr(err.msg, "'rollbackd serve --recover'"), "%s", err.msg);

	j = open_with(true);
	char what[1200];
	cr_assert(journal_recovered(j, what, sizeof(what)));
	cr_assert(strncmp(what, "record seq 3 at journal.jsonl offset ", 37) == 0, "%s", what);
	cr_assert_eq(journal_seq(j), 3, "the journal_recovered record is seq 3");
	append_durable(j, 1);
	journal_close(j, 1000);
	char seg[160];
	snprintf(seg, sizeof(seg), "%s/journal.000001.jsonl", dir);
	struct stat st;
	cr_assert_eq(stat(seg, &st), 0);
	cr_assert_eq(st.st_size, off, "the good part is the closed segment");
}
