/*
 * ACPI table walk (RSDP -> XSDT/RSDT -> FADT, DSDT, MADT; TPM2 is only
 * located, checks/tpm.c reads it) into struct platform, and the S5
 * power-off built on it. No verdicts here: the acpi check reports what was
 * found and p->err, other checks use the data.
 */
#include "platform.h"

struct sdt_header {
	char sig[4];
	uint32_t len;
	uint8_t rev, csum;
	char oem[6], oem_table[8];
	uint32_t oem_rev, creator, creator_rev;
} __attribute__((packed));

static void fail(struct platform *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct platform *p, const char *fmt, ...)
{
	if (p->err[0])
		return; /* keep the first, usually the cause of the rest */
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

static uint8_t sum8(const void *buf, size_t n)
{
	const uint8_t *b = buf;
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *b++);
	return s;
}

/* Little-endian field read; fields past the table's length read as 0, which
 * is how older/shorter FADT revisions must be interpreted. */
static uint64_t fld(const void *base, uint32_t len, uint32_t off, unsigned n)
{
	uint64_t v = 0;
	if (off + n <= len)
		memcpy(&v, (const uint8_t *)base + off, n);
	return v;
}

static struct gas gas_at(const void *t, uint32_t len, uint32_t off)
{
	return (struct gas){ (uint8_t)fld(t, len, off, 1), (uint8_t)fld(t, len, off + 1, 1),
		             (uint8_t)fld(t, len, off + 2, 1), (uint8_t)fld(t, len, off + 3, 1),
		             fld(t, len, off + 4, 8) };
}

static bool rsdp_ok(uint64_t pa)
{
	return phys_ok(pa, 20) && !memcmp(phys(pa), "RSD PTR ", 8) && !sum8(phys(pa), 20);
}

/* Legacy discovery for loaders that pass no RSDP: EBDA, then 0xE0000-0xFFFFF. */
static uint64_t rsdp_scan(void)
{
	uint64_t ebda = (uint64_t)*(volatile uint16_t *)phys(0x40E) << 4;
	if (ebda >= 0x80000 && ebda < 0xA0000)
		for (uint64_t a = ebda; a < ebda + 1024; a += 16)
			if (rsdp_ok(a))
				return a;
	for (uint64_t a = 0xE0000; a < 0x100000; a += 16)
		if (rsdp_ok(a))
			return a;
	return 0;
}

static const struct sdt_header *table_at(struct platform *p, uint64_t pa, const char *what)
{
	if (!pa || !phys_ok(pa, sizeof(struct sdt_header))) {
		fail(p, "%s at %#lx not mapped", what, pa);
		return NULL;
	}
	const struct sdt_header *h = phys(pa);
	char sig[5] = { h->sig[0], h->sig[1], h->sig[2], h->sig[3], 0 };
	if (h->len < sizeof(*h) || h->len > (16u << 20) || !phys_ok(pa, h->len)) {
		fail(p, "%s %s at %#lx bad length %u", what, sig, pa, h->len);
		return NULL;
	}
	if (sum8(h, h->len))
		fail(p, "%s checksum bad at %#lx", sig, pa);
	return h;
}

/* AML integer constants as QEMU and our VMM encode them in _S5. */
static bool aml_int(const uint8_t *a, size_t n, size_t *i, uint8_t *out)
{
	if (*i >= n)
		return false;
	switch (a[*i]) {
	case 0x00: /* ZeroOp */
	case 0x01: /* OneOp */
		*out = a[*i];
		*i += 1;
		return true;
	case 0x0A: /* BytePrefix */
	case 0x0B: /* WordPrefix: SLP_TYP is 3 bits, the low byte is enough */
	case 0x0C: /* DWordPrefix */
		if (*i + 1 >= n)
			return false;
		*out = a[*i + 1];
		*i += a[*i] == 0x0A ? 2 : a[*i] == 0x0B ? 3 : 5;
		return true;
	default:
		return false;
	}
}

/* Finds `Name(_S5_, Package(){a, b, ...})`: NameOp (0x08) [RootChar '\']
 * "_S5_" PackageOp (0x12) PkgLength NumElements then the elements. */
