/*
 * check tpm (only with expect_tpm=crb): a TPM 2.0 behind the CRB interface,
 * found and driven the way Linux's tpm_crb does it.
 *
 * - ACPI: the TPM2 table ("TCG ACPI Specification", rev 4: start method 7 =
 *   CRB, control area = CTRL_REQ of locality 0) and the DSDT device with _HID
 *   "MSFT0101" (a string, not an EISA id), whose Memory32Fixed must be the
 *   register page the control area lies in. The DSDT is searched as bytes,
 *   like the virtio check does for LNRO0005: the guest has no AML interpreter.
 * - CRB (TCG PC Client PTP §6.5.3), locality 0: request the locality, then per
 *   command cmdReady, write the command into the buffer the CTRL_CMD_* / RSP_*
 *   registers name, CTRL_START, poll START (bounded: a TPM that never answers
 *   fails the check after 10 s), read the response, goIdle; relinquish the
 *   locality at the end.
 * - Commands (TPM 2.0 Part 3): GetRandom(16), PCR_Read(sha256:16), one command
 *   whose header commandSize exceeds the buffer (must be answered with an
 *   error), PCR_Extend(16) with a password session, PCR_Read again; the new
 *   value must be SHA-256(old || digest), computed here.
 *
 * A TPM that answers TPM_RC_INITIALIZE was never started. That is the
 * platform's job (the VMM sends TPM2_Startup), so it fails, unless
 * tpm_startup=guest asks the guest to send TPM2_Startup(SU_CLEAR) itself.
 * Output: `tpm: pcr16 sha256 <hex>` and the check line
 * `crb buf <addr>/<size> getrandom 16 pcr16 extend+read sha256 <8 hex> ...`.
 */
#include "platform.h"
#include "sha256.h"

/* CRB registers, PTP §6.5.3.2 (offsets in the locality 0 page). */
#define CRB_LOC_STATE 0x00
#define CRB_LOC_CTRL 0x08
#define CRB_LOC_STS 0x0C
#define CRB_INTF_ID 0x30
#define CRB_INTF_ID2 0x34
#define CRB_CTRL_REQ 0x40
#define CRB_CTRL_STS 0x44
#define CRB_CTRL_START 0x4C
#define CRB_CTRL_CMD_SIZE 0x58
#define CRB_CTRL_CMD_LADDR 0x5C
#define CRB_CTRL_CMD_HADDR 0x60
#define CRB_CTRL_RSP_SIZE 0x64
#define CRB_CTRL_RSP_ADDR 0x68

#define LOC_STATE_ASSIGNED (1u << 1)
#define LOC_STATE_ACTIVE(v) (((v) >> 2) & 7)
#define LOC_STATE_REG_VALID (1u << 7)
#define LOC_CTRL_REQUEST (1u << 0)
#define LOC_CTRL_RELINQUISH (1u << 1)
#define LOC_STS_GRANTED (1u << 0)
#define CTRL_REQ_CMD_READY (1u << 0)
#define CTRL_REQ_GO_IDLE (1u << 1)
#define CTRL_STS_FATAL (1u << 0)
#define CTRL_STS_IDLE (1u << 1)
#define INTF_TYPE_CRB 1

#define TPM_CRB_BASE 0xFED40000u /* PTP §5.4: the fixed PC address */
#define TPM_CRB_PAGE 0x1000u
#define TPM2_START_CRB 7

/* Timeouts: register handshakes follow PTP TIMEOUT_A/C but with margin for a
 * loaded TCG host; a command gets 10 s (no command sent here is slow). */
#define REG_TIMEOUT_US 1000000
#define CMD_TIMEOUT_US 10000000

