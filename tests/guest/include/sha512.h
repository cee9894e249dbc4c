/* SHA-512 and SHA-384 (FIPS 180-4), freestanding: for the measured-boot check's SHA-384 bank.
 *
 *   struct sha512 s; sha384_init(&s); sha512_update(&s, buf, len); sha384_final(&s, digest);
 *   sha384(buf, len, digest);   // one shot
 */
#ifndef GUEST_SHA512_H
#define GUEST_SHA512_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA384_DIGEST_SIZE 48
#define SHA512_DIGEST_SIZE 64
#define SHA512_BLOCK_SIZE 128

/* One state for both: SHA-384 is SHA-512 with other initial values, truncated (§6.5). */
struct sha512 {
	uint64_t h[8];
	uint64_t total; /* bytes hashed so far (messages here stay far below 2^64 bits) */
	uint8_t block[SHA512_BLOCK_SIZE];
	size_t fill; /* bytes waiting in block */
};

void sha512_init(struct sha512 *s);
void sha384_init(struct sha512 *s);
void sha512_update(struct sha512 *s, const void *data, size_t len);
void sha512_final(struct sha512 *s, uint8_t out[SHA512_DIGEST_SIZE]);
void sha384_final(struct sha512 *s, uint8_t out[SHA384_DIGEST_SIZE]);
void sha512(const void *data, size_t len, uint8_t out[SHA512_DIGEST_SIZE]);
void sha384(const void *data, size_t len, uint8_t out[SHA384_DIGEST_SIZE]);
/* FIPS 180-4 examples ("abc", and a two-block message for SHA-384): true if all match. */
bool sha512_selftest(void);

#endif