static bool find_s5(const uint8_t *a, size_t n, uint8_t *typa, uint8_t *typb)
{
	/* i starts at 1: the NameOp may be the first byte of the AML (it is in our DSDT). */
	for (size_t i = 1; i + 6 < n; i++) {
		if (memcmp(a + i, "_S5_", 4))
			continue;
		if (a[i - 1] != 0x08 && !(i >= 2 && a[i - 1] == 0x5C && a[i - 2] == 0x08))
			continue;
		size_t j = i + 4;
		if (a[j++] != 0x12)
			continue;
		j += 1 + (a[j] >> 6); /* PkgLength: bits 7:6 = extra length bytes */
		j++;                  /* NumElements */
		if (!aml_int(a, n, &j, typa))
			continue;
		if (!aml_int(a, n, &j, typb))
			*typb = 0;
		return true;
	}
	return false;
}

static void parse_fadt(struct platform *p, const struct sdt_header *h)
{
	uint32_t n = h->len;
	p->fadt = true;
	p->fadt_rev = h->rev;
	p->sci = (uint16_t)fld(h, n, 46, 2);
	p->pm1a_evt = (uint32_t)fld(h, n, 56, 4);
	p->pm1a_cnt = (uint32_t)fld(h, n, 64, 4);
	p->pm1b_cnt = (uint32_t)fld(h, n, 68, 4);
	p->pm_tmr = (uint32_t)fld(h, n, 76, 4);
	p->boot_arch = (uint16_t)fld(h, n, 109, 2);
	p->fadt_flags = (uint32_t)fld(h, n, 112, 4);
	p->hw_reduced = p->fadt_flags & (1u << 20);
	struct gas x_cnt = gas_at(h, n, 172); /* X_PM1a_CNT_BLK, if only that is set */
	if (!p->pm1a_cnt && x_cnt.space == 1 && x_cnt.addr < 0x10000)
		p->pm1a_cnt = (uint32_t)x_cnt.addr;
	p->sleep_ctl = gas_at(h, n, 244);
	uint64_t x_dsdt = fld(h, n, 140, 8);
	p->dsdt = x_dsdt ? x_dsdt : fld(h, n, 40, 4);
}

static void parse_madt(struct platform *p, const struct sdt_header *h)
{
	const uint8_t *b = (const uint8_t *)h;
	p->madt = true;
	p->lapic_addr = fld(h, h->len, 36, 4);
	p->madt_flags = (uint32_t)fld(h, h->len, 40, 4);
	for (uint32_t off = 44; off + 2 <= h->len; off += b[off + 1]) {
		uint8_t type = b[off], elen = b[off + 1];
		if (elen < 2 || off + elen > h->len) {
			fail(p, "MADT entry at offset %u malformed", off);
			return;
		}
		if (type == 0 && elen >= 8 && (fld(b, h->len, off + 4, 4) & 1)) { /* enabled LAPIC */
			if (p->ncpus < MAX_CPUS)
				p->cpu_apic[p->ncpus] = b[off + 3];
			p->ncpus++;
		} else if (type == 1 && elen >= 12 && p->nioapic < ARRAY_SIZE(p->ioapic)) {
			p->ioapic[p->nioapic++] = (struct ioapic_info){ b[off + 2], (uint32_t)fld(b, h->len, off + 4, 4),
				                                        (uint32_t)fld(b, h->len, off + 8, 4) };
		} else if (type == 2 && elen >= 10 && p->niso < ARRAY_SIZE(p->iso)) {
			p->iso[p->niso++] = (struct iso_info){ b[off + 2], b[off + 3], (uint16_t)fld(b, h->len, off + 8, 2),
				                               (uint32_t)fld(b, h->len, off + 4, 4) };
		} else if (type == 5 && elen >= 12) { /* LAPIC address override */
			p->lapic_addr = fld(b, h->len, off + 4, 8);
		} else if (type == 9 && elen >= 16 && (fld(b, h->len, off + 8, 4) & 1)) {
			p->nx2apic++;
		}
	}
}

static void scan_s5(struct platform *p, const struct sdt_header *h)
{
	if (!p->s5 && h)
		p->s5 = find_s5((const uint8_t *)(h + 1), h->len - sizeof(*h), &p->slp_typa, &p->slp_typb);
}

