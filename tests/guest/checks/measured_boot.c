/*
 * check measured-boot (only with expect_tpm=crb): the TCG event log the platform left for us,
 * read the way an OS reads it, and held against the TPM and against our own memory.
 *
 * - The log: the ACPI TPM2 table's LAML/LASA ("TCG ACPI Specification", table revision 4,
 *   76 bytes with them). It must lie outside e820 RAM and inside the identity map.
 * - Its format (TCG PC Client Platform Firmware Profile §10): a TCG_PCR_EVENT header carrying
 *   the Spec ID Event03 and its algorithm list, then TCG_PCR_EVENT2 records, every field
 *   bounds-checked against LAML. A record boundary whose PCR index and type are both 0 (or
 *   both ~0) is the end, as for Linux.
 * - Replay of the SHA-256 and SHA-384 banks (PCRs 0-16 and 23 start at zero, 17-22 at ones;
 *   an EV_NO_ACTION StartupLocality event sets PCR 0's last byte), then TPM2_PCR_Read over
 *   the CRB (src/crb.c) of every PCR the log touches: each must equal the replay. The TPM's
 *   values are printed, `mb: pcr <n> <bank> <hex>`, for the host to compare with
 *   `vmm measure`.
 * - Our VMM's scheme (README "Measured boot"; recognised by an EV_S_CRTM_VERSION "vmm ..."):
 *   both banks must be in the log, and what the guest holds is hashed again here: the
 *   command line it was given (PCR 8 EV_IPL, whose data must be the same bytes), the
 *   initramfs (PCR 9 EV_IPL "initramfs", iff the boot protocol names one), every ACPI table it
 *   can reach (PCR 1 "ACPI <signature>": RSDP, XSDT or RSDT, the tables they list, the DSDT and
 *   the FACS; each must have its event and each event its table). The kernel's image
 *   (PCR 4 "kernel") is not in memory as the VMM read it, so it is only replayed; every other
 *   event's digest must be the hash of its data. The log's free space must be zero.
 *   Another platform's log (SeaBIOS under QEMU) is replayed and compared only.
 */
#include "crb.h"
#include "sha256.h"
#include "sha512.h"

#define EV_NO_ACTION 0x3
#define EV_S_CRTM_VERSION 0x8
#define EV_PLATFORM_CONFIG_FLAGS 0xA
#define EV_IPL 0xD
#define NUM_PCRS 24
#define MAX_ALGS 8
#define MAX_DIGEST 64
#define LOG_MAX (1u << 20)     /* a larger LAML is refused, not walked */
#define TPM2_LEN_WITH_LOG 76   /* TPM2 table: LAML at 64, LASA at 68 */
#define MAX_TABLES 32
#define INITRD_MAX (1ull << 30)

struct bank {
	uint16_t alg, size;
	const char *name;
	bool in_log;  /* the log's header lists it */
	uint8_t pcr[NUM_PCRS][SHA384_DIGEST_SIZE];
};
static struct bank banks[] = {
	{ TPM_ALG_SHA256, SHA256_DIGEST_SIZE, "sha256", false, { { 0 } } },
	{ TPM_ALG_SHA384, SHA384_DIGEST_SIZE, "sha384", false, { { 0 } } },
};
#define NBANKS ARRAY_SIZE(banks)

struct log {
	const uint8_t *p;
	uint32_t len;  /* LAML */
	uint64_t addr; /* LASA */
	struct {
		uint16_t alg, size;
	} algs[MAX_ALGS];
	uint32_t nalgs;
	uint32_t first;  /* offset of the first TCG_PCR_EVENT2 */
};

struct event {
	uint32_t index; /* 1 = the first record after the header */
	uint32_t pcr, type;
	const uint8_t *digest[NBANKS]; /* our banks' digests in the record, NULL if absent */
	const uint8_t *data;
	uint32_t size;
};

struct cursor {
	const struct log *log;
	uint32_t off, index;
	bool failed;
};

