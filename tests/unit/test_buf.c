#include <criterion/criterion.h>
#include <string.h>

#include "rollbackd/buf.h"

Test(buf, append_and_nul_terminate)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "abc"), 0);
	cr_assert_eq(buf_addf(&b, "-%d-", 42), 0);
	cr_assert_eq(buf_addc(&b, 'z'), 0);
	cr_assert_str_eq(b.data, "abc-42-z");
	cr_assert_eq(b.len, 8);
	buf_release(&b);
	cr_assert_null(b.data);
}

Test(buf, long_format_grows)
{
	struct buf b = BUF_INIT;
	char big[1000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(buf_addf(&b, "<%s>", big), 0);
	cr_assert_eq(b.len, 1001);
	cr_assert_eq(b.data[0], '<');
	cr_assert_eq(b.data[1000], '>');
	buf_release(&b);
}

Test(buf, cap_refuses_and_leaves_buffer_unchanged)
{
	struct buf b;
	buf_init(&b, 5);
	cr_assert_eq(buf_adds(&b, "1234"), 0);
	cr_assert_eq(buf_adds(&b, "56"), -1);
	cr_assert_str_eq(b.data, "1234");
	cr_assert_eq(buf_addc(&b, '5'), 0);
	cr_assert_eq(buf_addc(&b, '6'), -1);
	cr_assert_str_eq(b.data, "12345");
	buf_release(&b);
}

Test(buf, json_string_escapes)
{
	struct buf b = BUF_INIT;
	const char in[] = "a\"b\\c\nd\te\x01" "f\0g";
	cr_assert_eq(buf_add_json_str(&b, in, sizeof(in) - 1), 0);
	cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u0000g\"");
	buf_release(&b);
}

Test(buf, json_string_over_cap_rolls_back)
{
	struct buf b;
	buf_init(&b, 8);
	cr_assert_eq(buf_adds(&b, "ab"), 0);
	cr_assert_eq(buf_add_json_str(&b, "0123456789", 10), -1);
	cr_assert_str_eq(b.data, "ab");
	buf_release(&b);
}

Test(buf, hex_and_detach)
{
	struct buf b = BUF_INIT;
	const unsigned char bytes[] = {0x00, 0xab, 0xff};
	cr_assert_eq(buf_add_hex(&b, bytes, 3), 0);
	size_t len = 0;
	char *s = buf_detach(&b, &len);
	cr_assert_str_eq(s, "00abff");
	cr_assert_eq(len, 6);
	cr_assert_null(b.data);
	free(s);
	s = buf_detach(&b, &len);
	cr_assert_str_eq(s, "");
	free(s);
}