void acpi_scan(const struct boot_info *bi, struct platform *p)
{
	p->rsdp = bi->rsdp;
	if (!p->rsdp) {
		p->rsdp = rsdp_scan();
		p->rsdp_scanned = true;
	}
	if (!p->rsdp) {
		fail(p, "no RSDP (none in boot info, BIOS-area scan found none)");
		return;
	}
	if (!rsdp_ok(p->rsdp)) {
		fail(p, "RSDP at %#lx: bad signature or checksum", p->rsdp);
		return;
	}
	const uint8_t *r = phys(p->rsdp);
	p->rsdp_rev = r[15];
	uint64_t rsdt = fld(r, 20, 16, 4), xsdt = 0;
	if (p->rsdp_rev >= 2) {
		uint32_t len = (uint32_t)fld(r, 36, 20, 4);
		if (len < 36 || !phys_ok(p->rsdp, len) || sum8(r, len))
			fail(p, "RSDP extended checksum bad (length %u)", len);
		xsdt = fld(r, 36, 24, 8);
	}
	p->xsdt = xsdt != 0;
	p->sdt = xsdt ? xsdt : rsdt;
	const struct sdt_header *sdt = table_at(p, p->sdt, xsdt ? "XSDT" : "RSDT");
	if (!sdt)
		return;
	if (memcmp(sdt->sig, xsdt ? "XSDT" : "RSDT", 4))
		fail(p, "%s signature mismatch", xsdt ? "XSDT" : "RSDT");
	unsigned esize = xsdt ? 8 : 4;
	const struct sdt_header *ssdts[8];
	unsigned nssdt = 0;
	for (uint32_t off = sizeof(*sdt); off + esize <= sdt->len; off += esize) {
		const struct sdt_header *t = table_at(p, fld(sdt, sdt->len, off, esize), "table");
		if (!t)
			continue;
		p->ntables++;
		if (!memcmp(t->sig, "FACP", 4))
			parse_fadt(p, t);
		else if (!memcmp(t->sig, "APIC", 4))
			parse_madt(p, t);
		else if (!memcmp(t->sig, "SSDT", 4) && nssdt < ARRAY_SIZE(ssdts))
			ssdts[nssdt++] = t;
		else if (!memcmp(t->sig, "TPM2", 4) && !p->tpm2)
			p->tpm2 = (uint64_t)(uintptr_t)t;
	}
	if (p->fadt) {
		const struct sdt_header *dsdt = table_at(p, p->dsdt, "DSDT");
		if (dsdt && memcmp(dsdt->sig, "DSDT", 4))
			fail(p, "FADT's DSDT pointer %#lx has wrong signature", p->dsdt);
		scan_s5(p, dsdt);
		for (unsigned i = 0; i < nssdt; i++) /* _S5 may live in an SSDT */
			scan_s5(p, ssdts[i]);
	}
}

static void sleep_write(const struct platform *p, uint8_t typa, uint8_t typb)
{
	if (!p->hw_reduced && p->pm1a_cnt) {
		outw((uint16_t)p->pm1a_cnt, (uint16_t)(((typa & 7) << 10) | (1 << 13))); /* SLP_TYP | SLP_EN */
		if (p->pm1b_cnt)
			outw((uint16_t)p->pm1b_cnt, (uint16_t)(((typb & 7) << 10) | (1 << 13)));
	} else if (p->sleep_ctl.addr) {
		uint8_t v = (uint8_t)(((typa & 7) << 2) | (1 << 5)); /* HW-reduced SLP_TYP | SLP_EN */
		if (p->sleep_ctl.space == 0 && phys_ok(p->sleep_ctl.addr, 1))
			*(volatile uint8_t *)phys(p->sleep_ctl.addr) = v;
		else if (p->sleep_ctl.space == 1)
			outb((uint16_t)p->sleep_ctl.addr, v);
	}
	/* QEMU handles the request asynchronously; give it time to stop us. */
	udelay(300000);
}

void acpi_poweroff(const struct platform *p)
{
	cpu_cli();
	if (p->s5) {
		sleep_write(p, p->slp_typa, p->slp_typb);
	} else {
		sleep_write(p, 5, 5); /* our VMM's and QEMU GED's S5 value */
		sleep_write(p, 0, 0); /* QEMU PIIX/ICH9 */
	}
	kprintf("testguest: poweroff failed\n");
	for (;;)
		__asm__ volatile("cli; hlt");
}