/* A table the guest can reach, and whether an event measured it. */
struct table {
	char sig[5];
	uint64_t addr;
	uint32_t len;
	bool measured;
};

static void hash(unsigned bank, const void *data, size_t len, uint8_t *out)
{
	if (banks[bank].alg == TPM_ALG_SHA256)
		sha256(data, len, out);
	else
		sha384(data, len, out);
}

/* ---- the log ------------------------------------------------------------- */

static bool find_log(const struct guest *g, struct log *l, struct detail *d)
{
	const uint8_t *t = phys(g->plat.tpm2); /* tpm2_control_area() checked it */
	uint32_t len = le32(t + 4);
	if (len < TPM2_LEN_WITH_LOG) {
		detail_add(d, "TPM2 table is %u bytes: no LAML/LASA (want >= %u)", len, TPM2_LEN_WITH_LOG);
		return false;
	}
	l->len = le32(t + 64);
	l->addr = le64(t + 68);
	if (!l->len || !l->addr) {
		detail_add(d, "TPM2 table names no log (LAML %u LASA %#lx)", l->len, l->addr);
		return false;
	}
	if (l->len > LOG_MAX || !phys_ok(l->addr, l->len)) {
		detail_add(d, "log %#lx/%u too large or outside the identity map", l->addr, l->len);
		return false;
	}
	const struct boot_info *bi = &g->boot;
	for (unsigned i = 0; i < bi->nmem; i++) {
		const struct mem_region *m = &bi->mem[i];
		if (m->type == E820_RAM && l->addr < m->addr + m->size && m->addr < l->addr + l->len) {
			detail_add(d, "log %#lx/%u lies in e820 RAM %#lx/%#lx", l->addr, l->len, m->addr, m->size);
			return false;
		}
	}
	l->p = phys(l->addr);
	return true;
}

/* The TCG_PCR_EVENT header and its Spec ID Event03. */
static bool parse_header(struct log *l, struct detail *d)
{
	static const char sig[16] = "Spec ID Event03";
	const uint8_t *p = l->p;
	if (l->len < 32 + 29 || le32(p) != 0 || le32(p + 4) != EV_NO_ACTION) {
		detail_add(d, "log header: not an EV_NO_ACTION in PCR 0 (a SHA-1-only log?)");
		return false;
	}
	uint32_t size = le32(p + 28);
	const uint8_t *s = p + 32;
	if (size < 29 || size > l->len - 32 || memcmp(s, sig, sizeof(sig))) {
		detail_add(d, "log header: no Spec ID Event03 (event size %u)", size);
		return false;
	}
	l->nalgs = le32(s + 24);
	if (!l->nalgs || l->nalgs > MAX_ALGS || 28 + 4 * l->nalgs + 1 > size) {
		detail_add(d, "Spec ID Event03: %u algorithms in %u bytes", l->nalgs, size);
		return false;
	}
	for (uint32_t i = 0; i < l->nalgs; i++) {
		uint16_t alg = le16(s + 28 + 4 * i), dsize = le16(s + 30 + 4 * i);
		if (!dsize || dsize > MAX_DIGEST) {
			detail_add(d, "Spec ID Event03: algorithm %#x with digest size %u", alg, dsize);
			return false;
		}
		for (uint32_t j = 0; j < i; j++)
			if (l->algs[j].alg == alg) {
				detail_add(d, "Spec ID Event03: algorithm %#x listed twice", alg);
				return false;
			}
		for (unsigned b = 0; b < NBANKS; b++)
			if (banks[b].alg == alg) {
				if (dsize != banks[b].size) {
					detail_add(d, "Spec ID Event03: %s with digest size %u", banks[b].name, dsize);
					return false;
				}
				banks[b].in_log = true;
			}
		l->algs[i].alg = alg;
		l->algs[i].size = dsize;
	}
	uint32_t vendor = s[28 + 4 * l->nalgs];
	if (28 + 4 * l->nalgs + 1 + vendor != size) {
		detail_add(d, "Spec ID Event03: %u bytes, its fields add up to %u", size,
		           28 + 4 * l->nalgs + 1 + vendor);
		return false;
	}
	l->first = 32 + size;
	return true;
}

