/*
 * The TPM 2.0 CRB interface at locality 0 (TCG PC Client PTP §6.5.3), driven the way Linux's
 * tpm_crb does it: request the locality, then per command cmdReady, write the command into the
 * buffer the CTRL_CMD_* / RSP_* registers name, CTRL_START, poll START (bounded: a TPM that
 * never answers fails after 10 s), read the response, goIdle; relinquish at the end. The
 * tpm and measured-boot checks share it (include/crb.h).
 */
#include "crb.h"

#include "sha256.h"

/* CRB registers, PTP §6.5.3.2 (offsets in the locality 0 page). */
#define CRB_LOC_STATE 0x00
#define CRB_LOC_CTRL 0x08
#define CRB_LOC_STS 0x0C
#define CRB_INTF_ID 0x30
#define CRB_INTF_ID2 0x34
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
#define TPM_CC_PCR_READ 0x17E

/* Timeouts: register handshakes follow PTP TIMEOUT_A/C but with margin for a
 * loaded TCG host; a command gets 10 s (no command sent here is slow). */
#define REG_TIMEOUT_US 1000000
#define CMD_TIMEOUT_US 10000000

uint8_t crb_req[4096], crb_resp[4096];

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

/* ---- ACPI ---------------------------------------------------------------- */

uint64_t tpm2_control_area(const struct platform *p, struct detail *d)
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

uint64_t crb_hash_and_control_area(const struct guest *g, struct detail *d)
{
	if (!sha256_selftest()) {
		detail_add(d, "guest SHA-256 self-test failed");
		return 0;
	}
	return tpm2_control_area(&g->plat, d);
}

uint64_t crb_check_start(const struct guest *g, struct detail *d, bool *result)
{
	*result = false;
	if (!g->opt.expect_tpm) {
		detail_add(d, "skipped (no expect_tpm=crb)");
		*result = true;
		return 0;
	}
	if (g->opt.expect_tpm != TPM_EXPECT_CRB) {
		detail_add(d, "expect_tpm: unknown interface (only crb)");
		return 0;
	}
	return crb_hash_and_control_area(g, d);
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

bool crb_open(struct crb *c, const struct guest *g, struct detail *d)
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
	if (c->cmd_size < 256 || c->cmd_size > sizeof(crb_req) || c->rsp_size < 256 || c->rsp_size > sizeof(crb_resp)) {
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

void crb_close(struct crb *c, struct detail *d, bool *ok)
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
 * One command: cmdReady, copy crb_req[0..len) into the buffer (header commandSize
 * as given: the oversize case lies in it), START, wait, copy the answer into
 * crb_resp, goIdle. Returns the response length (>= 10), or 0 after a failure.
 */
uint32_t crb_transact(const struct crb *c, uint32_t len, struct detail *d, const char *what)
{
	if (!crb_request(c, CTRL_REQ_CMD_READY, d))
		return 0;
	volatile uint8_t *cmd = phys(c->cmd);
	for (uint32_t i = 0; i < len; i++)
		cmd[i] = crb_req[i];
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
		crb_resp[i] = rsp[i];
	uint32_t size = get32(crb_resp + 2);
	uint16_t tag = get16(crb_resp);
	if (size < TPM_HDR || size > c->rsp_size || (tag != TPM_ST_NO_SESSIONS && tag != TPM_ST_SESSIONS)) {
		detail_add(d, "%s: bad response header tag %#x size %u", what, tag, size);
		return 0;
	}
	for (uint32_t i = TPM_HDR; i < size; i++)
		crb_resp[i] = rsp[i];
	/* Like Linux (tpm_chip_stop): idle between commands, so each one
	 * also exercises Idle -> Ready. */
	return crb_request(c, CTRL_REQ_GO_IDLE, d) ? size : 0;
}

uint32_t crb_cmd_header(uint16_t tag, uint32_t cc, uint32_t size)
{
	put16(crb_req, tag);
	put32(crb_req + 2, size);
	put32(crb_req + 6, cc);
	return size;
}


bool tpm_pcr_read(const struct crb *c, uint16_t alg, uint32_t pcr, uint8_t *out, uint16_t size,
                  struct detail *d)
{
	uint8_t *p = crb_req + TPM_HDR;
	put32(p, 1); /* TPML_PCR_SELECTION.count */
	put16(p + 4, alg);
	p[6] = 3; /* sizeofSelect: PCRs 0..23 */
	p[7] = p[8] = p[9] = 0;
	p[7 + pcr / 8] = (uint8_t)(1u << (pcr % 8));
	uint32_t n = crb_transact(c, crb_cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, TPM_HDR + 10), d,
	                          "PCR_Read");
	if (!n)
		return false;
	if (crb_rc()) {
		detail_add(d, "PCR_Read(%#x:%u) rc %#x", alg, pcr, crb_rc());
		return false;
	}
	/* pcrUpdateCounter, TPML_PCR_SELECTION (1 x {hash, 3, select[3]}), TPML_DIGEST (1 x {size, digest}). */
	const uint8_t *r = crb_resp + TPM_HDR;
	if (n != TPM_HDR + 4 + 4 + 6 + 4 + 2 + (uint32_t)size || get32(r + 4) != 1 || get16(r + 8) != alg ||
	    r[10] != 3 || !(r[11 + pcr / 8] & (1u << (pcr % 8))) || get32(r + 14) != 1 || get16(r + 18) != size) {
		detail_add(d, "PCR_Read: unexpected %u-byte response (no bank %#x PCR %u?)", n, alg, pcr);
		return false;
	}
	memcpy(out, r + 20, size);
	return true;
}
