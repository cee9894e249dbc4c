/* Shared by the virtio-hostile check (checks/virtio_hostile.c: the runner)
 * and its cases (checks/virtio_hostile_cases.c). */
#ifndef GUEST_VIRTIO_HOSTILE_H
#define GUEST_VIRTIO_HOSTILE_H

#include "virtio_drv.h"

#define VH_FILL 0xA5 /* what buffers the device must not write hold */

/* One queue and its buffers; devices are tested one after the other and
 * reset in between, so they share it. */
struct vh_mem {
	struct vring ring;
	uint8_t hdr[2][BLK_HDR_BYTES] __attribute__((aligned(16)));
	uint8_t status[2];
	uint8_t data[2][2 * BLK_SECTOR_BYTES] __attribute__((aligned(16)));
	uint8_t rng[VQ_SIZE][16];
} __attribute__((aligned(4096)));
extern struct vh_mem vh_mem;
extern uint8_t vh_sector0[BLK_SECTOR_BYTES]; /* what blk sector 0 held at the start */

/* What a case saw; O_FAIL: it failed (the detail says why). */
enum { O_STOPPED, O_IOERR, O_UNSUPP, O_NOTREADY, O_IGNORED, O_N, O_FAIL = -1 };

struct hctx {
	struct vdev *v;
	struct detail *why; /* what went wrong, for the FAIL line */
	uint64_t cap, ram_end;
	unsigned count[O_N], needs_reset, cfg_irq;
};

struct hcase {
	const char *id, *what;
	int (*run)(struct hctx *c, uint64_t arg);
	uint64_t arg;
	uint8_t devs; /* 1: blk, 2: rng, 3: both */
	bool writes;  /* serves good requests: the buffers change */
};
extern const struct hcase vh_cases[];
extern const unsigned vh_ncases;

static inline bool vh_is_blk(const struct hctx *c) { return c->v->device_id == ID_BLK; }
/* Reset and initialise with no optional feature; the buffers get VH_FILL. */
bool vh_start(struct hctx *c);
/* One 512-byte blk request (IN or OUT) through vh_mem.data[0]; returns its status, or -1. */
int vh_blk_rw(struct hctx *c, uint32_t type, uint64_t sector, uint8_t *buf);

#endif
