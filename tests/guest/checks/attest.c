/*
 * check attest (only with attest_nonce=<hex>): the guest-side path to the evidence bundle the
 * manager makes (ARCHITECTURE.md §8), over the CRB at locality 0 (src/crb.c), the way a guest
 * agent would quote its own vTPM:
 * - TPM2_CreatePrimary(TPM_RH_ENDORSEMENT) with the AK's fixed template (include/ak_template.h):
 *   the key the manager quotes with and the host CA certified. outPublic must repeat the
 *   template's type, attributes and scheme, and the Name must be 000b || SHA-256(outPublic).
 * - TPM2_PCR_Read of sha256:0-9 and sha384:0-9 (8 PCRs a call at most; the answer's selection
 *   must be the one asked for), then TPM2_Quote of those PCRs with the nonce as qualifyingData:
 *   magic, type, extraData and selection are checked, and the pcrDigest must be SHA-256 of the
 *   values read (nothing else extends PCRs 0-9 after boot).
 * - TPM2_FlushContext of the AK, on every path once it exists.
 * - TPM2_NV_ReadPublic and TPM2_NV_Read (the index authorizes itself with the empty password)
 *   of the AK certificate (0x01c101c0, required) and the RSA EK certificate (0x01c00002, when
 *   defined), in chunks of min(1024, TPM_PT_NV_BUFFER_MAX) bytes.
 * Every answer goes through a bounded reader over its own header's size; each structure must
 * fill its parameter area exactly. The pieces are printed only once all of this succeeded
 * (tests/guest/README.md, output contract); `vmm-verify from-guest` turns them into a
 * vmm-evidence/1 bundle with "source": "guest".
 */
#include "ak_template.h"
#include "crb.h"
#include "sha256.h"
#include "sha512.h"

/* TPM 2.0 Part 2 constants. */
#define TPM_CC_CREATE_PRIMARY 0x131
#define TPM_CC_NV_READ 0x14E
#define TPM_CC_QUOTE 0x158
#define TPM_CC_FLUSH_CONTEXT 0x165
#define TPM_CC_NV_READ_PUBLIC 0x169
#define TPM_CC_GET_CAPABILITY 0x17A
#define TPM_CC_PCR_READ 0x17E
#define TPM_RH_ENDORSEMENT 0x4000000Bu
#define TPM_HT_TRANSIENT 0x80
#define TPM_ALG_NULL 0x0010
#define TPM_ALG_RSASSA 0x0014
#define TPM_ALG_RSAPSS 0x0016
#define TPM_ALG_ECDSA 0x0018
#define TPM_GENERATED_VALUE 0xff544347u
#define TPM_ST_ATTEST_QUOTE 0x8018
#define TPM_CAP_TPM_PROPERTIES 6
#define TPM_PT_NV_BUFFER_MAX 0x12C
#define TPM_RC_HANDLE_1 0x18B /* TPM_RC_HANDLE for handle 1: no such NV index */
#define TPM_RC_YIELDED 0x908
#define TPM_RC_TESTING 0x90A
#define TPM_RC_RETRY 0x922
#define RETRIES 10 /* of a command the TPM asked to send again */

#define AK_CERT_INDEX 0x01c101c0u /* vtpm/provision: kAkCertNvIndex */
#define EK_CERT_INDEX 0x01c00002u /* TCG EK Credential Profile: RSA 2048 EK certificate */
#define NV_CHUNK_MAX 1024
#define CERT_MAX 4096
#define NPCRS 10 /* PCRs 0-9 of each bank: every PCR measured boot touches */
#define LINE_BYTES 192 /* bytes per `attest:` line: 384 hex digits, under kprintf's 512 */

static const struct {
	uint16_t alg, size;
	const char *name;
} qbanks[] = { { TPM_ALG_SHA256, SHA256_DIGEST_SIZE, "sha256" }, { TPM_ALG_SHA384, SHA384_DIGEST_SIZE, "sha384" } };
#define NQBANKS ARRAY_SIZE(qbanks)

