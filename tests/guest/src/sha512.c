/* SHA-512 and SHA-384 per FIPS 180-4 §6.4 and §6.5 (padding §5.1.2, constants §4.2.3,
 * initial values §5.3.4 and §5.3.5). */
#include "sha512.h"

#include "guest.h"
#include "md_absorb.h"

static const uint64_t K[80] = {
	0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc, 0x3956c25bf348b538,
	0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118, 0xd807aa98a3030242, 0x12835b0145706fbe,
	0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2, 0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235,
	0xc19bf174cf692694, 0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
	0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5, 0x983e5152ee66dfab,
	0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4, 0xc6e00bf33da88fc2, 0xd5a79147930aa725,
	0x06ca6351e003826f, 0x142929670a0e6e70, 0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed,
	0x53380d139d95b3df, 0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
	0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30, 0xd192e819d6ef5218,
	0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8, 0x19a4c116b8d2d0c8, 0x1e376c085141ab53,
	0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8, 0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373,
	0x682e6ff3d6b2b8a3, 0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
	0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b, 0xca273eceea26619c,
	0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178, 0x06f067aa72176fba, 0x0a637dc5a2c898a6,
	0x113f9804bef90dae, 0x1b710b35131c471b, 0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc,
	0x431d67c49c100d4c, 0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
};

