/*
 * TSC-based delays and timeouts. The TSC rate is measured against PIT
 * channel 0 read back through the latch command (ports 0x40/0x43: handled
 * in-kernel by KVM's PIT, so no userspace exits, and unlike channel 2 it
 * needs no port 0x61 speaker gate, which QEMU microvm lacks). CPUID leaves
 * are the fallback where there is no PIT. Precision only matters to keep
 * timeouts sane, not for any check verdict.
 */
#include "guest.h"

#define PIT_HZ 1193182u
#define CAL_MS 10u
#define CAL_TICKS (PIT_HZ * CAL_MS / 1000u)

uint64_t tsc_khz = 4000000; /* assume a fast CPU: unknown rates make timeouts longer, not shorter */
const char *tsc_source = "assumed";

static uint16_t pit0_read(void)
{
	outb(0x43, 0x00); /* latch channel 0 */
	uint8_t lo = inb(0x40);
	return (uint16_t)(lo | inb(0x40) << 8);
}

static bool calibrate_pit(void)
{
	/* Mode 0 from 0xFFFF: counts down for 55 ms and would only raise
	 * IRQ0 at terminal count, which we never reach. */
	outb(0x43, 0x30);
	outb(0x40, 0xFF);
	outb(0x40, 0xFF);
	uint16_t c0 = pit0_read(), c = c0;
	uint64_t t0 = rdtsc();
	unsigned polls = 0;
	while ((uint16_t)(c0 - c) < CAL_TICKS && polls < 100000) {
		for (int i = 0; i < 64; i++) /* fewer port reads per ms */
			cpu_pause();
		c = pit0_read();
		polls++;
	}
	uint64_t t1 = rdtsc();
	uint32_t ticks = (uint16_t)(c0 - c);
	outb(0x43, 0x30); /* reload mode 0 without a count: counter stops */
	/* No PIT: reads float to 0xFFFF and never move. */
	if (ticks < CAL_TICKS || ticks > 60000 || t1 - t0 < 1000u * CAL_MS)
		return false;
	tsc_khz = (t1 - t0) * PIT_HZ / ticks / 1000;
	tsc_source = "pit";
	return true;
}

void tsc_calibrate(void)
{
	uint32_t a, b, c, d, max;
	if (calibrate_pit())
		return;
	cpuid(0, &max, &b, &c, &d);
	if (max >= 0x15) {
		cpuid(0x15, &a, &b, &c, &d); /* TSC = crystal * b / a */
		if (a && b && c) {
			tsc_khz = (uint64_t)c * b / a / 1000;
			tsc_source = "cpuid15";
			return;
		}
	}
	if (max >= 0x16) {
		cpuid(0x16, &a, &b, &c, &d); /* base MHz */
		if (a & 0xffff) {
			tsc_khz = (uint64_t)(a & 0xffff) * 1000;
			tsc_source = "cpuid16";
		}
	}
}

uint64_t deadline_us(uint64_t us) { return rdtsc() + us * tsc_khz / 1000; }

bool deadline_passed(uint64_t deadline) { return (int64_t)(rdtsc() - deadline) >= 0; }

void udelay(uint64_t us)
{
	uint64_t dl = deadline_us(us);
	while (!deadline_passed(dl))
		cpu_pause();
}