static struct {
	uint32_t ak;     /* the AK's transient handle, 0 when none is loaded */
	uint32_t chunk;  /* NV_Read size */
	uint8_t ak_public[256], attest[1024], sig[1024];
	uint32_t ak_public_len, attest_len, sig_len;
	uint8_t pcr[NQBANKS][NPCRS][SHA384_DIGEST_SIZE];
	uint8_t ak_cert[CERT_MAX], ek_cert[CERT_MAX];
	uint32_t ak_cert_len, ek_cert_len;
} st;

/* ---- bounded reading ------------------------------------------------------ */

struct rd {
	const uint8_t *p;
	uint32_t len, off;
	bool bad;
};

static const uint8_t *take(struct rd *r, uint32_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *at = r->p + r->off;
	r->off += n;
	return at;
}
static uint8_t rd8(struct rd *r)
{
	const uint8_t *b = take(r, 1);
	return b ? b[0] : 0;
}
static uint16_t rd16(struct rd *r)
{
	const uint8_t *b = take(r, 2);
	return b ? get16(b) : 0;
}
static uint32_t rd32(struct rd *r)
{
	const uint8_t *b = take(r, 4);
	return b ? get32(b) : 0;
}
/* A TPM2B of at most `max` bytes: its buffer (NULL after an error), its size in *n. */
static const uint8_t *rd2b(struct rd *r, uint32_t max, uint32_t *n)
{
	*n = rd16(r);
	if (*n > max)
		r->bad = true;
	return take(r, *n);
}
static bool rd_end(const struct rd *r) { return !r->bad && r->off == r->len; }

/* ---- commands ------------------------------------------------------------- */

static uint32_t wlen; /* bytes of crb_req written, header included */

static void wbytes(const void *b, uint32_t n)
{
	if (n <= sizeof(crb_req) - wlen)
		memcpy(crb_req + wlen, b, n);
	wlen += n;
}
static void w8(uint8_t v) { wbytes(&v, 1); }
static void w16(uint16_t v)
{
	uint8_t b[2];
	put16(b, v);
	wbytes(b, 2);
}
static void w32(uint32_t v)
{
	uint8_t b[4];
	put32(b, v);
	wbytes(b, 4);
}
static void cmd_begin(void) { wlen = TPM_HDR; }
/* One password session with the empty auth value (TPM_RS_PW, Part 1 §19.8.4). */
static void auth_pw(void)
{
	w32(9);
	w32(TPM_RS_PW);
	w16(0); /* nonceCaller */
	w8(0);  /* sessionAttributes */
	w16(0); /* hmac = the empty password */
}

/*
 * Sends crb_req[0..wlen) (again, after 10 ms, while the TPM answers TPM_RC_RETRY, YIELDED or
 * TESTING: Part 2 §6.6.3 warnings, as TSS2 ESAPI retries them) and frames the answer: the tag
 * of the command, rc 0 (with `rc` set, a
 * non-zero rc is stored there and returns false without a message), `handles` handles (the
 * first in *handle), the parameters as *params (with sessions: parameterSize, then exactly one
 * password session's answer: empty nonce, attributes, empty hmac).
 */
static bool transact(const struct crb *c, uint16_t tag, uint32_t cc, unsigned handles, uint32_t *handle,
                     struct rd *params, uint32_t *rc, struct detail *d, const char *what)
{
	if (wlen > c->cmd_size) {
		detail_add(d, "%s: a %u-byte command does not fit the %u-byte buffer", what, wlen, c->cmd_size);
		return false;
	}
	uint32_t n = 0, len = crb_cmd_header(tag, cc, wlen);
	for (unsigned i = 0; i < RETRIES; i++) {
		n = crb_transact(c, len, d, what);
		if (!n)
			return false;
		if (crb_rc() != TPM_RC_RETRY && crb_rc() != TPM_RC_YIELDED && crb_rc() != TPM_RC_TESTING)
			break;
		udelay(10000);
	}
	if (crb_rc()) {
		if (rc) {
			*rc = crb_rc();
			return false;
		}
		detail_add(d, "%s rc %#x", what, crb_rc());
		return false;
	}
	struct rd r = { crb_resp, n, TPM_HDR, get16(crb_resp) != tag };
	for (unsigned i = 0; i < handles; i++) {
		uint32_t h = rd32(&r);
		if (i == 0 && handle && !r.bad)
			*handle = h;
	}
	uint32_t plen = r.len - r.off;
	if (tag == TPM_ST_SESSIONS)
		plen = rd32(&r);
	const uint8_t *pp = take(&r, plen);
	*params = (struct rd){ pp, pp ? plen : 0, 0, pp == NULL };
	if (tag == TPM_ST_SESSIONS) {
		uint32_t nn, nh;
		rd2b(&r, 0, &nn);
		rd8(&r);
		rd2b(&r, 0, &nh);
	}
	if (!rd_end(&r)) {
		detail_add(d, "%s: malformed %u-byte response (tag %#x)", what, n, get16(crb_resp));
		return false;
	}
	return true;
}

