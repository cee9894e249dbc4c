#include "guest.h"

#define COM1 0x3F8

static void put_char(char c)
{
	while (!(inb(COM1 + 5) & 0x20)) /* LSR.THRE */
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

void put_str(const char *s)
{
	for (; *s; ++s)
		put_char(*s);
}

void put_u64(uint64_t v)
{
	char buf[21];
	int i = 20;
	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_str(&buf[i]);
}

void put_hex(uint64_t v)
{
	char buf[19];
	int i = 18;
	buf[i] = 0;
	do {
		buf[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	buf[--i] = 'x';
	buf[--i] = '0';
	put_str(&buf[i]);
}