/* TPM 2.0 Part 2 constants. */
#define TPM_ST_NO_SESSIONS 0x8001
#define TPM_ST_SESSIONS 0x8002
#define TPM_CC_STARTUP 0x144
#define TPM_CC_GET_RANDOM 0x17B
#define TPM_CC_PCR_READ 0x17E
#define TPM_CC_PCR_EXTEND 0x182
#define TPM_SU_CLEAR 0
#define TPM_ALG_SHA256 0x000B
#define TPM_RS_PW 0x40000009
#define TPM_RC_INITIALIZE 0x100
#define TPM_HDR 10
#define PCR_INDEX 16
#define RANDOM_BYTES 16

struct crb {
	uint64_t regs;          /* locality 0 register page */
	uint64_t cmd, rsp;      /* buffers, as the registers give them */
	uint32_t cmd_size, rsp_size;
	bool locality;          /* we hold locality 0 */
	bool buffers_ok;        /* buffers read and validated */
};

static uint8_t req[4096], resp[4096]; /* staging copies of a command and its answer */

static uint32_t reg_read(const struct crb *c, uint32_t off) { return mmio_read32(c->regs + off); }
static void reg_write(const struct crb *c, uint32_t off, uint32_t v) { mmio_write32(c->regs + off, v); }

/* Polls until (reg & mask) == want; false on timeout. */
static bool reg_wait(const struct crb *c, uint32_t off, uint32_t mask, uint32_t want, uint64_t us)
{
	uint64_t dl = deadline_us(us);
	for (;;) {
		if ((reg_read(c, off) & mask) == want)
			return true;
		if (deadline_passed(dl))
			return (reg_read(c, off) & mask) == want;
		cpu_pause();
	}
}

static void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)(v >> 8), b[1] = (uint8_t)v; }
static void put32(uint8_t *b, uint32_t v)
{
	put16(b, (uint16_t)(v >> 16));
	put16(b + 2, (uint16_t)v);
}
static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }
static uint32_t get32(const uint8_t *b) { return (uint32_t)get16(b) << 16 | get16(b + 2); }
static uint32_t le32(const uint8_t *b) { return (uint32_t)b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }
static uint64_t le64(const uint8_t *b) { return le32(b) | (uint64_t)le32(b + 4) << 32; }

static void hex(char *out, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- ACPI ---------------------------------------------------------------- */

/* The TPM2 table: returns the control area address, 0 after a failure. */
static uint64_t tpm2_table(const struct platform *p, struct detail *d)
{
	if (!p->tpm2) {
		detail_add(d, "no TPM2 table in the %s", p->xsdt ? "XSDT" : "RSDT");
		return 0;
	}
	const uint8_t *t = phys(p->tpm2);
	uint32_t len = le32(t + 4);
	uint8_t rev = t[8], sum = 0;
	/* acpi_scan() already bounded len by the identity map. */
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + t[i]);
	if (sum) {
		detail_add(d, "TPM2 table checksum bad");
		return 0;
	}
	if (rev != 4 || len < 64) { /* rev 4: 52 bytes + 12 start-method parameters (+ LAML/LASA) */
		detail_add(d, "TPM2 table revision %u length %u (want revision 4, >= 64 bytes)", rev, len);
		return 0;
	}
	uint64_t ctrl = le64(t + 40);
	uint32_t method = le32(t + 48);
	if (method != TPM2_START_CRB) {
		detail_add(d, "TPM2 start method %u (want 7 = CRB)", method);
		return 0;
	}
	if (ctrl != TPM_CRB_BASE + CRB_CTRL_REQ) {
		detail_add(d, "TPM2 control area %#lx (want %#x)", ctrl, TPM_CRB_BASE + CRB_CTRL_REQ);
		return 0;
	}
	return ctrl;
}

/* Finds the "MSFT0101" _HID string (StringPrefix 0x0D, NUL after it) in the
 * DSDT and, in the device's next bytes, its Memory32Fixed (0x86, length 9). */