static bool nv_buffer_max(const struct crb *c, struct detail *d)
{
	struct rd p;
	cmd_begin();
	w32(TPM_CAP_TPM_PROPERTIES);
	w32(TPM_PT_NV_BUFFER_MAX);
	w32(1);
	if (!transact(c, TPM_ST_NO_SESSIONS, TPM_CC_GET_CAPABILITY, 0, NULL, &p, NULL, d, "GetCapability"))
		return false;
	rd8(&p); /* moreData */
	bool ok = rd32(&p) == TPM_CAP_TPM_PROPERTIES && rd32(&p) == 1 && rd32(&p) == TPM_PT_NV_BUFFER_MAX;
	uint32_t v = rd32(&p);
	if (!ok || !rd_end(&p) || v == 0) {
		detail_add(d, "GetCapability: no TPM_PT_NV_BUFFER_MAX in the answer");
		return false;
	}
	/* An NV_Read answer is 10 + 4 + 2 + chunk + 5 bytes; it must fit the response buffer. */
	uint32_t room = c->rsp_size - (TPM_HDR + 4 + 2 + 5);
	st.chunk = v < NV_CHUNK_MAX ? v : NV_CHUNK_MAX;
	if (st.chunk > room)
		st.chunk = room;
	return true;
}

static bool create_ak(const struct crb *c, struct detail *d)
{
	struct rd p;
	cmd_begin();
	w32(TPM_RH_ENDORSEMENT);
	auth_pw();
	w16(4); /* inSensitive: TPM2B_SENSITIVE_CREATE of an empty userAuth and data */
	w16(0);
	w16(0);
	wbytes(ak_template, AK_TEMPLATE_SIZE); /* inPublic */
	w16(0);                                /* outsideInfo */
	w32(0);                                /* creationPCR: no banks */
	uint32_t h = 0;
	if (!transact(c, TPM_ST_SESSIONS, TPM_CC_CREATE_PRIMARY, 1, &h, &p, NULL, d, "CreatePrimary"))
		return false;
	st.ak = h; /* flushed by the caller, whatever follows */
	uint32_t pub_len, n, name_len;
	const uint8_t *pub = rd2b(&p, sizeof(st.ak_public), &pub_len);
	rd2b(&p, 1024, &n); /* creationData */
	rd2b(&p, 64, &n);   /* creationHash */
	rd16(&p);           /* creationTicket: tag, hierarchy, digest */
	rd32(&p);
	rd2b(&p, 64, &n);
	const uint8_t *name = rd2b(&p, 2 + SHA256_DIGEST_SIZE, &name_len);
	if (!rd_end(&p) || h >> 24 != TPM_HT_TRANSIENT) {
		detail_add(d, "CreatePrimary: malformed answer (handle %#x)", h);
		return false;
	}
	if (pub_len < AK_PUBLIC_HEAD || memcmp(pub, ak_template + 2, AK_PUBLIC_HEAD)) {
		detail_add(d, "CreatePrimary: outPublic (%u bytes) is not of the AK template", pub_len);
		return false;
	}
	uint8_t md[SHA256_DIGEST_SIZE];
	sha256(pub, pub_len, md);
	if (name_len != 2 + SHA256_DIGEST_SIZE || get16(name) != TPM_ALG_SHA256 || memcmp(name + 2, md, sizeof(md))) {
		detail_add(d, "CreatePrimary: the Name is not 000b || SHA-256(outPublic)");
		return false;
	}
	memcpy(st.ak_public, pub, pub_len);
	st.ak_public_len = pub_len;
	return true;
}

