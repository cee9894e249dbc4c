#include "guest.h"

static int sig_is(const uint8_t *p, const char *s)
{
	for (; *s; ++s, ++p)
		if (*p != (uint8_t)*s)
			return 0;
	return 1;
}

static uint64_t rd64(const uint8_t *p) { return *(const uint32_t *)p | ((uint64_t)*(const uint32_t *)(p + 4) << 32); }

/* The RSDP: from start_info (PVH version >= 1), else the BIOS area scan (ACPI 6.4 §5.2.5.1). */
static const uint8_t *find_rsdp(const uint8_t *start_info)
{
	uint64_t a = *(const uint32_t *)(start_info + 4) >= 1 ? rd64(start_info + 32) : 0;
	if (a && a < 0x100000000ull && sig_is((const uint8_t *)a, "RSD PTR "))
		return (const uint8_t *)a;
	for (a = 0xE0000; a < 0x100000; a += 16)
		if (sig_is((const uint8_t *)a, "RSD PTR "))
			return (const uint8_t *)a;
	return 0;
}

static const uint8_t *find_fadt(const uint8_t *rsdp)
{
	uint64_t root = *(const uint32_t *)(rsdp + 16);
	int wide = 0;
	if (rsdp[15] >= 2 && rd64(rsdp + 24)) {
		root = rd64(rsdp + 24);
		wide = 1;
	}
	if (!root || root >= 0x100000000ull)
		return 0;
	const uint8_t *t = (const uint8_t *)root;
	uint32_t len = *(const uint32_t *)(t + 4);
	for (uint32_t off = 36; off + (wide ? 8 : 4) <= len; off += wide ? 8 : 4) {
		uint64_t e = wide ? rd64(t + off) : *(const uint32_t *)(t + off);
		if (e && e < 0x100000000ull && sig_is((const uint8_t *)e, "FACP"))
			return (const uint8_t *)e;
	}
	return 0;
}

void poweroff(const uint8_t *start_info)
{
	/* Our VMM: PM1a_CNT at 0x604, SLP_TYP 5 (its \_S5) | SLP_EN. */
	outw(0x604, 0x3400);
	/* HW-reduced ACPI (QEMU microvm's GED): SLEEP_CONTROL_REG, FADT offset 244 (ACPI 6.4 §4.8.3.7). */
	const uint8_t *rsdp = find_rsdp(start_info);
	const uint8_t *fadt = rsdp ? find_fadt(rsdp) : 0;
	if (fadt && *(const uint32_t *)(fadt + 4) >= 256) {
		uint8_t space = fadt[244];
		uint64_t addr = rd64(fadt + 248);
		uint8_t v = (uint8_t)((5 << 2) | (1 << 5)); /* SLP_TYPx 5 | SLP_EN */
		if (space == 0 && addr && addr < 0x100000000ull)
			*(volatile uint8_t *)addr = v;
		else if (space == 1 && addr)
			outb((uint16_t)addr, v);
	}
	/* Both VMMs stop the vCPU from another thread: give them a moment before complaining. */
	for (uint64_t t0 = rdtsc_ordered(); rdtsc_ordered() - t0 < 2000000000ull;)
		cpu_relax();
	put_str("exits: poweroff failed\n");
}