static bool dsdt_tpm(const struct platform *p, uint64_t regs, struct detail *d)
{
	if (!p->dsdt || !phys_ok(p->dsdt, 36)) {
		detail_add(d, "no DSDT to find the MSFT0101 device in");
		return false;
	}
	const uint8_t *t = phys(p->dsdt);
	uint32_t len = le32(t + 4);
	if (memcmp(t, "DSDT", 4) || len < 36 || len > (16u << 20) || !phys_ok(p->dsdt, len)) {
		detail_add(d, "DSDT unusable");
		return false;
	}
	for (uint32_t i = 37; i + 9 <= len; i++) {
		if (t[i - 1] != 0x0D || memcmp(t + i, "MSFT0101", 8) || t[i + 8])
			continue;
		uint32_t end = i + 256 < len ? i + 256 : len;
		for (uint32_t j = i + 9; j + 12 <= end; j++) {
			if (t[j] != 0x86 || t[j + 1] != 9 || t[j + 2] != 0)
				continue;
			uint32_t base = le32(t + j + 4), size = le32(t + j + 8);
			if (base != regs || size < 0x80) {
				detail_add(d, "DSDT MSFT0101 Memory32Fixed %#x/%#x, TPM2 control area in page %#lx", base,
				           size, regs);
				return false;
			}
			return true;
		}
		detail_add(d, "DSDT MSFT0101 device without a Memory32Fixed");
		return false;
	}
	detail_add(d, "no MSFT0101 device in the DSDT (byte search)");
	return false;
}

/* ---- mapping ------------------------------------------------------------- */

/* head.S maps 0..4 GiB. A buffer above that gets one more GiB (2 MiB pages,
 * uncached) in the PDPT that boot_pml4[0] points at. */
extern uint64_t boot_pml4[];
static uint64_t high_pd[512] __attribute__((aligned(4096)));

static bool map_range(uint64_t pa, uint64_t len)
{
	if (phys_ok(pa, len))
		return true;
	uint64_t gib = pa >> 30;
	if (len > (1u << 30) || gib >= 512 || (pa + len - 1) >> 30 != gib)
		return false;
	uint64_t *pdpt = phys(boot_pml4[0] & ~0xFFFull);
	if (pdpt[gib] & 1)
		return true;
	if (high_pd[0]) /* one spare GiB only */
		return false;
	for (uint64_t i = 0; i < 512; i++)
		high_pd[i] = (gib << 30) + (i << 21) + 0x9b; /* P | RW | PWT | PCD | PS */
	pdpt[gib] = (uint64_t)(uintptr_t)high_pd + 3;
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
	return true;
}

static bool overlaps_ram(const struct boot_info *bi, uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < bi->nmem; i++) {
		const struct mem_region *m = &bi->mem[i];
		if (m->type == E820_RAM && m->size && start < m->addr + m->size && m->addr < end)
			return true;
	}
	return start < (uint64_t)(uintptr_t)_image_end && (uint64_t)(uintptr_t)_image_start < end;
}

/* ---- CRB ----------------------------------------------------------------- */