/* PCRs [first, first + count) of bank b, count <= 8. */
static bool read_pcrs(const struct crb *c, unsigned b, unsigned first, unsigned count, struct detail *d)
{
	uint32_t mask = ((1u << count) - 1) << first;
	uint8_t sel[3] = { (uint8_t)mask, (uint8_t)(mask >> 8), (uint8_t)(mask >> 16) };
	struct rd p;
	cmd_begin();
	w32(1);
	w16(qbanks[b].alg);
	w8(3);
	wbytes(sel, 3);
	if (!transact(c, TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, 0, NULL, &p, NULL, d, "PCR_Read"))
		return false;
	rd32(&p); /* pcrUpdateCounter */
	bool ok = rd32(&p) == 1 && rd16(&p) == qbanks[b].alg && rd8(&p) == 3;
	const uint8_t *got = take(&p, 3);
	ok = ok && got && !memcmp(got, sel, 3) && rd32(&p) == count;
	for (unsigned i = 0; ok && i < count; i++) {
		uint32_t n;
		const uint8_t *v = rd2b(&p, qbanks[b].size, &n);
		ok = v && n == qbanks[b].size;
		if (ok)
			memcpy(st.pcr[b][first + i], v, n);
	}
	if (!ok || !rd_end(&p)) {
		detail_add(d, "PCR_Read %s:%u-%u: the answer is not the selection asked for (bank allocated?)",
		           qbanks[b].name, first, first + count - 1);
		return false;
	}
	return true;
}

/* The quote's pcrDigest over what read_pcrs() read: banks in order, PCRs ascending. */
static void pcr_digest(uint8_t out[SHA256_DIGEST_SIZE])
{
	struct sha256 s;
	sha256_init(&s);
	for (unsigned b = 0; b < NQBANKS; b++)
		for (unsigned i = 0; i < NPCRS; i++)
			sha256_update(&s, st.pcr[b][i], qbanks[b].size);
	sha256_final(&s, out);
}

static void put_selection(void)
{
	w32(NQBANKS);
	for (unsigned b = 0; b < NQBANKS; b++) {
		w16(qbanks[b].alg);
		w8(3);
		w8(0xff); /* PCRs 0-7 */
		w8(0x03); /* PCRs 8-9 */
		w8(0);
	}
}

/* TPMS_ATTEST (Part 2 §10.12.12): a quote of our selection with our nonce and PCR digest. */
static bool check_attest_bytes(const struct guest *g, struct detail *d)
{
	struct rd a = { st.attest, st.attest_len, 0, false };
	uint32_t n;
	uint32_t magic = rd32(&a);
	uint16_t type = rd16(&a);
	rd2b(&a, 2 + SHA512_DIGEST_SIZE, &n); /* qualifiedSigner */
	const uint8_t *extra = rd2b(&a, 64, &n);
	if (a.bad || magic != TPM_GENERATED_VALUE || type != TPM_ST_ATTEST_QUOTE || n != g->opt.attest_nonce_len ||
	    memcmp(extra, g->opt.attest_nonce, n)) {
		detail_add(d, "Quote: magic %#x type %#x, or extraData is not the nonce", magic, type);
		return false;
	}
	take(&a, 17 + 8); /* clockInfo, firmwareVersion */
	bool ok = rd32(&a) == NQBANKS;
	for (unsigned b = 0; ok && b < NQBANKS; b++) {
		static const uint8_t want[4] = { 3, 0xff, 0x03, 0 };
		ok = rd16(&a) == qbanks[b].alg;
		const uint8_t *s = take(&a, 4);
		ok = ok && s && !memcmp(s, want, 4);
	}
	const uint8_t *digest = rd2b(&a, SHA256_DIGEST_SIZE, &n);
	uint8_t md[SHA256_DIGEST_SIZE];
	pcr_digest(md);
	if (!ok || !rd_end(&a) || n != SHA256_DIGEST_SIZE || memcmp(digest, md, sizeof(md))) {
		detail_add(d, "Quote: not of sha256:0-9+sha384:0-9, or its PCR digest is not that of the PCRs read");
		return false;
	}
	return true;
}

