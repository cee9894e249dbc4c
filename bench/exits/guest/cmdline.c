#include "guest.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0, base = 10;
	int digits = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; ++s, ++digits) {
		char c = *s;
		uint64_t d;
		if (c >= '0' && c <= '9')
			d = (uint64_t)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (uint64_t)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (uint64_t)(c - 'A' + 10);
		else
			break;
		v = v * base + d;
	}
	if (!digits)
		return 0;
	*out = v;
	return 1;
}

/* Finds the first word starting with `key` (its '=' included); parses the number after it. */
int cmdline_u64(const char *cmdline, const char *key, uint64_t *out)
{
	if (!cmdline)
		return 0;
	for (const char *p = cmdline; *p;) {
		while (is_space(*p))
			++p;
		const char *k = key, *w = p;
		while (*k && *w == *k)
			++k, ++w;
		if (!*k)
			return parse_u64(w, out);
		while (*p && !is_space(*p))
			++p;
	}
	return 0;
}
