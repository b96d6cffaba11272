/*
 * The console's journal index alone: its heap and RSS after indexing N
 * incidents at limits.max_incidents MAX, no daemon around it.
 *
 *     build/ui_index_memory [N [MAX]]   (default 1000000 100000)
 *
 * The lines come as bench/memory.py's notify-mode incidents write them: in
 * batches of 1 000 incidents, a decision (with a value) and a notify_sent
 * each, then a resolved for every other one (3 or 4 records an incident).
 * They are handed to index_line directly, in one thread, so the figures
 * are the index's own: mallinfo2's bytes in use, and VmRSS before and
 * after malloc_trim. The thread's scan buffer is not counted (no scan).
 */
#include "ui.c" /* the journal index is static */

#include <malloc.h>

static double rss_mib(void)
{
	char l[256];
	double v = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(l, sizeof(l), f))
		if (strncmp(l, "VmRSS:", 6) == 0)
			v = atof(l + 6) / 1024;
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	size_t n_inc = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t max = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
	char dir[] = "/tmp/rollbackd-ui-bench-XXXXXX", path[600], line[512];
	struct config cfg;
	if (!mkdtemp(dir) || config_init(&cfg) != 0)
		return 1;
	cfg.limits.max_incidents = max;
	struct ui *ui = ui_new(&cfg, NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_FILE);
	FILE *j = fopen(path, "w");
	if (!ui || !j)
		return 1;
	fclose(j);
	struct ui_index *ix = &ui->ix;
	ix->dir = strdup(dir);
	if (!ix->dir || open_file(ix, JOURNAL_FILE) < 0)
		return 1;
	malloc_trim(0);
	struct mallinfo2 m0 = mallinfo2();
	double r0 = rss_mib();
	uint64_t off = 0, seq = 0;
	for (size_t b = 0; b < n_inc; b += 1000) {
		for (int phase = 0; phase < 3; phase++)
			for (size_t i = b; i < b + 1000 && i < n_inc; i++) {
				if (phase == 2 && i % 2)
					continue;
				for (int k = 0; k < (phase == 0 ? 2 : 1); k++) {
					const char *type = phase == 2 ? "resolved"
							   : k	      ? "notify_sent"
								      : "decision";
					int n = snprintf(
					    line, sizeof(line),
					    "{\"seq\":%" PRIu64 ",\"ts\":\"2026-11-21T10:00:00Z\","
					    "\"type\":\"%s\",\"incident\":\"inc-%016zx\",\"value\":"
					    "{\"value\":0.5,\"above\":0.1},\"prev\":\"x\",\"hash\":"
					    "\"y\"}",
					    ++seq, type, i);
					index_line(ix, 0, off, line, (size_t)n);
					off += (uint64_t)n + 1;
				}
			}
	}
	struct mallinfo2 m1 = mallinfo2();
	double r1 = rss_mib();
	malloc_trim(0);
	double r2 = rss_mib();
	printf("%zu incidents kept, %zu refs: heap in use +%.2f MB; RSS +%.2f MiB, "
	       "+%.2f MiB after malloc_trim\n",
	       ix->count, ix->total_refs,
	       (double)(m1.uordblks + m1.hblkhd - m0.uordblks - m0.hblkhd) / 1e6, r1 - r0, r2 - r0);
	ui_free(ui);
	config_release(&cfg);
	unlink(path);
	rmdir(dir);
	return 0;
}
