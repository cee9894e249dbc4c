/*
 * Polled COM1 output plus a small printf. Every port access is a VM exit to
 * the VMM, so with the FIFO on we poll LSR once per 16 bytes instead of once
 * per byte, and all waits are bounded so a missing UART cannot hang us.
 */
#include "guest.h"

#define COM1 0x3F8
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define POLL_LIMIT 1000000u

static unsigned tx_depth = 1;  /* bytes we may write per observed THRE */
static unsigned tx_budget;
static volatile uint32_t console_lock_word;

void console_set_fifo(bool on)
{
	outb(COM1 + 2, on ? 0x07 : 0x00); /* enable + clear both FIFOs */
	tx_depth = on && (inb(COM1 + 2) & 0xC0) == 0xC0 ? 16 : 1;
	tx_budget = 0;
}

void console_init(void)
{
	outb(COM1 + 1, 0x00); /* IER: no interrupts, output is polled */
	outb(COM1 + 3, 0x03); /* LCR: 8N1 (divisor left as firmware/VMM set it) */
	outb(COM1 + 4, 0x0B); /* MCR: DTR | RTS | OUT2 */
	console_set_fifo(true);
}

static void uart_tx(char c)
{
	if (tx_budget == 0) {
		for (unsigned i = 0; i < POLL_LIMIT && !(inb(COM1 + 5) & LSR_THRE); i++)
			cpu_pause();
		tx_budget = tx_depth;
	}
	outb(COM1, (uint8_t)c);
	tx_budget--;
}

void console_flush(void)
{
	for (unsigned i = 0; i < POLL_LIMIT && !(inb(COM1 + 5) & LSR_TEMT); i++)
		cpu_pause();
	tx_budget = tx_depth;
}

/* APs only print on a fatal exception; a bounded spin avoids deadlocking a
 * CPU that faulted while holding the lock. */
static void console_lock(void)
{
	for (unsigned i = 0; i < 50000000u; i++) {
		if (!__atomic_exchange_n(&console_lock_word, 1, __ATOMIC_ACQUIRE))
			return;
		cpu_pause();
	}
}

static void console_unlock(void) { __atomic_store_n(&console_lock_word, 0, __ATOMIC_RELEASE); }

/* ---- formatting -------------------------------------------------------- */
struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, bool neg, unsigned width, char pad)
{
	char tmp[24];
	unsigned n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width > n) {
		put(o, pad);
		width--;
	}
	while (n)
		put(o, tmp[--n]);
}

/* Supports %[0][width][l|ll|z](d|i|u|x|p|s|c) and %%; enough for the checks. */
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		bool alt = false;
		char pad = ' ';
		unsigned width = 0, lng = 0;
		if (*fmt == '#') {
			alt = true;
			fmt++;
		}
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(&o, v < 0 ? (uint64_t)-v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
			put_num(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, false, width, pad);
			break;
		case 'x':
		case 'p': {
			uint64_t v = *fmt == 'p' ? (uint64_t)(uintptr_t)va_arg(ap, void *)
			             : lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			if (alt || *fmt == 'p') {
				put(&o, '0');
				put(&o, 'x');
			}
			put_num(&o, v, 16, false, width, pad);
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);
			for (s = s ? s : "(null)"; *s; s++)
				put(&o, *s);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case '%':
			put(&o, '%');
			break;
		default: /* unknown conversion: show it verbatim */
			put(&o, '%');
			if (!*fmt)
				goto done;
			put(&o, *fmt);
		}
	}
done:
	if (o.size)
		o.buf[o.len < o.size ? o.len : o.size - 1] = '\0';
	return (int)o.len;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = kvsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/* Lines end in "\n" only: the VMM's parsers match them byte for byte. */
void kprintf(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	console_lock();
	for (const char *p = line; *p; p++)
		uart_tx(*p);
	console_unlock();
}