static inline uint64_t ror(uint64_t x, unsigned n) { return x >> n | x << (64 - n); }

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void compress(void *state, const uint8_t *p)
{
	uint64_t *h = state;
	uint64_t w[80];
	for (unsigned i = 0; i < 16; i++)
		w[i] = be64(p + 8 * i);
	for (unsigned i = 16; i < 80; i++) {
		uint64_t s0 = ror(w[i - 15], 1) ^ ror(w[i - 15], 8) ^ (w[i - 15] >> 7);
		uint64_t s1 = ror(w[i - 2], 19) ^ ror(w[i - 2], 61) ^ (w[i - 2] >> 6);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint64_t v[8];
	memcpy(v, h, sizeof(v)); /* a..h of §6.4.2 */
	for (unsigned i = 0; i < 80; i++) {
		uint64_t e = v[4], a = v[0];
		uint64_t t1 = v[7] + (ror(e, 14) ^ ror(e, 18) ^ ror(e, 41)) + ((e & v[5]) ^ (~e & v[6])) + K[i] + w[i];
		uint64_t t2 = (ror(a, 28) ^ ror(a, 34) ^ ror(a, 39)) + ((a & v[1]) ^ (a & v[2]) ^ (v[1] & v[2]));
		memmove(v + 1, v, 7 * sizeof(v[0]));
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (unsigned i = 0; i < 8; i++)
		h[i] += v[i];
}

static void init(struct sha512 *s, const uint64_t iv[8])
{
	memcpy(s->h, iv, sizeof(s->h));
	s->total = 0;
	s->fill = 0;
}

void sha512_init(struct sha512 *s)
{
	static const uint64_t iv[8] = { 0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b,
		                        0xa54ff53a5f1d36f1, 0x510e527fade682d1, 0x9b05688c2b3e6c1f,
		                        0x1f83d9abfb41bd6b, 0x5be0cd19137e2179 };
	init(s, iv);
}

void sha384_init(struct sha512 *s)
{
	static const uint64_t iv[8] = { 0xcbbb9d5dc1059ed8, 0x629a292a367cd507, 0x9159015a3070dd17,
		                        0x152fecd8f70e5939, 0x67332667ffc00b31, 0x8eb44a8768581511,
		                        0xdb0c2e0d64f98fa7, 0x47b5481dbefa4fa4 };
	init(s, iv);
}

void sha512_update(struct sha512 *s, const void *data, size_t len)
{
	s->total += len;
	md_absorb(s->h, compress, s->block, SHA512_BLOCK_SIZE, &s->fill, data, len);
}

/* 0x80, zeros up to 112 mod 128, then the 128-bit bit length big-endian (high half 0). */
static void finish(struct sha512 *s, uint8_t *out, unsigned words)
{
	uint64_t bits = s->total * 8;
	uint8_t pad[SHA512_BLOCK_SIZE + 16] = { 0x80 };
	size_t npad = (s->fill < 112 ? 112 : 240) - s->fill;
	for (unsigned i = 0; i < 8; i++)
		pad[npad + 8 + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha512_update(s, pad, npad + 16);
	for (unsigned i = 0; i < words; i++)
		for (unsigned j = 0; j < 8; j++)
			out[8 * i + j] = (uint8_t)(s->h[i] >> (56 - 8 * j));
}

void sha512_final(struct sha512 *s, uint8_t out[SHA512_DIGEST_SIZE]) { finish(s, out, 8); }
void sha384_final(struct sha512 *s, uint8_t out[SHA384_DIGEST_SIZE]) { finish(s, out, 6); }

void sha512(const void *data, size_t len, uint8_t out[SHA512_DIGEST_SIZE])
{
	struct sha512 s;
	sha512_init(&s);
	sha512_update(&s, data, len);
	sha512_final(&s, out);
}

void sha384(const void *data, size_t len, uint8_t out[SHA384_DIGEST_SIZE])
{
	struct sha512 s;
	sha384_init(&s);
	sha512_update(&s, data, len);
	sha384_final(&s, out);
}

bool sha512_selftest(void)
{
	static const uint8_t abc384[SHA384_DIGEST_SIZE] = {
		0xcb, 0x00, 0x75, 0x3f, 0x45, 0xa3, 0x5e, 0x8b, 0xb5, 0xa0, 0x3d, 0x69, 0x9a, 0xc6, 0x50, 0x07,
		0x27, 0x2c, 0x32, 0xab, 0x0e, 0xde, 0xd1, 0x63, 0x1a, 0x8b, 0x60, 0x5a, 0x43, 0xff, 0x5b, 0xed,
		0x80, 0x86, 0x07, 0x2b, 0xa1, 0xe7, 0xcc, 0x23, 0x58, 0xba, 0xec, 0xa1, 0x34, 0xc8, 0x25, 0xa7,
	};
	/* 112 bytes: the padding needs a second block. */
	static const char two_blocks[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	                                 "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	static const uint8_t two384[SHA384_DIGEST_SIZE] = {
		0x09, 0x33, 0x0c, 0x33, 0xf7, 0x11, 0x47, 0xe8, 0x3d, 0x19, 0x2f, 0xc7, 0x82, 0xcd, 0x1b, 0x47,
		0x53, 0x11, 0x1b, 0x17, 0x3b, 0x3b, 0x05, 0xd2, 0x2f, 0xa0, 0x80, 0x86, 0xe3, 0xb0, 0xf7, 0x12,
		0xfc, 0xc7, 0xc7, 0x1a, 0x55, 0x7e, 0x2d, 0xb9, 0x66, 0xc3, 0xe9, 0xfa, 0x91, 0x74, 0x60, 0x39,
	};
	static const uint8_t abc512[SHA512_DIGEST_SIZE] = {
		0xdd, 0xaf, 0x35, 0xa1, 0x93, 0x61, 0x7a, 0xba, 0xcc, 0x41, 0x73, 0x49, 0xae, 0x20, 0x41, 0x31,
		0x12, 0xe6, 0xfa, 0x4e, 0x89, 0xa9, 0x7e, 0xa2, 0x0a, 0x9e, 0xee, 0xe6, 0x4b, 0x55, 0xd3, 0x9a,
		0x21, 0x92, 0x99, 0x2a, 0x27, 0x4f, 0xc1, 0xa8, 0x36, 0xba, 0x3c, 0x23, 0xa3, 0xfe, 0xeb, 0xbd,
		0x45, 0x4d, 0x44, 0x23, 0x64, 0x3c, 0xe8, 0x0e, 0x2a, 0x9a, 0xc9, 0x4f, 0xa5, 0x4c, 0xa4, 0x9f,
	};
	uint8_t out[SHA512_DIGEST_SIZE];
	sha384("abc", 3, out);
	if (memcmp(out, abc384, sizeof(abc384)))
		return false;
	sha384(two_blocks, sizeof(two_blocks) - 1, out);
	if (memcmp(out, two384, sizeof(two384)))
		return false;
	sha512("abc", 3, out);
	return !memcmp(out, abc512, sizeof(abc512));
}
