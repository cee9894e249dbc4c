/*
 * check timer: the LAPIC timer and the PIT both interrupt us. The PIT goes
 * ISA IRQ0 -> GSI from the MADT override (2 on PC hardware) -> IOAPIC.
 */
#include "platform.h"

#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV 0x3E0
#define TICKS 3
#define WAIT_US 1000000
#define PIT_COUNT 1193 /* ~1 kHz */

static volatile unsigned lapic_ticks, pit_ticks;

static void lapic_tick(struct isr_frame *f)
{
	(void)f;
	lapic_ticks++;
}

static void pit_tick(struct isr_frame *f)
{
	(void)f;
	pit_ticks++;
}

/* Enables interrupts until *counter reaches TICKS; returns elapsed us. */
static uint64_t wait_ticks(volatile unsigned *counter)
{
	uint64_t t0 = rdtsc(), dl = deadline_us(WAIT_US);
	cpu_sti();
	while (*counter < TICKS && !deadline_passed(dl))
		cpu_pause();
	cpu_cli();
	return (rdtsc() - t0) * 1000 / tsc_khz;
}

static bool lapic_timer(struct detail *d)
{
	lapic_ticks = 0;
	irq_set_handler(VEC_LAPIC_TIMER, lapic_tick);
	lapic_write(LAPIC_TIMER_DIV, 0x3); /* divide by 16 */
	lapic_write(LAPIC_LVT_TIMER, VEC_LAPIC_TIMER | (1u << 17)); /* periodic */
	lapic_write(LAPIC_TIMER_INIT, 100000); /* 1.6 ms at a 1 GHz APIC bus (KVM, QEMU) */
	uint64_t us = wait_ticks(&lapic_ticks);
	lapic_write(LAPIC_LVT_TIMER, 0x10000);
	lapic_write(LAPIC_TIMER_INIT, 0);
	irq_set_handler(VEC_LAPIC_TIMER, NULL);
	if (lapic_ticks < TICKS) {
		detail_add(d, "lapic timer %u of %u ticks in %lu us", lapic_ticks, TICKS, us);
		return false;
	}
	detail_add(d, "lapic %u ticks in %lu us", TICKS, us);
	return true;
}

static volatile unsigned probe_ticks;

static void probe_tick(struct isr_frame *f)
{
	(void)f;
	probe_ticks++;
}

static bool pit(const struct platform *p, struct detail *d)
{
	uint16_t flags;
	uint32_t gsi = isa_irq_to_gsi(p, 0, &flags);
	bool override = false;
	for (unsigned i = 0; i < p->niso; i++)
		override |= p->iso[i].bus == 0 && p->iso[i].irq == 0;
	/*
	 * HW-reduced ACPI (QEMU microvm) does not describe legacy IRQ routing:
	 * microvm has a PIT but no IRQ0 override, while its IOAPIC wires IRQ0
	 * to pin 2 as on every PC. There we also listen on pin 2 (on its own
	 * vector, at the same time, so nothing waits for a timeout), like
	 * Linux's check_timer() fallback, and say so. Full ACPI platforms
	 * (our VMM, q35) must deliver where their MADT says.
	 */
	bool probe2 = p->hw_reduced && !override && gsi != 2;
	pit_ticks = probe_ticks = 0;
	irq_set_handler(VEC_PIT, pit_tick);
	irq_set_handler(VEC_PIT_PROBE, probe_tick);
	if (!ioapic_route(p, gsi, VEC_PIT, bsp_apic_id, flags)) {
		detail_add(d, ", no IOAPIC pin for pit gsi %u", gsi);
		return false;
	}
	if (probe2)
		ioapic_route(p, 2, VEC_PIT_PROBE, bsp_apic_id, 0);
	outb(0x43, 0x34); /* ch0, lo/hi byte, mode 2 (rate generator) */
	outb(0x40, PIT_COUNT & 0xff);
	outb(0x40, PIT_COUNT >> 8);
	uint64_t t0 = rdtsc(), dl = deadline_us(WAIT_US);
	cpu_sti();
	while (pit_ticks < TICKS && probe_ticks < TICKS && !deadline_passed(dl))
		cpu_pause();
	cpu_cli();
	uint64_t us = (rdtsc() - t0) * 1000 / tsc_khz;
	outb(0x43, 0x30); /* mode 0 from 0xFFFF: quiet for 55 ms, by then masked */
	outb(0x40, 0xFF);
	outb(0x40, 0xFF);
	ioapic_mask(p, gsi);
	if (probe2)
		ioapic_mask(p, 2);
	irq_set_handler(VEC_PIT, NULL);
	irq_set_handler(VEC_PIT_PROBE, NULL);
	if (pit_ticks >= TICKS) {
		detail_add(d, ", pit %u ticks via gsi %u%s in %lu us", TICKS, gsi, override ? " (madt override)" : "", us);
		return true;
	}
	if (probe2 && probe_ticks >= TICKS) {
		detail_add(d, ", pit %u ticks on gsi 2 in %lu us (hw-reduced acpi, no irq0 override: pin 2 probed)",
		           TICKS, us);
		return true;
	}
	detail_add(d, ", pit %u of %u ticks on gsi %u in %lu us", pit_ticks, TICKS, gsi, us);
	return false;
}

bool check_timer(struct guest *g, struct detail *d)
{
	bool ok = lapic_timer(d);
	ok &= pit(&g->plat, d);
	detail_add(d, ", tsc %lu MHz (%s)", tsc_khz / 1000, tsc_source);
	return ok;
}
