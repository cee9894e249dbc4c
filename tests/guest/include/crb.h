/* The TPM 2.0 CRB interface at locality 0 (TCG PC Client PTP §6.5.3), shared by the tpm and
 * measured-boot checks: the ACPI TPM2 table, the register handshakes, one command at a time.
 *
 *   uint64_t ctrl = tpm2_control_area(&g->plat, d);   // 0 after a failure, reason in d
 *   struct crb c = { .regs = ctrl - CRB_CTRL_REQ };
 *   bool ok = crb_open(&c, g, d) && tpm_pcr_read(&c, TPM_ALG_SHA256, 16, out, 32, d);
 *   crb_close(&c, d, &ok);
 *
 * A command is built in crb_req (crb_cmd_header() writes its header) and sent with
 * crb_transact(); the answer is in crb_resp, its response code crb_rc().
 */
#ifndef GUEST_CRB_H
#define GUEST_CRB_H

#include "platform.h"

#define CRB_CTRL_REQ 0x40 /* the TPM2 table's control area is this register of locality 0 */

/* TPM 2.0 Part 2 constants. */
#define TPM_ST_NO_SESSIONS 0x8001
#define TPM_ST_SESSIONS 0x8002
#define TPM_ALG_SHA256 0x000B
#define TPM_ALG_SHA384 0x000C
#define TPM_RS_PW 0x40000009
#define TPM_RC_INITIALIZE 0x100
#define TPM_HDR 10

struct crb {
	uint64_t regs;          /* locality 0 register page */
	uint64_t cmd, rsp;      /* buffers, as the registers give them */
	uint32_t cmd_size, rsp_size;
	bool locality;          /* we hold locality 0 */
	bool buffers_ok;        /* buffers read and validated */
};

extern uint8_t crb_req[4096], crb_resp[4096]; /* staging copies of a command and its answer */

/* Big-endian fields of TPM commands and answers. */
static inline void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)(v >> 8), b[1] = (uint8_t)v; }
static inline void put32(uint8_t *b, uint32_t v)
{
	put16(b, (uint16_t)(v >> 16));
	put16(b + 2, (uint16_t)v);
}
static inline uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }
static inline uint32_t get32(const uint8_t *b) { return (uint32_t)get16(b) << 16 | get16(b + 2); }

/* The ACPI TPM2 table (checksum, revision 4, >= 64 bytes, start method 7 = CRB, control area
 * at the PC address): returns the control area, or 0 with the reason in d. */
uint64_t tpm2_control_area(const struct platform *p, struct detail *d);

/* The guest's SHA-256 self-test (a broken hash must not be blamed on the TPM), then
 * tpm2_control_area(): the control area, or 0 with the reason in d. */
uint64_t crb_hash_and_control_area(const struct guest *g, struct detail *d);

/* The start of the tpm and measured-boot checks: the expect_tpm= option, then
 * crb_hash_and_control_area(). Returns the control area, or 0 with *result the check's result:
 * true ("skipped") without expect_tpm=, false with the reason in d after a failure. */
uint64_t crb_check_start(const struct guest *g, struct detail *d, bool *result);

/* Requests locality 0 and reads and validates the buffers (outside RAM, the registers and the
 * image; mapped if above 4 GiB). */
bool crb_open(struct crb *c, const struct guest *g, struct detail *d);
/* goIdle (if the buffers were reached) and relinquish; clears *ok on a failure. */
void crb_close(struct crb *c, struct detail *d, bool *ok);
/* Writes the header of crb_req; returns size. */
uint32_t crb_cmd_header(uint16_t tag, uint32_t cc, uint32_t size);
/* One command of `len` bytes from crb_req: cmdReady, START, wait (10 s), the answer into
 * crb_resp, goIdle. Returns the response length (>= 10), or 0 after a failure. */
uint32_t crb_transact(const struct crb *c, uint32_t len, struct detail *d, const char *what);
static inline uint32_t crb_rc(void) { return get32(crb_resp + 6); }

/* TPM2_PCR_Read of one PCR in one bank; `size` is the bank's digest size. */
bool tpm_pcr_read(const struct crb *c, uint16_t alg, uint32_t pcr, uint8_t *out, uint16_t size,
                  struct detail *d);

#endif