static bool room(struct cursor *c, uint32_t off, uint32_t n, struct detail *d, const char *what)
{
	if (off <= c->log->len && n <= c->log->len - off)
		return true;
	detail_add(d, "event %u at log offset %u: %s runs past LAML %u", c->index, c->off, what, c->log->len);
	c->failed = true;
	return false;
}

/* The next TCG_PCR_EVENT2; false at the end of the log or after an error (c->failed). */
static bool next_event(struct cursor *c, struct event *e, struct detail *d)
{
	const struct log *l = c->log;
	uint32_t off = c->off;
	if (l->len - off < 8)
		return false;
	uint32_t pcr = le32(l->p + off), type = le32(l->p + off + 4);
	if ((pcr == 0 && type == 0) || (pcr == ~0u && type == ~0u))
		return false;
	c->index++;
	if (!room(c, off, 12, d, "header"))
		return false;
	uint32_t count = le32(l->p + off + 8);
	if (pcr >= NUM_PCRS || count > l->nalgs) {
		detail_add(d, "event %u at log offset %u: PCR %u, %u digests (header lists %u algorithms)", c->index,
		           off, pcr, count, l->nalgs);
		c->failed = true;
		return false;
	}
	*e = (struct event){ .index = c->index, .pcr = pcr, .type = type };
	off += 12;
	for (uint32_t i = 0; i < count; i++) {
		if (!room(c, off, 2, d, "digest"))
			return false;
		uint16_t alg = le16(l->p + off);
		uint32_t a = 0;
		while (a < l->nalgs && l->algs[a].alg != alg)
			a++;
		if (a == l->nalgs) {
			detail_add(d, "event %u: digest of algorithm %#x, not in the header", c->index, alg);
			c->failed = true;
			return false;
		}
		if (!room(c, off + 2, l->algs[a].size, d, "digest"))
			return false;
		for (unsigned b = 0; b < NBANKS; b++)
			if (banks[b].alg == alg) {
				if (e->digest[b]) {
					detail_add(d, "event %u: two %s digests", c->index, banks[b].name);
					c->failed = true;
					return false;
				}
				e->digest[b] = l->p + off + 2;
			}
		off += 2 + l->algs[a].size;
	}
	if (!room(c, off, 4, d, "event size"))
		return false;
	e->size = le32(l->p + off);
	if (!room(c, off + 4, e->size, d, "event data"))
		return false;
	e->data = l->p + off + 4;
	c->off = off + 4 + e->size;
	return true;
}

static bool is_startup_locality(const struct event *e)
{
	return e->type == EV_NO_ACTION && e->pcr == 0 && e->size == 17 && !memcmp(e->data, "StartupLocality", 16);
}

/* ---- replay -------------------------------------------------------------- */

struct replay {
	uint32_t events, touched; /* touched: bit per PCR */
	bool vmm;                 /* an EV_S_CRTM_VERSION "vmm ..." */
	uint32_t end;             /* offset after the last record */
};

