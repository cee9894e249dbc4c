/*
 * check uart: COM1 behaves like the 16550A Linux's 8250 driver probes for:
 * scratch register, loopback (MSR mirror + data echo), FIFO identification
 * in IIR[7:6], and the THRE interrupt raised when IER.ETBEI is set while the
 * transmitter is empty, delivered through the IOAPIC.
 */
#include "platform.h"

#define COM1 0x3F8
#define RBR 0
#define THR 0
#define IER 1
#define IIR 2
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7
#define MCR_NORMAL 0x0B /* DTR | RTS | OUT2 */
#define MCR_LOOP_TEST 0x1A /* LOOP | OUT2 | RTS: MSR must read DCD | CTS = 0x90 */
#define IRQ_WAIT_US 200000

static volatile unsigned thre_irqs;

static void uart_irq(struct isr_frame *f)
{
	(void)f;
	if ((inb(COM1 + IIR) & 0x0F) == 0x02) { /* THRI; reading IIR acks it */
		thre_irqs++;
		outb(COM1 + IER, 0); /* one is enough; stop further THRE interrupts */
	}
}

static bool loopback(struct detail *d)
{
	bool ok = true;
	outb(COM1 + MCR, MCR_LOOP_TEST);
	uint8_t msr = inb(COM1 + MSR) & 0xF0;
	if (msr != 0x90) {
		detail_add(d, " loopback MSR %#x (want 0x90)", msr);
		ok = false;
	}
	for (unsigned i = 0; i < 64 && (inb(COM1 + LSR) & 1); i++)
		inb(COM1 + RBR); /* drain stale input */
	static const uint8_t pattern[] = { 0x55, 0xAA };
	for (unsigned i = 0; ok && i < sizeof(pattern); i++) {
		outb(COM1 + THR, pattern[i]);
		unsigned spins = 0;
		while (!(inb(COM1 + LSR) & 1) && spins++ < 10000)
			cpu_pause();
		uint8_t got = inb(COM1 + RBR);
		if (got != pattern[i]) {
			detail_add(d, " loopback echo %#x != %#x", got, pattern[i]);
			ok = false;
		}
	}
	outb(COM1 + MCR, MCR_NORMAL);
	if (ok)
		detail_add(d, " loopback");
	return ok;
}

static bool fifo(struct detail *d)
{
	console_set_fifo(false);
	uint8_t off = inb(COM1 + IIR) & 0xC0;
	console_set_fifo(true);
	uint8_t on = inb(COM1 + IIR) & 0xC0;
	if (off != 0 || on != 0xC0) {
		detail_add(d, " IIR[7:6] fifo off %#x on %#x (16550A: 0/0xc0)", off, on);
		return false;
	}
	detail_add(d, " 16550A-fifo");
	return true;
}

static bool thre_irq(const struct platform *p, struct detail *d)
{
	uint16_t flags;
	uint32_t gsi = isa_irq_to_gsi(p, 4, &flags);
	console_flush(); /* transmitter empty before ETBEI goes on */
	outb(COM1 + IER, 0);
	inb(COM1 + IIR);
	irq_set_handler(VEC_UART, uart_irq);
	if (!ioapic_route(p, gsi, VEC_UART, bsp_apic_id, flags)) {
		detail_add(d, " no IOAPIC pin for gsi %u", gsi);
		return false;
	}
	thre_irqs = 0;
	uint64_t dl = deadline_us(IRQ_WAIT_US);
	cpu_sti();
	outb(COM1 + IER, 0x02); /* ETBEI */
	while (!thre_irqs && !deadline_passed(dl))
		cpu_pause();
	cpu_cli();
	outb(COM1 + IER, 0);
	ioapic_mask(p, gsi);
	irq_set_handler(VEC_UART, NULL);
	if (!thre_irqs) {
		detail_add(d, " no THRE interrupt on gsi %u within %u ms", gsi, IRQ_WAIT_US / 1000);
		return false;
	}
	detail_add(d, " thre-irq gsi %u", gsi);
	return true;
}

bool check_uart(struct guest *g, struct detail *d)
{
	console_flush();
	outb(COM1 + SCR, 0x5A);
	uint8_t a = inb(COM1 + SCR);
	outb(COM1 + SCR, 0xA5);
	uint8_t b = inb(COM1 + SCR);
	if (a != 0x5A || b != 0xA5) {
		detail_add(d, "scratch read %#x/%#x, want 0x5a/0xa5", a, b);
		return false;
	}
	detail_add(d, "com1 scratch");
	bool ok = loopback(d);
	ok &= fifo(d);
	ok &= thre_irq(&g->plat, d);
	return ok;
}