static bool crb_open(struct crb *c, const struct guest *g, struct detail *d)
{
	uint32_t state = reg_read(c, CRB_LOC_STATE), intf = reg_read(c, CRB_INTF_ID);
	if (!(state & LOC_STATE_REG_VALID) || (intf & 0xF) != INTF_TYPE_CRB) {
		detail_add(d, "LOC_STATE %#x INTF_ID %#x: not a CRB interface (want tpmRegValidSts, type 1)", state,
		           intf);
		return false;
	}
	reg_write(c, CRB_LOC_CTRL, LOC_CTRL_REQUEST);
	if (!reg_wait(c, CRB_LOC_STS, LOC_STS_GRANTED, LOC_STS_GRANTED, REG_TIMEOUT_US)) {
		detail_add(d, "locality 0 not granted (LOC_STS %#x)", reg_read(c, CRB_LOC_STS));
		return false;
	}
	c->locality = true;
	state = reg_read(c, CRB_LOC_STATE);
	if (!(state & LOC_STATE_ASSIGNED) || LOC_STATE_ACTIVE(state) != 0) {
		detail_add(d, "LOC_STATE %#x after the grant (want locAssigned, activeLocality 0)", state);
		return false;
	}
	c->cmd = reg_read(c, CRB_CTRL_CMD_LADDR) | (uint64_t)reg_read(c, CRB_CTRL_CMD_HADDR) << 32;
	c->cmd_size = reg_read(c, CRB_CTRL_CMD_SIZE);
	c->rsp = reg_read(c, CRB_CTRL_RSP_ADDR) | (uint64_t)reg_read(c, CRB_CTRL_RSP_ADDR + 4) << 32;
	c->rsp_size = reg_read(c, CRB_CTRL_RSP_SIZE);
	/* 256 bytes hold every command here; 4096 is the staging size. */
	if (c->cmd_size < 256 || c->cmd_size > sizeof(req) || c->rsp_size < 256 || c->rsp_size > sizeof(resp)) {
		detail_add(d, "buffer sizes cmd %u rsp %u (want 256..4096)", c->cmd_size, c->rsp_size);
		return false;
	}
	bool overlap = c->cmd < c->rsp + c->rsp_size && c->rsp < c->cmd + c->cmd_size;
	if (overlap && (c->cmd != c->rsp || c->cmd_size != c->rsp_size)) {
		/* Linux's tpm_crb refuses overlapping buffers of different sizes too. */
		detail_add(d, "cmd %#lx/%u and rsp %#lx/%u overlap but differ", c->cmd, c->cmd_size, c->rsp,
		           c->rsp_size);
		return false;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t a = i ? c->rsp : c->cmd, n = i ? c->rsp_size : c->cmd_size;
		bool in_regs = a >= c->regs + 0x80 && a + n <= c->regs + TPM_CRB_PAGE;
		if (a + n < a || (!in_regs && a < c->regs + TPM_CRB_PAGE && c->regs < a + n)) {
			detail_add(d, "%s buffer %#lx/%lu overlaps the registers", i ? "rsp" : "cmd", a, n);
			return false;
		}
		if (overlaps_ram(&g->boot, a, a + n)) {
			detail_add(d, "%s buffer %#lx/%lu overlaps e820 RAM or the guest image", i ? "rsp" : "cmd", a, n);
			return false;
		}
		if (!map_range(a, n)) {
			detail_add(d, "%s buffer %#lx/%lu cannot be mapped", i ? "rsp" : "cmd", a, n);
			return false;
		}
	}
	c->buffers_ok = true;
	return true;
}

static bool crb_request(const struct crb *c, uint32_t bit, struct detail *d)
{
	uint32_t idle = bit == CTRL_REQ_GO_IDLE ? CTRL_STS_IDLE : 0;
	reg_write(c, CRB_CTRL_REQ, bit);
	if (reg_wait(c, CRB_CTRL_REQ, bit, 0, REG_TIMEOUT_US) &&
	    reg_wait(c, CRB_CTRL_STS, CTRL_STS_IDLE, idle, REG_TIMEOUT_US))
		return true;
	detail_add(d, "%s not done (CTRL_REQ %#x CTRL_STS %#x)", bit == CTRL_REQ_GO_IDLE ? "goIdle" : "cmdReady",
	           reg_read(c, CRB_CTRL_REQ), reg_read(c, CRB_CTRL_STS));
	return false;
}

static void crb_close(struct crb *c, struct detail *d, bool *ok)
{
	if (!c->locality)
		return;
	/* Already idle after a good run; after a failure this is best effort. */
	struct detail idle = { .len = 0 };
	if (c->buffers_ok && !crb_request(c, CTRL_REQ_GO_IDLE, &idle) && *ok) {
		detail_add(d, " %s", idle.buf);
		*ok = false;
	}
	reg_write(c, CRB_LOC_CTRL, LOC_CTRL_RELINQUISH);
	if (!reg_wait(c, CRB_LOC_STATE, LOC_STATE_ASSIGNED, 0, REG_TIMEOUT_US)) {
		detail_add(d, " locality not relinquished (LOC_STATE %#x)", reg_read(c, CRB_LOC_STATE));
		*ok = false;
	}
	c->locality = false;
}