static bool quote(const struct crb *c, const struct guest *g, struct detail *d)
{
	struct rd p;
	cmd_begin();
	w32(st.ak);
	auth_pw();
	w16((uint16_t)g->opt.attest_nonce_len); /* qualifyingData */
	wbytes(g->opt.attest_nonce, g->opt.attest_nonce_len);
	w16(TPM_ALG_NULL); /* inScheme: the AK's own, ECDSA with SHA-256 */
	put_selection();
	if (!transact(c, TPM_ST_SESSIONS, TPM_CC_QUOTE, 0, NULL, &p, NULL, d, "Quote"))
		return false;
	uint32_t alen, n;
	const uint8_t *attest = rd2b(&p, sizeof(st.attest), &alen);
	uint32_t sig_at = p.off;
	uint16_t sig_alg = rd16(&p);
	rd16(&p); /* hash */
	if (sig_alg == TPM_ALG_ECDSA) {
		rd2b(&p, 66, &n); /* r */
		rd2b(&p, 66, &n); /* s */
	} else if (sig_alg == TPM_ALG_RSASSA || sig_alg == TPM_ALG_RSAPSS) {
		rd2b(&p, 512, &n);
	} else {
		p.bad = true;
	}
	if (!rd_end(&p) || p.off - sig_at > sizeof(st.sig)) {
		detail_add(d, "Quote: malformed answer (signature algorithm %#x)", sig_alg);
		return false;
	}
	memcpy(st.attest, attest, alen);
	st.attest_len = alen;
	memcpy(st.sig, p.p + sig_at, p.off - sig_at);
	st.sig_len = p.off - sig_at;
	return check_attest_bytes(g, d);
}

static bool flush_ak(const struct crb *c, struct detail *d)
{
	struct rd p;
	cmd_begin();
	w32(st.ak);
	st.ak = 0;
	return transact(c, TPM_ST_NO_SESSIONS, TPM_CC_FLUSH_CONTEXT, 0, NULL, &p, NULL, d, "FlushContext") &&
	       rd_end(&p);
}

/* An NV index's contents: 1 read, 0 not defined, -1 a failure (reason in d). */
static int read_nv(const struct crb *c, uint32_t index, uint8_t *out, uint32_t *len, struct detail *d)
{
	struct rd p;
	uint32_t rc = 0, n;
	cmd_begin();
	w32(index);
	if (!transact(c, TPM_ST_NO_SESSIONS, TPM_CC_NV_READ_PUBLIC, 0, NULL, &p, &rc, d, "NV_ReadPublic")) {
		if (rc == TPM_RC_HANDLE_1)
			return 0;
		if (rc)
			detail_add(d, "NV_ReadPublic(%#x) rc %#x", index, rc);
		return -1;
	}
	uint16_t pub_size = rd16(&p);
	uint32_t start = p.off;
	bool ok = rd32(&p) == index;
	rd16(&p); /* nameAlg */
	rd32(&p); /* attributes */
	rd2b(&p, 64, &n);
	uint16_t size = rd16(&p);
	ok = ok && p.off - start == pub_size;
	rd2b(&p, 2 + SHA512_DIGEST_SIZE, &n); /* nvName */
	if (!ok || !rd_end(&p) || size == 0 || size > CERT_MAX) {
		detail_add(d, "NV_ReadPublic(%#x): malformed answer or size %u (want 1..%u)", index, size, CERT_MAX);
		return -1;
	}
	for (uint32_t off = 0; off < size;) {
		uint16_t want = (uint16_t)(size - off < st.chunk ? size - off : st.chunk);
		cmd_begin();
		w32(index); /* authHandle: the index itself (TPMA_NV_AUTHREAD, empty auth) */
		w32(index);
		auth_pw();
		w16(want);
		w16((uint16_t)off);
		if (!transact(c, TPM_ST_SESSIONS, TPM_CC_NV_READ, 0, NULL, &p, NULL, d, "NV_Read"))
			return -1;
		const uint8_t *b = rd2b(&p, want, &n);
		if (!rd_end(&p) || n != want) {
			detail_add(d, "NV_Read(%#x, %u at %u): %u bytes", index, want, off, n);
			return -1;
		}
		memcpy(out + off, b, n);
		off += n;
	}
	*len = size;
	return 1;
}

