/*
 * cmd: the verbs of the command line (SPEC §3), called by main.c once it
 * has parsed the arguments. Each returns the process exit code: 0 success,
 * 1 a check failed or input was invalid, 2 usage error. Errors go to stderr
 * as one line that names the file, the place and what is wrong.
 */
#ifndef ROLLBACKD_CMD_H
#define ROLLBACKD_CMD_H

#include <stdbool.h>
#include <stddef.h>

enum { EXIT_OK = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

/* config_path NULL = built-in defaults. recover: move a damaged journal
 * part aside and start paused instead of refusing to start. */
int cmd_serve(const char *config_path, bool recover);
int cmd_check_config(const char *config_path);
/* Validate rule files/dirs; every error printed. */
int cmd_check_rules(const char *const *paths, size_t n);
/* Print one JSON decision per line for the alerts of a payload file, with
 * the fully expanded actions (secrets redacted); runs nothing. config_path
 * NULL = defaults with dry-run off; now_text NULL = now. */
int cmd_test_rules(const char *config_path, const char *rules_path, const char *alerts_path,
		   const char *now_text);
/* Read the body from stdin, print the X-Rollbackd-Signature value.
 * timestamp NULL = now. */
int cmd_sign(const char *secret_file, const char *timestamp);

#endif
