/*
 * Unit tests for daemon: what a SIGHUP reload may change.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "rollbackd/config.h"
#include "rollbackd/daemon.h"
#include "rollbackd/secret.h"

Test(daemon, reload_check_names_the_key)
{
	struct config a, b;
	struct error err = {{0}};
	cr_assert_eq(config_init(&a), 0);
	cr_assert_eq(config_init(&b), 0);
	cr_assert_eq(daemon_reload_check(&a, &b, true, &err), 0);
	b.limits.header_timeout_ms = 1;
	cr_assert_eq(daemon_reload_check(&a, &b, true, &err), -1);
	cr_assert_str_eq(err.msg, "limits.header_timeout cannot change without a restart");
	b.limits.header_timeout_ms = a.limits.header_timeout_ms;
	secret_from_bytes("https://hooks.example/x", 23, &b.notify.slack_webhook_url);
	cr_assert_eq(daemon_reload_check(&a, &b, true, &err), -1);
	cr_assert_str_eq(err.msg, "notify.slack.webhook_url cannot change without a restart");
	secret_release(&b.notify.slack_webhook_url);
	secret_from_bytes("links-secret-0123456789", 23, &b.links_secret);
	cr_assert_eq(daemon_reload_check(&a, &b, true, &err), 0, "auth.links changes live");
	cr_assert_eq(daemon_reload_check(&a, &b, false, &err), -1);
	cr_assert_str_eq(err.msg, "the new configuration has no authentication and rollbackd "
				  "listens on a non-loopback address");
	config_release(&a);
	config_release(&b);
}
