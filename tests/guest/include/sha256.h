/* SHA-256 (FIPS 180-4), freestanding: for the tpm and measured-boot checks' expected PCR values.
 *
 *   struct sha256 s; sha256_init(&s); sha256_update(&s, buf, len); sha256_final(&s, digest);
 *   sha256(buf, len, digest);   // one shot
 */
#ifndef GUEST_SHA256_H
#define GUEST_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE 64

struct sha256 {
	uint32_t h[8];
	uint64_t total; /* bytes hashed so far */
	uint8_t block[SHA256_BLOCK_SIZE];
	size_t fill; /* bytes waiting in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_SIZE]);
void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]);
/* FIPS 180-4 example "abc": a broken SHA-256 must not be blamed on the TPM. */
bool sha256_selftest(void);

#endif
