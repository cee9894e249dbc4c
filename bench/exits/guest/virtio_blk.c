/*
 * A minimal virtio-blk driver over virtio-mmio (virtio 1.2 §4.2.2, §3.1.1, §5.2):
 * accepts only VIRTIO_F_VERSION_1, uses queue 0 with 8 entries and one fixed
 * 3-descriptor chain (header, 512-byte buffer, status), and polls the used ring.
 * Interrupts stay off: the device still signals its irqfd (or QEMU raises the
 * line), which is part of the cost measured, but the guest never takes them.
 */
#include "guest.h"

enum {
	REG_MAGIC = 0x000, REG_VERSION = 0x004, REG_DEVICE_ID = 0x008,
	REG_DEVICE_FEATURES = 0x010, REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020, REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030, REG_QUEUE_NUM_MAX = 0x034, REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044, REG_QUEUE_NOTIFY = 0x050, REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080, REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090, REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0, REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_CONFIG = 0x100,
};
enum { S_ACKNOWLEDGE = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8 };
enum { DESC_F_NEXT = 1, DESC_F_WRITE = 2 };
#define QSIZE 8

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct avail {
	uint16_t flags, idx, ring[QSIZE], used_event;
};
struct used_elem {
	uint32_t id, len;
};
struct used {
	uint16_t flags, idx;
	struct used_elem ring[QSIZE];
	uint16_t avail_event;
};
struct blk_req {
	uint32_t type, reserved;
	uint64_t sector;
};

/* §2.7: descriptor table 16-byte, avail 2-byte, used 4-byte aligned. */
static struct {
	struct desc desc[QSIZE] __attribute__((aligned(16)));
	struct avail avail __attribute__((aligned(2)));
	struct used used __attribute__((aligned(4)));
} ring __attribute__((aligned(4096)));
static struct blk_req req __attribute__((aligned(16)));
static uint8_t data[512] __attribute__((aligned(512)));
static volatile uint8_t status;

static void set_addr(uint64_t base, uint32_t low_reg, const void *p)
{
	mmio_write32(base + low_reg, (uint32_t)(uint64_t)p);
	mmio_write32(base + low_reg + 4, (uint32_t)((uint64_t)p >> 32));
}

const char *vblk_init(struct vblk *d, uint64_t base)
{
	d->base = base;
	if (mmio_read32(base + REG_MAGIC) != 0x74726976)
		return "no virtio-mmio magic";
	if (mmio_read32(base + REG_VERSION) != 2)
		return "not a virtio-mmio version 2 (non-legacy) device";
	if (mmio_read32(base + REG_DEVICE_ID) != 2)
		return "not a virtio-blk device";
	mmio_write32(base + REG_STATUS, 0);
	mmio_write32(base + REG_STATUS, S_ACKNOWLEDGE);
	mmio_write32(base + REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	mmio_write32(base + REG_DEVICE_FEATURES_SEL, 1);
	if (!(mmio_read32(base + REG_DEVICE_FEATURES) & 1))
		return "device does not offer VIRTIO_F_VERSION_1";
	mmio_write32(base + REG_DRIVER_FEATURES_SEL, 0);
	mmio_write32(base + REG_DRIVER_FEATURES, 0);
	mmio_write32(base + REG_DRIVER_FEATURES_SEL, 1);
	mmio_write32(base + REG_DRIVER_FEATURES, 1); /* bit 32: VERSION_1 */
	mmio_write32(base + REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(mmio_read32(base + REG_STATUS) & S_FEATURES_OK))
		return "device refused the features";
	d->capacity = mmio_read32(base + REG_CONFIG) | ((uint64_t)mmio_read32(base + REG_CONFIG + 4) << 32);
	if (d->capacity == 0)
		return "disk is empty";

	mmio_write32(base + REG_QUEUE_SEL, 0);
	if (mmio_read32(base + REG_QUEUE_READY))
		return "queue 0 already in use";
	if (mmio_read32(base + REG_QUEUE_NUM_MAX) < QSIZE)
		return "queue 0 shorter than 8";
	mmio_write32(base + REG_QUEUE_NUM, QSIZE);
	set_addr(base, REG_QUEUE_DESC_LOW, ring.desc);
	set_addr(base, REG_QUEUE_DRIVER_LOW, &ring.avail);
	set_addr(base, REG_QUEUE_DEVICE_LOW, &ring.used);
	mmio_write32(base + REG_QUEUE_READY, 1);

	/* One chain, reused by every request: header (device-readable), data, status. */
	ring.desc[0] = (struct desc){(uint64_t)&req, sizeof(req), DESC_F_NEXT, 1};
	ring.desc[1] = (struct desc){(uint64_t)data, sizeof(data), DESC_F_NEXT | DESC_F_WRITE, 2};
	ring.desc[2] = (struct desc){(uint64_t)&status, 1, DESC_F_WRITE, 0};
	d->avail_idx = 0;
	barrier();
	mmio_write32(base + REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return 0;
}

int vblk_read_sector(struct vblk *d, uint64_t sector)
{
	req.type = 0; /* VIRTIO_BLK_T_IN */
	req.sector = sector;
	status = 0xff;
	ring.avail.ring[d->avail_idx % QSIZE] = 0;
	barrier(); /* x86 keeps stores in order; the compiler must too (§2.7.13) */
	ring.avail.idx = ++d->avail_idx;
	barrier();
	mmio_write32(d->base + REG_QUEUE_NOTIFY, 0);
	while (*(volatile uint16_t *)&ring.used.idx != d->avail_idx)
		cpu_relax();
	barrier();
	return status;
}
