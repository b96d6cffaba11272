/*
 * main: parse the command line and dispatch to cmd.c. No logic lives here.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/audit.h"
#include "rollbackd/checkpoint.h"
#include "rollbackd/cmd.h"

static const char usage[] =
	"usage: rollbackd <command> [options]\n"
	"\n"
	"commands:\n"
	"  serve [--config FILE] [--recover]\n"
	"                                   run the daemon (built-in defaults without FILE);\n"
	"                                   --recover moves a damaged journal part aside (kept)\n"
	"                                   and starts paused instead of refusing to start\n"
	"  check-config [--config FILE]     validate the configuration; exit 0 ok, 1 invalid\n"
	"  check-rules PATH...              validate rule files or directories\n"
	"  test-rules --rules PATH --alerts PAYLOAD.json [--now RFC3339] [--config FILE]\n"
	"                                   print each alert's decisions and expanded actions;\n"
	"                                   runs nothing\n"
	"  sign --secret-file F [--timestamp T] < BODY\n"
	"                                   print the X-Rollbackd-Signature header value\n"
	"  audit verify --journal FILE [--checkpoints FILE --pubkey FILE]\n"
	"                                   check the journal's hash chain (and the journal\n"
	"                                   against signed checkpoints): exit 0 intact, 1 not\n"
	"  audit show --journal FILE [--incident ID] [--since RFC3339] [--json]\n"
	"                                   print the journal as a timeline (or its JSON lines)\n"
	"  audit report --journal FILE --incident ID [--html]\n"
	"                                   print a Markdown (or self-contained HTML) report\n"
	"                                   (rollbackd audit --help for more)\n"
	"  keygen --out FILE                write an Ed25519 key pair for checkpoints: FILE\n"
	"                                   (secret, mode 0600) and FILE.pub\n"
	"  --version                        print the version\n"
	"  --help                           print this help\n"
	"\n"
	"exit codes: 0 success, 1 check failed or invalid input, 2 usage error\n";

/* Print "rollbackd: [verb: ]what 'arg'" and usage_text; returns EXIT_USAGE. */
static int usage_error_of(const char *usage_text, const char *verb, const char *what,
			  const char *arg)
{
	fprintf(stderr, "rollbackd: %s%s%s", verb ? verb : "", verb ? ": " : "", what);
	if (arg)
		fprintf(stderr, " '%s'", arg);
	fprintf(stderr, "\n%s", usage_text);
	return EXIT_USAGE;
}

static int usage_error(const char *what, const char *arg)
{
	return usage_error_of(usage, NULL, what, arg);
}

static const char audit_usage[] =
	"usage: rollbackd audit verify --journal FILE [--checkpoints FILE --pubkey FILE]\n"
	"       rollbackd audit show --journal FILE [--incident ID] [--since RFC3339] [--json]\n"
	"       rollbackd audit report --journal FILE --incident ID [--html]\n"
	"\n"
	"FILE is state_dir/journal.jsonl (or state_dir): every segment, journal.000001.jsonl,\n"
	"... then journal.jsonl, is read in order. Nothing needs the daemon; nothing is written.\n"
	"\n"
	"  verify   check the hash chain; prints \"ok: N records, last seq S, last hash H\";\n"
	"           when broken, names the first bad record's file, byte offset and seq;\n"
	"           with --checkpoints (published signed lines) and --pubkey (keygen's\n"
	"           FILE.pub) also checks the journal against each checkpoint, naming any\n"
	"           it is shorter than or disagrees with, and any not signed by the key\n"
	"  show     one line per record; --incident ID keeps that incident's records and the\n"
	"           alert notifications its decisions name, --since keeps records at or after\n"
	"           a time, --json prints the journal lines themselves\n"
	"  report   a Markdown report of one incident: summary, timeline, alert values,\n"
	"           decisions, actions and their output, notifications, acknowledgements;\n"
	"           --html writes the console's incident page as one self-contained file\n"
	"\n"
	"exit codes: 0 success (chain intact), 1 chain broken or journal unreadable,\n"
	"2 usage error\n";