static bool replay_log(const struct log *l, struct replay *r, struct detail *d)
{
	for (unsigned b = 0; b < NBANKS; b++)
		for (unsigned i = 0; i < NUM_PCRS; i++)
			memset(banks[b].pcr[i], i >= 17 && i <= 22 ? 0xFF : 0, banks[b].size);
	struct cursor c = { .log = l, .off = l->first };
	struct event e;
	bool pcr0_extended = false;
	while (next_event(&c, &e, d)) {
		r->events++;
		if (is_startup_locality(&e)) {
			if (pcr0_extended) {
				detail_add(d, "event %u: StartupLocality after PCR 0 was extended", e.index);
				return false;
			}
			for (unsigned b = 0; b < NBANKS; b++)
				banks[b].pcr[0][banks[b].size - 1] = e.data[16];
			r->touched |= 1;
			continue;
		}
		if (e.type == EV_NO_ACTION)
			continue;
		if (e.type == EV_S_CRTM_VERSION && e.size >= 4 && !memcmp(e.data, "vmm ", 4))
			r->vmm = true;
		pcr0_extended |= e.pcr == 0;
		r->touched |= 1u << e.pcr;
		for (unsigned b = 0; b < NBANKS; b++) {
			if (!banks[b].in_log)
				continue;
			if (!e.digest[b]) {
				detail_add(d, "event %u (PCR %u): no %s digest", e.index, e.pcr, banks[b].name);
				return false;
			}
			uint8_t cat[2 * SHA384_DIGEST_SIZE]; /* extend: H(old || digest), TPM 2.0 Part 1 §17.2 */
			memcpy(cat, banks[b].pcr[e.pcr], banks[b].size);
			memcpy(cat + banks[b].size, e.digest[b], banks[b].size);
			hash(b, cat, 2u * banks[b].size, banks[b].pcr[e.pcr]);
		}
	}
	r->end = c.off;
	return !c.failed;
}

/* ---- what the guest holds ------------------------------------------------ */

static void add_table(struct table *t, unsigned *n, const char *sig, uint64_t addr, uint32_t len)
{
	if (*n >= MAX_TABLES || !len || !phys_ok(addr, len)) /* unreachable: its event finds no table */
		return;
	memcpy(t[*n].sig, sig, 4);
	t[*n].sig[4] = '\0';
	t[*n].addr = addr;
	t[*n].len = len;
	t[*n].measured = false;
	(*n)++;
}

/* A table with a standard header at pa: its length, 0 if unusable. */
static uint32_t table_len(uint64_t pa, uint32_t min)
{
	if (!pa || !phys_ok(pa, 8))
		return 0;
	uint32_t len = le32((const uint8_t *)phys(pa) + 4);
	return len >= min && len <= (16u << 20) && phys_ok(pa, len) ? len : 0;
}

/* The tables reachable from the RSDP (acpi_scan() found it): the RSDP itself, the XSDT or
 * RSDT, each table it lists, and the DSDT and FACS that the FADT names. */
static unsigned collect_tables(const struct platform *p, struct table *t)
{
	unsigned n = 0;
	const uint8_t *rsdp = phys(p->rsdp);
	uint32_t rsdp_len = p->rsdp_rev >= 2 ? le32(rsdp + 20) : 20;
	add_table(t, &n, "RSDP", p->rsdp, rsdp_len >= 20 && rsdp_len <= 4096 ? rsdp_len : 0);
	uint32_t len = table_len(p->sdt, 36);
	if (!len)
		return n;
	const uint8_t *sdt = phys(p->sdt);
	add_table(t, &n, (const char *)sdt, p->sdt, len);
	unsigned esize = p->xsdt ? 8 : 4;
	for (uint32_t off = 36; off + esize <= len; off += esize) {
		uint64_t pa = esize == 8 ? le64(sdt + off) : le32(sdt + off);
		uint32_t tlen = table_len(pa, 36);
		if (!tlen)
			continue;
		const uint8_t *h = phys(pa);
		add_table(t, &n, (const char *)h, pa, tlen);
		if (memcmp(h, "FACP", 4))
			continue;
		uint64_t dsdt = tlen >= 148 && le64(h + 140) ? le64(h + 140) : le32(h + 40);
		uint64_t facs = tlen >= 140 && le64(h + 132) ? le64(h + 132) : le32(h + 36);
		uint32_t dlen = table_len(dsdt, 36), flen = table_len(facs, 64);
		if (dlen)
			add_table(t, &n, "DSDT", dsdt, dlen);
		if (flen)
			add_table(t, &n, "FACS", facs, flen);
	}
	return n;
}