/*
 * One command: cmdReady, copy req[0..len) into the buffer (header commandSize
 * as given: the oversize case lies in it), START, wait, copy the answer into
 * resp, goIdle. Returns the response length (>= 10), or 0 after a failure.
 */
static uint32_t transact(const struct crb *c, uint32_t len, struct detail *d, const char *what)
{
	if (!crb_request(c, CTRL_REQ_CMD_READY, d))
		return 0;
	volatile uint8_t *cmd = phys(c->cmd);
	for (uint32_t i = 0; i < len; i++)
		cmd[i] = req[i];
	reg_write(c, CRB_CTRL_START, 1);
	if (!reg_wait(c, CRB_CTRL_START, 1, 0, CMD_TIMEOUT_US)) {
		/* No CTRL_CANCEL (PTP §6.5.3.5): QEMU forwards it to the emulator's
		 * control channel synchronously, from the vCPU, so a stuck TPM would
		 * hang the guest there. The check gives up on this TPM instead. */
		detail_add(d, "%s: timeout, no response in %u s (CTRL_START still 1)", what, CMD_TIMEOUT_US / 1000000);
		return 0;
	}
	uint32_t sts = reg_read(c, CRB_CTRL_STS);
	if (sts & CTRL_STS_FATAL) {
		detail_add(d, "%s: CTRL_STS.tpmSts (fatal) set, CTRL_STS %#x", what, sts);
		return 0;
	}
	volatile const uint8_t *rsp = phys(c->rsp);
	for (uint32_t i = 0; i < TPM_HDR; i++)
		resp[i] = rsp[i];
	uint32_t size = get32(resp + 2);
	uint16_t tag = get16(resp);
	if (size < TPM_HDR || size > c->rsp_size || (tag != TPM_ST_NO_SESSIONS && tag != TPM_ST_SESSIONS)) {
		detail_add(d, "%s: bad response header tag %#x size %u", what, tag, size);
		return 0;
	}
	for (uint32_t i = TPM_HDR; i < size; i++)
		resp[i] = rsp[i];
	/* Like Linux (tpm_chip_stop): idle between commands, so each one
	 * also exercises Idle -> Ready. */
	return crb_request(c, CTRL_REQ_GO_IDLE, d) ? size : 0;
}

static uint32_t rc_of(void) { return get32(resp + 6); }

/* ---- commands ------------------------------------------------------------ */

static uint32_t cmd_header(uint16_t tag, uint32_t cc, uint32_t size)
{
	put16(req, tag);
	put32(req + 2, size);
	put32(req + 6, cc);
	return size;
}

/* GetRandom(16): returns its rc, or ~0 after a transport/format failure. */
static uint32_t get_random(const struct crb *c, uint8_t out[RANDOM_BYTES], struct detail *d)
{
	put16(req + TPM_HDR, RANDOM_BYTES);
	uint32_t n = transact(c, cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_GET_RANDOM, 12), d, "GetRandom");
	if (!n)
		return ~0u;
	if (rc_of())
		return rc_of();
	if (n < TPM_HDR + 2 || get16(resp + 10) != RANDOM_BYTES || n != TPM_HDR + 2 + RANDOM_BYTES) {
		detail_add(d, "GetRandom returned %u bytes in a %u-byte response (want 16)",
		           n >= TPM_HDR + 2 ? get16(resp + 10) : 0, n);
		return ~0u;
	}
	memcpy(out, resp + 12, RANDOM_BYTES);
	return 0;
}

