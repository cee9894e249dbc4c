/*
 * A minimal virtio-mmio (version 2) driver shared by the virtio checks:
 * register access, reset, feature negotiation, one split virtqueue of
 * VQ_SIZE entries, posting descriptor chains and polling the used ring.
 * Written from the virtio 1.2 spec (§2, §3.1.1, §4.2, §5.2, §5.4).
 */
#ifndef GUEST_VIRTIO_DRV_H
#define GUEST_VIRTIO_DRV_H

#include "platform.h"

#define VIO_BASE 0xD0000000ull
#define VIO_STRIDE 0x1000
#define VIO_SLOTS 8
#define VIO_FIRST_GSI 16
#define VIO_IRQ_FLAGS 0x5 /* MPS INTI: active high (01), edge (01 << 2) */

/* §4.2.2 register layout (version 2). */
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INT_STATUS 0x060
#define R_INT_ACK 0x064
#define R_STATUS 0x070
#define R_QUEUE_DESC_LO 0x080
#define R_QUEUE_DESC_HI 0x084
#define R_QUEUE_DRIVER_LO 0x090
#define R_QUEUE_DRIVER_HI 0x094
#define R_QUEUE_DEVICE_LO 0x0a0
#define R_QUEUE_DEVICE_HI 0x0a4
#define R_CONFIG_GEN 0x0fc
#define R_CONFIG 0x100
#define VIO_MAGIC 0x74726976 /* "virt" */

/* §2.1 device status bits. */
#define S_ACKNOWLEDGE 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u
#define S_NEEDS_RESET 64u
#define S_FAILED 128u

/* §4.2.2 InterruptStatus bits. */
#define INT_USED_BUFFER 1u
#define INT_CONFIG_CHANGE 2u

/* §6 reserved feature bits and §5.2.3 block feature bits. */
#define F_VERSION_1 (1ull << 32)
#define BLK_F_RO (1ull << 5)
#define BLK_F_FLUSH (1ull << 9)

/* §5 device IDs. */
#define ID_BLK 2
#define ID_RNG 4
#define ID_VSOCK 19

/* §5.2.6 block request types and status. */
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_T_DISCARD 11
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define BLK_HDR_BYTES 16
#define BLK_SECTOR_BYTES 512

/* §2.7 split virtqueue. */
#define VQ_SIZE 8
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

#define REQ_TIMEOUT_US 2000000 /* per request that must complete */
#define RESET_TIMEOUT_US 100000

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vq_avail {
	uint16_t flags, idx;
	uint16_t ring[VQ_SIZE];
	uint16_t used_event; /* unused: VIRTIO_F_EVENT_IDX is never accepted */
};

struct vq_used_elem {
	uint32_t id, len;
};

struct vq_used {
	uint16_t flags, idx;
	struct vq_used_elem ring[VQ_SIZE];
	uint16_t avail_event;
};

/* The three parts of one queue (§2.7 alignment: desc 16, avail 2, used 4).
 * bss is identity mapped, so guest virtual = physical. */
struct vring {
	struct vq_desc desc[VQ_SIZE] __attribute__((aligned(16)));
	struct vq_avail avail __attribute__((aligned(2)));
	struct vq_used used __attribute__((aligned(4)));
};

struct vdev {
	unsigned n;
	uint64_t base;
	uint32_t gsi, device_id;
	const char *name; /* "blk", "rng", "vsock" or "dev" */
	uint64_t offered, accepted;
	uint16_t avail_idx, last_used;
	struct vring *ring;
};

/* One buffer of a chain: a raw guest-physical address, so that hostile
 * callers can pass addresses that are not guest RAM. */
struct vbuf {
	uint64_t addr;
	uint32_t len;
	bool writable;
};

static inline uint64_t vio_addr(const volatile void *p) { return (uint64_t)(uintptr_t)p; }
static inline uint64_t vio_slot_base(unsigned n) { return VIO_BASE + (uint64_t)n * VIO_STRIDE; }
/* §4.2.2.2: control registers are accessed 32 bits wide only. */
static inline uint32_t vio_rd(const struct vdev *v, uint32_t reg) { return mmio_read32(v->base + reg); }
static inline void vio_wr(const struct vdev *v, uint32_t reg, uint32_t val) { mmio_write32(v->base + reg, val); }
static inline void vio_mb(void) { __asm__ volatile("mfence" ::: "memory"); }

/* Reads slot n's identification. Returns false if there is no device in the
 * window (wrong magic, or the placeholder device ID 0). */
bool vio_probe(struct vdev *v, unsigned n, uint32_t *version);

/* §4.2.3.1 / §2.4: write 0 to Status and wait until it reads back 0. */
bool vdev_reset(const struct vdev *v);
/* §3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, features (VERSION_1 plus
 * what of `wanted` is offered; never EVENT_IDX or INDIRECT_DESC), FEATURES_OK. */
bool vdev_negotiate(struct vdev *v, uint64_t wanted, struct detail *d);
/* §4.2.3.2 for queue 0 with the given size and ring addresses; returns what
 * QueueReady reads back after writing 1 (the transport may refuse). */
uint32_t vdev_queue(const struct vdev *v, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used);
/* Sets DRIVER_OK; false (with detail) if the status then shows NEEDS_RESET or no DRIVER_OK. */
bool vdev_driver_ok(struct vdev *v, struct detail *d);
/* All of the above with queue 0 = v->ring (zeroed), VQ_SIZE entries. */
bool vdev_init(struct vdev *v, uint64_t wanted, struct detail *d);

/* Writes descriptors first.. for the buffers (chained with NEXT) and returns
 * the head; does not publish it. */
uint16_t vq_chain(struct vdev *v, uint16_t first, const struct vbuf *b, unsigned nb);
/* Puts head in the next avail slot, publishes idx (§2.7.13) and notifies. */
void vq_publish(struct vdev *v, uint16_t head);
void vq_notify(const struct vdev *v);
/* Polls the used ring until it moves past last_used, at most timeout_us.
 * On success consumes one element. */
bool vq_wait(struct vdev *v, uint64_t timeout_us, uint32_t *id, uint32_t *len);
/* One chain at head 0, published, notified and waited for (REQ_TIMEOUT_US);
 * detail on failure, prefixed by `what`. */
bool vq_run(struct vdev *v, const struct vbuf *b, unsigned nb, uint32_t *used_len, struct detail *d,
            const char *what);

/* §5.2.4 capacity (sectors), read with the §2.5.1 generation loop. */
uint64_t blk_capacity(const struct vdev *v);
/* §5.2.6 request header: le32 type, le32 reserved, le64 sector. */
void blk_header(uint8_t *hdr, uint32_t type, uint64_t sector);

#endif
