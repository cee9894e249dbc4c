/*
 * check smp: wake every enabled MADT LAPIC other than ours with INIT-SIPI-SIPI.
 * APs run arch/trampoline.S (real mode) -> head.S ap_start32 -> long mode ->
 * ap_main() on their own stack, count themselves online and halt.
 */
#include "platform.h"

#define ICR_LOW 0x300
#define ICR_HIGH 0x310
#define ICR_BUSY (1u << 12)
#define ICR_INIT_ASSERT 0xC500   /* INIT, level, assert */
#define ICR_INIT_DEASSERT 0x8500 /* INIT, level, de-assert */
#define ICR_STARTUP 0x4600       /* STARTUP | vector = page number */
#define ONLINE_WAIT_US 5000000

extern const char ap_trampoline_start[], ap_trampoline_end[];
uint64_t ap_stack_table[256]; /* by APIC ID; read by head.S ap_start64 */
static uint8_t ap_stacks[MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static volatile unsigned ap_online;
static volatile uint8_t online[256];

void ap_main(uint32_t apic_id);
void ap_main(uint32_t apic_id)
{
	idt_load(); /* a fault here is reported instead of triple-faulting */
	online[apic_id & 0xff] = 1;
	__atomic_fetch_add(&ap_online, 1, __ATOMIC_SEQ_CST);
}

static void send_ipi(uint8_t apic_id, uint32_t icr)
{
	lapic_write(ICR_HIGH, (uint32_t)apic_id << 24);
	lapic_write(ICR_LOW, icr);
	for (unsigned i = 0; i < 100000 && (lapic_read(ICR_LOW) & ICR_BUSY); i++)
		cpu_pause();
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

/* A page below 1 MiB that is usable RAM and holds no boot data, so a later
 * reader of the boot data (or a reboot) is never surprised. */
static uint64_t pick_trampoline_page(const struct boot_info *bi)
{
	static const uint64_t preferred[] = { 0x8000, 0x10000 };
	for (unsigned k = 0; k < ARRAY_SIZE(preferred) + 0x9F; k++) {
		uint64_t pg = k < ARRAY_SIZE(preferred) ? preferred[k] : (uint64_t)(k - ARRAY_SIZE(preferred) + 1) << 12;
		bool ok = mem_usable(bi, pg, pg + 4096);
		for (unsigned i = 0; ok && i < bi->nbusy; i++)
			ok = !overlaps(pg, 4096, bi->busy[i].addr, bi->busy[i].size);
		if (ok)
			return pg;
	}
	return 0;
}

bool check_smp(struct guest *g, struct detail *d)
{
	const struct platform *p = &g->plat;
	if (!p->madt || p->ncpus == 0) {
		detail_add(d, "no MADT LAPIC entries");
		return false;
	}
	if (p->ncpus > MAX_CPUS || p->nx2apic) {
		detail_add(d, "%u xAPIC + %u x2APIC cpus: only %u xAPIC supported", p->ncpus, p->nx2apic, MAX_CPUS);
		return false;
	}
	unsigned naps = 0;
	bool bsp_listed = false;
	for (unsigned i = 0; i < p->ncpus; i++) {
		uint8_t id = p->cpu_apic[i];
		if (id == bsp_apic_id) {
			bsp_listed = true;
			continue;
		}
		ap_stack_table[id] = (uint64_t)(uintptr_t)ap_stacks[naps] + AP_STACK_SIZE;
		naps++;
	}
	if (!bsp_listed) {
		detail_add(d, "BSP apic id %u not in MADT", bsp_apic_id);
		return false;
	}
	uint64_t page = 0, us = 0;
	if (naps) {
		page = pick_trampoline_page(&g->boot);
		if (!page) {
			detail_add(d, "no free usable page below 1 MiB for the trampoline");
			return false;
		}
		memcpy(phys(page), ap_trampoline_start, (size_t)(ap_trampoline_end - ap_trampoline_start));
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		uint64_t t0 = rdtsc();
		/* Intel SDM 8.4.4.1 sequence: INIT, 10 ms, SIPI, 200 us, SIPI. */
		for (unsigned i = 0; i < p->ncpus; i++)
			if (p->cpu_apic[i] != bsp_apic_id) {
				send_ipi(p->cpu_apic[i], ICR_INIT_ASSERT);
				send_ipi(p->cpu_apic[i], ICR_INIT_DEASSERT);
			}
		udelay(10000);
		for (int round = 0; round < 2; round++) {
			for (unsigned i = 0; i < p->ncpus; i++)
				if (p->cpu_apic[i] != bsp_apic_id && !online[p->cpu_apic[i]])
					send_ipi(p->cpu_apic[i], ICR_STARTUP | (uint32_t)(page >> 12));
			udelay(200);
		}
		uint64_t dl = deadline_us(ONLINE_WAIT_US);
		while (ap_online < naps && !deadline_passed(dl))
			cpu_pause();
		us = (rdtsc() - t0) * 1000 / tsc_khz;
	}
	unsigned up = 1 + ap_online;
	bool ok = up == p->ncpus;
	detail_add(d, "%u/%u cpus online", up, p->ncpus);
	if (naps)
		detail_add(d, " in %lu us (trampoline %#lx)", us, page);
	for (unsigned i = 0; i < p->ncpus; i++)
		if (p->cpu_apic[i] != bsp_apic_id && !online[p->cpu_apic[i]])
			detail_add(d, " missing apic %u", p->cpu_apic[i]);
	if (g->opt.expect_cpus && up != g->opt.expect_cpus) {
		detail_add(d, ", expected %u", g->opt.expect_cpus);
		ok = false;
	}
	return ok;
}
