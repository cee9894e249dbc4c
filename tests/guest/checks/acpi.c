/* check acpi: reports acpi_scan()'s walk; fails on any checksum or
 * structure problem and on a missing FADT/DSDT/_S5/MADT piece. */
#include "platform.h"

bool check_acpi(struct guest *g, struct detail *d)
{
	const struct platform *p = &g->plat;
	bool ok = true;
	if (!p->rsdp) {
		detail_add(d, "%s", p->err);
		return false;
	}
	detail_add(d, "rsdp@%#lx%s rev%u %s@%#lx %u tables", p->rsdp, p->rsdp_scanned ? "(scan)" : "", p->rsdp_rev,
	           p->xsdt ? "xsdt" : "rsdt", p->sdt, p->ntables);
	if (!p->fadt) {
		detail_add(d, "; no FADT");
		ok = false;
	} else if (p->hw_reduced) {
		/* HW-reduced (QEMU microvm): no PM1 blocks, sleep via the FADT register. */
		detail_add(d, "; fadt hw-reduced sleep_ctl %s %#lx", p->sleep_ctl.space ? "io" : "mem", p->sleep_ctl.addr);
		if (!p->sleep_ctl.addr || p->sleep_ctl.space > 1) {
			detail_add(d, " unusable");
			ok = false;
		}
	} else {
		detail_add(d, "; fadt pm1a_evt %#x pm1a_cnt %#x pm_tmr %#x sci %u", p->pm1a_evt, p->pm1a_cnt, p->pm_tmr,
		           p->sci);
		if (!p->pm1a_cnt) {
			detail_add(d, " (no PM1a_CNT)");
			ok = false;
		}
	}
	if (p->fadt) {
		detail_add(d, "; dsdt@%#lx", p->dsdt);
		if (p->s5) {
			detail_add(d, " _S5=%u", p->slp_typa);
		} else {
			detail_add(d, " no _S5");
			ok = false;
		}
	}
	if (!p->madt) {
		detail_add(d, "; no MADT");
		ok = false;
	} else {
		detail_add(d, "; madt %u lapic", p->ncpus);
		if (p->nioapic)
			detail_add(d, " ioapic@%#x gsi %u", p->ioapic[0].addr, p->ioapic[0].gsi_base);
		detail_add(d, " %u iso", p->niso);
		if (!p->ncpus || !p->nioapic) {
			detail_add(d, " (need a LAPIC and an IOAPIC)");
			ok = false;
		}
	}
	if (p->err[0]) {
		detail_add(d, "; %s", p->err);
		ok = false;
	}
	return ok;
}