/* Both banks' digests of e against our own hash of [data, data + len). */
static bool digests_match(const struct event *e, const void *data, size_t len, const char *what,
                          struct detail *d)
{
	for (unsigned b = 0; b < NBANKS; b++) {
		uint8_t h[SHA384_DIGEST_SIZE];
		hash(b, data, len, h);
		if (memcmp(h, e->digest[b], banks[b].size)) {
			detail_add(d, "event %u (PCR %u): %s digest is not that of %s", e->index, e->pcr, banks[b].name,
			           what);
			return false;
		}
	}
	return true;
}

struct rehash {
	bool cmdline, initrd;
	unsigned tables;
};

static bool rehash_event(const struct guest *g, const struct event *e, struct table *t, unsigned nt,
                         struct rehash *r, struct detail *d)
{
	const struct boot_info *bi = &g->boot;
	if (e->type == EV_IPL && e->pcr == 4 && e->size == 6 && !memcmp(e->data, "kernel", 6))
		return true; /* the image as read is not in memory: replayed only */
	if (e->type == EV_IPL && e->pcr == 9 && e->size == 9 && !memcmp(e->data, "initramfs", 9)) {
		if (!bi->initrd_size) {
			detail_add(d, "event %u: an initramfs was measured, the boot protocol names none", e->index);
			return false;
		}
		r->initrd = true;
		return digests_match(e, phys(bi->initrd_addr), bi->initrd_size, "our initramfs", d);
	}
	if (e->type == EV_PLATFORM_CONFIG_FLAGS && e->pcr == 1 && e->size == 9 && !memcmp(e->data, "ACPI ", 5)) {
		for (unsigned i = 0; i < nt; i++) {
			if (t[i].measured || memcmp(t[i].sig, e->data + 5, 4))
				continue;
			t[i].measured = true;
			r->tables++;
			return digests_match(e, phys(t[i].addr), t[i].len, t[i].sig, d);
		}
		char sig[5] = { (char)e->data[5], (char)e->data[6], (char)e->data[7], (char)e->data[8], 0 };
		detail_add(d, "event %u: \"ACPI %s\" measured, no such table (left) in our ACPI", e->index, sig);
		return false;
	}
	if (e->type == EV_IPL && e->pcr == 8) {
		if (bi->cmdline_truncated || e->size != bi->cmdline_len || memcmp(e->data, bi->cmdline, e->size)) {
			detail_add(d, "event %u: the measured command line (%u bytes) is not ours (%u bytes)", e->index,
			           e->size, bi->cmdline_len);
			return false;
		}
		r->cmdline = true;
		return digests_match(e, bi->cmdline, bi->cmdline_len, "our command line", d);
	}
	return digests_match(e, e->data, e->size, "its data", d);
}

/* Our VMM's log: both banks, cmdline, initramfs and every reachable ACPI table rehashed. */
static bool rehash_vmm_log(const struct guest *g, const struct log *l, const struct replay *rp,
                           struct rehash *r, struct detail *d)
{
	for (unsigned b = 0; b < NBANKS; b++)
		if (!banks[b].in_log) {
			detail_add(d, "the log has no %s bank", banks[b].name);
			return false;
		}
	const struct boot_info *bi = &g->boot;
	if (bi->initrd_size &&
	    (bi->initrd_size > INITRD_MAX || !phys_ok(bi->initrd_addr, bi->initrd_size) ||
	     (bi->initrd_addr < (uint64_t)(uintptr_t)_image_end &&
	      (uint64_t)(uintptr_t)_image_start < bi->initrd_addr + bi->initrd_size))) {
		detail_add(d, "initramfs %#lx/%#lx: not in the identity map or over the guest image", bi->initrd_addr,
		           bi->initrd_size);
		return false;
	}
	static struct table t[MAX_TABLES];
	unsigned nt = collect_tables(&g->plat, t);
	struct cursor c = { .log = l, .off = l->first };
	struct event e;
	while (next_event(&c, &e, d))
		if (e.type != EV_NO_ACTION && !rehash_event(g, &e, t, nt, r, d))
			return false;
	if (c.failed)
		return false;
	if (!r->cmdline) {
		detail_add(d, "no PCR 8 EV_IPL: the command line was not measured");
		return false;
	}
	if (bi->initrd_size && !r->initrd) {
		detail_add(d, "initramfs at %#lx (%lu bytes) not measured", bi->initrd_addr, bi->initrd_size);
		return false;
	}
	for (unsigned i = 0; i < nt; i++)
		if (!t[i].measured) {
			detail_add(d, "ACPI %s at %#lx not measured", t[i].sig, t[i].addr);
			return false;
		}
	for (uint32_t off = rp->end; off < l->len; off++)
		if (l->p[off]) {
			detail_add(d, "log byte %u (after the last event, at %u) is %#x, not free space", off, rp->end,
			           l->p[off]);
			return false;
		}
	return true;
}