static bool startup_clear(const struct crb *c, struct detail *d)
{
	put16(req + TPM_HDR, TPM_SU_CLEAR);
	if (!transact(c, cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_STARTUP, 12), d, "Startup"))
		return false;
	if (rc_of()) {
		detail_add(d, "Startup(SU_CLEAR) rc %#x", rc_of());
		return false;
	}
	return true;
}

static bool pcr_read(const struct crb *c, uint8_t out[SHA256_DIGEST_SIZE], struct detail *d)
{
	uint8_t *p = req + TPM_HDR;
	put32(p, 1); /* TPML_PCR_SELECTION.count */
	put16(p + 4, TPM_ALG_SHA256);
	p[6] = 3; /* sizeofSelect: PCRs 0..23 */
	p[7] = p[8] = p[9] = 0;
	p[6 + 1 + PCR_INDEX / 8] = 1u << (PCR_INDEX % 8);
	uint32_t n = transact(c, cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, TPM_HDR + 10), d, "PCR_Read");
	if (!n)
		return false;
	if (rc_of()) {
		detail_add(d, "PCR_Read rc %#x", rc_of());
		return false;
	}
	/* pcrUpdateCounter, TPML_PCR_SELECTION (1 x {hash, 3, select[3]}), TPML_DIGEST (1 x {32, digest}). */
	const uint8_t *r = resp + TPM_HDR;
	if (n != TPM_HDR + 4 + 4 + 6 + 4 + 2 + SHA256_DIGEST_SIZE || get32(r + 4) != 1 || get16(r + 8) != TPM_ALG_SHA256 ||
	    r[10] != 3 || !(r[11 + PCR_INDEX / 8] & (1u << (PCR_INDEX % 8))) || get32(r + 14) != 1 ||
	    get16(r + 18) != SHA256_DIGEST_SIZE) {
		detail_add(d, "PCR_Read: unexpected %u-byte response (no SHA-256 PCR %u?)", n, PCR_INDEX);
		return false;
	}
	memcpy(out, r + 20, SHA256_DIGEST_SIZE);
	return true;
}

static bool pcr_extend(const struct crb *c, const uint8_t digest[SHA256_DIGEST_SIZE], struct detail *d)
{
	uint8_t *p = req + TPM_HDR;
	put32(p, PCR_INDEX); /* pcrHandle */
	put32(p + 4, 9);     /* authorizationSize: one password session */
	put32(p + 8, TPM_RS_PW);
	put16(p + 12, 0); /* nonceCaller: empty */
	p[14] = 0;        /* sessionAttributes */
	put16(p + 15, 0); /* hmac = the (empty) auth value of PCR 16 */
	put32(p + 17, 1); /* TPML_DIGEST_VALUES.count */
	put16(p + 21, TPM_ALG_SHA256);
	memcpy(p + 23, digest, SHA256_DIGEST_SIZE);
	uint32_t len = TPM_HDR + 23 + SHA256_DIGEST_SIZE;
	uint32_t n = transact(c, cmd_header(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, len), d, "PCR_Extend");
	if (!n)
		return false;
	if (rc_of()) {
		detail_add(d, "PCR_Extend rc %#x", rc_of());
		return false;
	}
	return true;
}

/* A header commandSize one byte past the buffer: an error response, not a hang. */
static bool oversize(const struct crb *c, struct detail *d, uint32_t *rc)
{
	put16(req + TPM_HDR, RANDOM_BYTES);
	cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_GET_RANDOM, c->cmd_size + 1);
	if (!transact(c, 12, d, "oversize command"))
		return false;
	if (!rc_of()) {
		detail_add(d, "commandSize %u > buffer %u answered with rc 0", c->cmd_size + 1, c->cmd_size);
		return false;
	}
	*rc = rc_of();
	return true;
}