static int audit_usage_error(const char *what, const char *arg)
{
	return usage_error_of(audit_usage, "audit", what, arg);
}

/* The options of `audit SUB` (argv[0] is SUB), as SUB takes them: 0, 1
 * for --help, or EXIT_USAGE (said why). */
static int parse_audit_options(int argc, char **argv, const char **journal,
			       struct audit_show_options *so, const char **checkpoints,
			       const char **pubkey)
{
	static const struct option longopts[] = {
		{"journal", required_argument, NULL, 'j'},
		{"checkpoints", required_argument, NULL, 'C'},
		{"pubkey", required_argument, NULL, 'P'},
		{"incident", required_argument, NULL, 'i'},
		{"since", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'J'},
		{"html", no_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool verify = strcmp(argv[0], "verify") == 0, show = strcmp(argv[0], "show") == 0;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		if (c == 'j')
			*journal = optarg;
		else if (c == 'C' && verify)
			*checkpoints = optarg;
		else if (c == 'P' && verify)
			*pubkey = optarg;
		else if (c == 'i' && !verify && !*optarg)
			return audit_usage_error("--incident ID must not be empty", NULL);
		else if (c == 'i' && !verify)
			so->incident = optarg;
		else if (c == 's' && show)
			so->since = optarg;
		else if (c == 'J' && show)
			so->json = true;
		else if (c == 'H' && strcmp(argv[0], "report") == 0)
			so->html = true;
		else if (c == 'h')
			return 1;
		else
			return audit_usage_error("unknown or incomplete option", argv[optind - 1]);
	}
	if (optind < argc)
		return audit_usage_error("unexpected argument", argv[optind]);
	return 0;
}

/* rollbackd audit verify|show|report ...: argv[0] is "audit". */
static int dispatch_audit(int argc, char **argv)
{
	const char *journal = NULL, *checkpoints = NULL, *pubkey = NULL;
	struct audit_show_options so = {0};
	if (argc < 2)
		return audit_usage_error("a subcommand is required: verify, show or report", NULL);
	const char *sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
		fputs(audit_usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(sub, "verify") != 0 && strcmp(sub, "show") != 0 && strcmp(sub, "report") != 0)
		return audit_usage_error("unknown subcommand", sub);
	int r = parse_audit_options(argc - 1, argv + 1, &journal, &so, &checkpoints, &pubkey);
	if (r == 1)
		fputs(audit_usage, stdout);
	if (r)
		return r == 1 ? EXIT_OK : EXIT_USAGE;
	if (!journal)
		return audit_usage_error("--journal FILE is required", NULL);
	if (!checkpoints != !pubkey)
		return audit_usage_error("verify: --checkpoints FILE and --pubkey FILE go together",
					 NULL);
	if (strcmp(sub, "verify") == 0 && checkpoints)
		return audit_verify_checkpoints(journal, checkpoints, pubkey);
	if (strcmp(sub, "verify") == 0)
		return audit_verify(journal);
	if (strcmp(sub, "show") == 0)
		return audit_show(journal, &so);
	if (!so.incident)
		return audit_usage_error("report: --incident ID is required", NULL);
	return so.html ? audit_report_html(journal, so.incident) : audit_report(journal, so.incident);
}

/* Options shared by the verbs; each verb says which it accepts. */
struct options {
	const char *config;
	const char *rules;
	const char *alerts;
	const char *now;
	const char *secret_file;
	const char *timestamp;
	const char *out;
	bool recover;
};

enum { OPT_CONFIG = 1, OPT_SECRET_FILE = 2, OPT_TIMESTAMP = 4, OPT_RULES = 8, OPT_ALERTS = 16,
       OPT_NOW = 32, OPT_ARGS = 64 /* positional arguments allowed */, OPT_OUT = 128,
       OPT_RECOVER = 256 };

static int parse_options(int argc, char **argv, unsigned allowed, struct options *o)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"secret-file", required_argument, NULL, 's'},
		{"timestamp", required_argument, NULL, 't'},
		{"rules", required_argument, NULL, 'r'},
		{"alerts", required_argument, NULL, 'a'},
		{"now", required_argument, NULL, 'n'},
		{"out", required_argument, NULL, 'o'},
		{"recover", no_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		const char **slot = NULL;
		unsigned bit = 0;
		if (c == 'R' && (allowed & OPT_RECOVER)) {
			o->recover = true;
			continue;
		}
		switch (c) {
		case 'c': bit = OPT_CONFIG; slot = &o->config; break;
		case 's': bit = OPT_SECRET_FILE; slot = &o->secret_file; break;
		case 't': bit = OPT_TIMESTAMP; slot = &o->timestamp; break;
		case 'r': bit = OPT_RULES; slot = &o->rules; break;
		case 'a': bit = OPT_ALERTS; slot = &o->alerts; break;
		case 'n': bit = OPT_NOW; slot = &o->now; break;
		case 'o': bit = OPT_OUT; slot = &o->out; break;
		default: break;
		}
		if (!slot || !(allowed & bit))
			return usage_error("unknown or incomplete option", argv[optind - 1]);
		*slot = optarg;
	}
	if (optind < argc && !(allowed & OPT_ARGS))
		return usage_error("unexpected argument", argv[optind]);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	if (sodium_init() < 0) {
		fprintf(stderr, "rollbackd: cannot initialise libsodium\n");
		return EXIT_INVALID;
	}
	if (argc < 2)
		return usage_error("no command given", NULL);
	const char *verb = argv[1];
	if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
		printf("rollbackd %s\n", ROLLBACKD_VERSION);
		return EXIT_OK;
	}
	if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(verb, "serve") == 0) {
		if (parse_options(argc - 1, argv + 1, OPT_CONFIG | OPT_RECOVER, &o))
			return EXIT_USAGE;
		return cmd_serve(o.config, o.recover);
	}
	if (strcmp(verb, "check-config") == 0) {
		if (parse_options(argc - 1, argv + 1, OPT_CONFIG, &o))
			return EXIT_USAGE;
		return cmd_check_config(o.config);
	}
	if (strcmp(verb, "check-rules") == 0) {
		if (parse_options(argc - 1, argv + 1, OPT_ARGS, &o))
			return EXIT_USAGE;
		if (optind + 1 >= argc)
			return usage_error("check-rules: at least one PATH is required", NULL);
		return cmd_check_rules((const char *const *)argv + 1 + optind,
				       (size_t)(argc - 1 - optind));
	}
	if (strcmp(verb, "test-rules") == 0) {
		if (parse_options(argc - 1, argv + 1, OPT_CONFIG | OPT_RULES | OPT_ALERTS | OPT_NOW,
				  &o))
			return EXIT_USAGE;
		if (!o.rules || !o.alerts)
			return usage_error("test-rules: --rules and --alerts are required", NULL);
		return cmd_test_rules(o.config, o.rules, o.alerts, o.now);
	}
	if (strcmp(verb, "sign") == 0) {
		if (parse_options(argc - 1, argv + 1, OPT_SECRET_FILE | OPT_TIMESTAMP, &o))
			return EXIT_USAGE;
		if (!o.secret_file)
			return usage_error("sign: --secret-file is required", NULL);
		return cmd_sign(o.secret_file, o.timestamp);
	}
	if (strcmp(verb, "audit") == 0)
		return dispatch_audit(argc - 1, argv + 1);
	if (strcmp(verb, "keygen") == 0) {
		if (parse_options(argc - 1, argv + 1, OPT_OUT, &o))
			return EXIT_USAGE;
		if (!o.out || !*o.out)
			return usage_error("keygen: --out FILE is required", NULL);
		return checkpoint_cmd_keygen(o.out);
	}
	return usage_error("unknown command", verb);
}
