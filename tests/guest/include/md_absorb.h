/* The block buffering SHA-256 and SHA-512 share (FIPS 180-4 §5.2: the message is hashed in
 * whole blocks): whole blocks go straight from the input to `compress`, the rest waits in
 * `block` (`block_size` bytes, `*fill` of them in use) until it is full.
 *
 *   md_absorb(s->h, compress, s->block, SHA256_BLOCK_SIZE, &s->fill, data, len);
 */
#ifndef GUEST_MD_ABSORB_H
#define GUEST_MD_ABSORB_H

#include "guest.h"

typedef void (*md_compress_fn)(void *h, const uint8_t *block);

static inline void md_absorb(void *h, md_compress_fn compress, uint8_t *block, size_t block_size,
                             size_t *fill, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		if (!*fill && len >= block_size) {
			compress(h, p);
			p += block_size;
			len -= block_size;
			continue;
		}
		size_t n = block_size - *fill;
		if (n > len)
			n = len;
		memcpy(block + *fill, p, n);
		*fill += n;
		p += n;
		len -= n;
		if (*fill == block_size) {
			compress(h, block);
			*fill = 0;
		}
	}
}

#endif
