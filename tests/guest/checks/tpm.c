/*
 * check tpm (only with expect_tpm=crb): a TPM 2.0 behind the CRB interface,
 * found and driven the way Linux's tpm_crb does it.
 *
 * - ACPI: the TPM2 table ("TCG ACPI Specification", rev 4: start method 7 =
 *   CRB, control area = CTRL_REQ of locality 0) and the DSDT device with _HID
 *   "MSFT0101" (a string, not an EISA id), whose Memory32Fixed must be the
 *   register page the control area lies in. The DSDT is searched as bytes,
 *   like the virtio check does for LNRO0005: the guest has no AML interpreter.
 * - CRB (TCG PC Client PTP §6.5.3), locality 0: src/crb.c, shared with the
 *   measured-boot check.
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
#include "crb.h"
#include "sha256.h"

/* TPM 2.0 Part 2 constants. */
#define TPM_CC_STARTUP 0x144
#define TPM_CC_GET_RANDOM 0x17B
#define TPM_CC_PCR_EXTEND 0x182
#define TPM_SU_CLEAR 0
#define PCR_INDEX 16
#define RANDOM_BYTES 16

/* ---- ACPI ---------------------------------------------------------------- */

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

/* ---- commands ------------------------------------------------------------ */

/* GetRandom(16): returns its rc, or ~0 after a transport/format failure. */
static uint32_t get_random(const struct crb *c, uint8_t out[RANDOM_BYTES], struct detail *d)
{
	put16(crb_req + TPM_HDR, RANDOM_BYTES);
	uint32_t n = crb_transact(c, crb_cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_GET_RANDOM, 12), d, "GetRandom");
	if (!n)
		return ~0u;
	if (crb_rc())
		return crb_rc();
	if (n < TPM_HDR + 2 || get16(crb_resp + 10) != RANDOM_BYTES || n != TPM_HDR + 2 + RANDOM_BYTES) {
		detail_add(d, "GetRandom returned %u bytes in a %u-byte response (want 16)",
		           n >= TPM_HDR + 2 ? get16(crb_resp + 10) : 0, n);
		return ~0u;
	}
	memcpy(out, crb_resp + 12, RANDOM_BYTES);
	return 0;
}

static bool startup_clear(const struct crb *c, struct detail *d)
{
	put16(crb_req + TPM_HDR, TPM_SU_CLEAR);
	if (!crb_transact(c, crb_cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_STARTUP, 12), d, "Startup"))
		return false;
	if (crb_rc()) {
		detail_add(d, "Startup(SU_CLEAR) rc %#x", crb_rc());
		return false;
	}
	return true;
}

static bool pcr_extend(const struct crb *c, const uint8_t digest[SHA256_DIGEST_SIZE], struct detail *d)
{
	uint8_t *p = crb_req + TPM_HDR;
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
	uint32_t n = crb_transact(c, crb_cmd_header(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, len), d, "PCR_Extend");
	if (!n)
		return false;
	if (crb_rc()) {
		detail_add(d, "PCR_Extend rc %#x", crb_rc());
		return false;
	}
	return true;
}

/* A header commandSize one byte past the buffer: an error response, not a hang. */
static bool oversize(const struct crb *c, struct detail *d, uint32_t *rc)
{
	put16(crb_req + TPM_HDR, RANDOM_BYTES);
	crb_cmd_header(TPM_ST_NO_SESSIONS, TPM_CC_GET_RANDOM, c->cmd_size + 1);
	if (!crb_transact(c, 12, d, "oversize command"))
		return false;
	if (!crb_rc()) {
		detail_add(d, "commandSize %u > buffer %u answered with rc 0", c->cmd_size + 1, c->cmd_size);
		return false;
	}
	*rc = crb_rc();
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
	if (!tpm_pcr_read(c, TPM_ALG_SHA256, PCR_INDEX, old, sizeof(old), d))
		return false;
	uint32_t over_rc;
	if (!oversize(c, d, &over_rc))
		return false;
	static const char what[] = "testguest tpm check: PCR 16 extend";
	sha256(what, sizeof(what) - 1, ext);
	if (!pcr_extend(c, ext, d) || !tpm_pcr_read(c, TPM_ALG_SHA256, PCR_INDEX, now, sizeof(now), d))
		return false;
	struct sha256 s; /* extend: new = H(old || digest), Part 1 §17.2 */
	sha256_init(&s);
	sha256_update(&s, old, sizeof(old));
	sha256_update(&s, ext, sizeof(ext));
	sha256_final(&s, want);
	char hx[2 * SHA256_DIGEST_SIZE + 1];
	hex_encode(hx, now, sizeof(now));
	kprintf("tpm: pcr16 sha256 %s\n", hx);
	if (memcmp(now, want, sizeof(now))) {
		char hw[2 * SHA256_DIGEST_SIZE + 1];
		hex_encode(hw, want, sizeof(want));
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

bool check_tpm(struct guest *g, struct detail *d)
{
	bool result;
	uint64_t ctrl = crb_check_start(g, d, &result);
	if (!ctrl)
		return result;
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