static bool run(const struct crb *c, const struct guest *g, struct detail *d)
{
	if (!nv_buffer_max(c, d) || !create_ak(c, d))
		return false;
	for (unsigned b = 0; b < NQBANKS; b++)
		if (!read_pcrs(c, b, 0, 8, d) || !read_pcrs(c, b, 8, NPCRS - 8, d))
			return false;
	if (!quote(c, g, d) || !flush_ak(c, d))
		return false;
	int ak = read_nv(c, AK_CERT_INDEX, st.ak_cert, &st.ak_cert_len, d);
	if (ak == 0)
		detail_add(d, "no AK certificate at NV %#x (vmm vtpm provision makes it)", AK_CERT_INDEX);
	if (ak <= 0)
		return false;
	st.ek_cert_len = 0;
	return read_nv(c, EK_CERT_INDEX, st.ek_cert, &st.ek_cert_len, d) >= 0;
}

static void print_piece(const char *name, const uint8_t *b, uint32_t n)
{
	char hx[2 * LINE_BYTES + 1];
	uint32_t parts = (n + LINE_BYTES - 1) / LINE_BYTES;
	for (uint32_t i = 0; i < parts; i++) {
		uint32_t len = n - i * LINE_BYTES < LINE_BYTES ? n - i * LINE_BYTES : LINE_BYTES;
		hex_encode(hx, b + i * LINE_BYTES, len);
		kprintf("attest: %s %u/%u %s\n", name, i + 1, parts, hx);
	}
}

bool check_attest(struct guest *g, struct detail *d)
{
	if (g->opt.attest_nonce_bad) {
		detail_add(d, "attest_nonce: want 1 to 32 bytes as 2 to 64 hex digits");
		return false;
	}
	if (!g->opt.attest_nonce_len) {
		detail_add(d, "skipped (no attest_nonce=)");
		return true;
	}
	uint64_t ctrl = crb_hash_and_control_area(g, d);
	if (!ctrl)
		return false;
	struct crb c = { .regs = ctrl - CRB_CTRL_REQ };
	bool ok = crb_open(&c, g, d) && run(&c, g, d);
	if (st.ak) {
		struct detail ignored = { .len = 0 };
		flush_ak(&c, &ignored); /* best effort after a failure */
	}
	crb_close(&c, d, &ok);
	if (!ok)
		return false;
	print_piece("nonce", g->opt.attest_nonce, g->opt.attest_nonce_len);
	print_piece("ak-public", st.ak_public, st.ak_public_len);
	print_piece("quote", st.attest, st.attest_len);
	print_piece("signature", st.sig, st.sig_len);
	for (unsigned b = 0; b < NQBANKS; b++)
		for (unsigned i = 0; i < NPCRS; i++) {
			char hx[2 * SHA384_DIGEST_SIZE + 1];
			hex_encode(hx, st.pcr[b][i], qbanks[b].size);
			kprintf("attest: pcr %s %u %s\n", qbanks[b].name, i, hx);
		}
	print_piece("ak-cert", st.ak_cert, st.ak_cert_len);
	if (st.ek_cert_len)
		print_piece("ek-cert", st.ek_cert, st.ek_cert_len);
	detail_add(d, "quote of sha256:0-9+sha384:0-9, %u-byte signature, ak-cert %u bytes", st.sig_len,
	           st.ak_cert_len);
	if (st.ek_cert_len)
		detail_add(d, ", ek-cert %u bytes", st.ek_cert_len);
	else
		detail_add(d, ", no ek-cert");
	return true;
}