static bool run_commands(const struct crb *c, const struct guest *g, struct detail *d, bool *started)
{
	uint8_t rnd[RANDOM_BYTES];
	uint32_t rc = get_random(c, rnd, d);
	if (rc == TPM_RC_INITIALIZE) {
		if (!g->opt.tpm_startup_guest) {
			detail_add(d, "TPM_RC_INITIALIZE: the VMM did not send TPM2_Startup (tpm_startup=guest sends it)");
			return false;
		}
		if (!startup_clear(c, d))
			return false;
		*started = true;
		rc = get_random(c, rnd, d);
	}
	if (rc == ~0u)
		return false;
	if (rc) {
		detail_add(d, "GetRandom rc %#x", rc);
		return false;
	}
	bool varied = false;
	for (unsigned i = 1; i < RANDOM_BYTES; i++)
		varied |= rnd[i] != rnd[0];
	if (!varied) {
		detail_add(d, "GetRandom: 16 equal bytes %#x", rnd[0]);
		return false;
	}

	uint8_t old[SHA256_DIGEST_SIZE], now[SHA256_DIGEST_SIZE], ext[SHA256_DIGEST_SIZE], want[SHA256_DIGEST_SIZE];
	if (!pcr_read(c, old, d))
		return false;
	uint32_t over_rc;
	if (!oversize(c, d, &over_rc))
		return false;
	static const char what[] = "testguest tpm check: PCR 16 extend";
	sha256(what, sizeof(what) - 1, ext);
	if (!pcr_extend(c, ext, d) || !pcr_read(c, now, d))
		return false;
	struct sha256 s; /* extend: new = H(old || digest), Part 1 §17.2 */
	sha256_init(&s);
	sha256_update(&s, old, sizeof(old));
	sha256_update(&s, ext, sizeof(ext));
	sha256_final(&s, want);
	char hx[2 * SHA256_DIGEST_SIZE + 1];
	hex(hx, now, sizeof(now));
	kprintf("tpm: pcr16 sha256 %s\n", hx);
	if (memcmp(now, want, sizeof(now))) {
		char hw[2 * SHA256_DIGEST_SIZE + 1];
		hex(hw, want, sizeof(want));
		hx[16] = hw[16] = '\0';
		detail_add(d, "PCR 16 after extend %s..., want SHA-256(old || digest) %s...", hx, hw);
		return false;
	}
	hx[8] = '\0';
	detail_add(d, "crb buf %#lx/%u", c->cmd, c->cmd_size);
	if (c->rsp != c->cmd)
		detail_add(d, " rsp %#lx/%u", c->rsp, c->rsp_size);
	detail_add(d, " getrandom %u pcr16 extend+read sha256 %s oversize rc %#x", RANDOM_BYTES, hx, over_rc);
	return true;
}

/* FIPS 180-4 example "abc": a broken SHA-256 must not be blamed on the TPM. */
static bool sha256_selftest(void)
{
	static const uint8_t abc[SHA256_DIGEST_SIZE] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	uint8_t out[SHA256_DIGEST_SIZE];
	sha256("abc", 3, out);
	return !memcmp(out, abc, sizeof(out));
}

bool check_tpm(struct guest *g, struct detail *d)
{
	if (!g->opt.expect_tpm) {
		detail_add(d, "skipped (no expect_tpm=crb)");
		return true;
	}
	if (g->opt.expect_tpm != TPM_EXPECT_CRB) {
		detail_add(d, "expect_tpm: unknown interface (only crb)");
		return false;
	}
	if (!sha256_selftest()) {
		detail_add(d, "guest SHA-256 self-test failed");
		return false;
	}
	uint64_t ctrl = tpm2_table(&g->plat, d);
	if (!ctrl)
		return false;
	struct crb c = { .regs = ctrl - CRB_CTRL_REQ };
	if (!dsdt_tpm(&g->plat, c.regs, d))
		return false;
	bool started = false;
	bool ok = crb_open(&c, g, d) && run_commands(&c, g, d, &started);
	crb_close(&c, d, &ok);
	if (ok && started)
		detail_add(d, " startup by guest");
	return ok;
}