/* ---- the TPM ------------------------------------------------------------- */

static bool compare_pcrs(const struct guest *g, const struct replay *r, struct detail *d)
{
	struct crb c = { .regs = tpm2_control_area(&g->plat, d) - CRB_CTRL_REQ };
	bool ok = crb_open(&c, g, d);
	for (unsigned b = 0; ok && b < NBANKS; b++) {
		if (!banks[b].in_log)
			continue;
		for (unsigned i = 0; ok && i < NUM_PCRS; i++) {
			if (!(r->touched & (1u << i)))
				continue;
			uint8_t v[SHA384_DIGEST_SIZE];
			char hx[2 * SHA384_DIGEST_SIZE + 1], hw[2 * SHA384_DIGEST_SIZE + 1];
			ok = tpm_pcr_read(&c, banks[b].alg, i, v, banks[b].size, d);
			if (!ok)
				break;
			hex_encode(hx, v, banks[b].size);
			kprintf("mb: pcr %u %s %s\n", i, banks[b].name, hx);
			if (memcmp(v, banks[b].pcr[i], banks[b].size)) {
				hex_encode(hw, banks[b].pcr[i], banks[b].size);
				hx[16] = hw[16] = '\0';
				detail_add(d, "PCR %u %s: the TPM holds %s..., the log replays to %s...", i,
				           banks[b].name, hx, hw);
				ok = false;
			}
		}
	}
	crb_close(&c, d, &ok);
	return ok;
}

bool check_measured_boot(struct guest *g, struct detail *d)
{
	bool result;
	if (!crb_check_start(g, d, &result))
		return result;
	if (!sha512_selftest()) {
		detail_add(d, "guest SHA-384 self-test failed");
		return false;
	}
	struct log l = { 0 };
	struct replay r = { 0 };
	if (!find_log(g, &l, d) || !parse_header(&l, d))
		return false;
	if (!banks[0].in_log && !banks[1].in_log) {
		detail_add(d, "the log has neither a sha256 nor a sha384 bank");
		return false;
	}
	if (!replay_log(&l, &r, d))
		return false;
	struct rehash rh = { 0 };
	if (r.vmm && !rehash_vmm_log(g, &l, &r, &rh, d))
		return false;
	if (!compare_pcrs(g, &r, d))
		return false;
	detail_add(d, "%u events, pcrs ", r.events);
	const char *sep = "";
	for (unsigned i = 0; i < NUM_PCRS; i++)
		if (r.touched & (1u << i)) {
			detail_add(d, "%s%u", sep, i);
			sep = ",";
		}
	detail_add(d, " match (");
	sep = "";
	for (unsigned b = 0; b < NBANKS; b++)
		if (banks[b].in_log) {
			detail_add(d, "%s%s", sep, banks[b].name);
			sep = ",";
		}
	if (!r.vmm)
		detail_add(d, "); not the vmm's log (no S-CRTM version \"vmm ...\"): nothing rehashed");
	else
		detail_add(d, "); cmdline, %s%u acpi tables rehashed", rh.initrd ? "initramfs, " : "", rh.tables);
	return true;
}
