/*
 * The cases of check virtio-hostile (see checks/virtio_hostile.c). Each one
 * starts on a freshly initialised device (vh_start), does something a
 * driver must not do and returns what the device made of it. The numbers
 * follow README.md.
 */
#include "virtio_hostile.h"

#define SHORT_US 200000 /* how long a refused request gets to complete anyway */
#define BAD_ADDR 0xFFFFFFFF0000ull
#define SCRIBBLE_IDX 0x5a5a
#define SETTLED_IDX 0x7777

struct vh_mem vh_mem;
uint8_t vh_sector0[BLK_SECTOR_BYTES];

static uint64_t A(const volatile void *p) { return vio_addr(p); }
static volatile struct vq_used *used(const struct hctx *c) { return &c->v->ring->used; }
static volatile struct vq_avail *avail(const struct hctx *c) { return &c->v->ring->avail; }

bool vh_start(struct hctx *c)
{
	memset(vh_mem.data, VH_FILL, sizeof(vh_mem.data));
	memset(vh_mem.rng, VH_FILL, sizeof(vh_mem.rng));
	c->v->ring = &vh_mem.ring;
	return vdev_init(c->v, 0, c->why);
}

/* hdr[k], optional data, status[k] at descriptors first..; returns the head. */
static uint16_t blk_chain(struct hctx *c, unsigned k, uint16_t first, uint32_t type, uint64_t sector,
                          uint64_t data, uint32_t len, bool data_w)
{
	blk_header(vh_mem.hdr[k], type, sector);
	vh_mem.status[k] = 0xff;
	struct vbuf b[3] = { { A(vh_mem.hdr[k]), BLK_HDR_BYTES, false } };
	unsigned nb = 1;
	if (data)
		b[nb++] = (struct vbuf){ data, len, data_w };
	b[nb++] = (struct vbuf){ A(&vh_mem.status[k]), 1, true };
	return vq_chain(c->v, first, b, nb);
}

static uint8_t status0(void) { return *(volatile uint8_t *)&vh_mem.status[0]; }

int vh_blk_rw(struct hctx *c, uint32_t type, uint64_t sector, uint8_t *buf)
{
	if (type == BLK_T_OUT)
		memcpy(vh_mem.data[0], buf, BLK_SECTOR_BYTES);
	vq_publish(c->v, blk_chain(c, 0, 0, type, sector, A(vh_mem.data[0]), BLK_SECTOR_BYTES, type == BLK_T_IN));
	uint32_t id, len;
	if (!vq_wait(c->v, REQ_TIMEOUT_US, &id, &len) || id != 0)
		return -1;
	if (type == BLK_T_IN)
		memcpy(buf, vh_mem.data[0], BLK_SECTOR_BYTES);
	return status0();
}

/*
 * After a malformed request: no completion in SHORT_US (or REQ_TIMEOUT_US
 * with must_complete, which then fails) means the ring stopped; a blk
 * completion must carry IOERR/UNSUPP; an rng completion must have used length 0.
 */
static int refused(struct hctx *c, bool must_complete)
{
	uint32_t id, len;
	if (!vq_wait(c->v, must_complete ? REQ_TIMEOUT_US : SHORT_US, &id, &len)) {
		if (!must_complete)
			return O_STOPPED;
		detail_add(c->why, "no completion in %u ms (want IOERR/UNSUPP)", REQ_TIMEOUT_US / 1000);
		return O_FAIL;
	}
	if (vh_is_blk(c)) {
		uint8_t st = status0();
		if (st == BLK_S_IOERR || st == BLK_S_UNSUPP)
			return st == BLK_S_IOERR ? O_IOERR : O_UNSUPP;
		detail_add(c->why, "completed with status %u (used len %u)", st, len);
		return O_FAIL;
	}
	if (len == 0 && !must_complete)
		return O_IGNORED;
	detail_add(c->why, "completed with used len %u", len);
	return O_FAIL;
}

/* 1, 2: descriptors 0..n-1, each with NEXT to the following one, the last back to 0. */
static int c_loop(struct hctx *c, uint64_t n)
{
	volatile struct vq_desc *d = c->v->ring->desc;
	blk_header(vh_mem.hdr[0], BLK_T_IN, 0);
	for (unsigned i = 0; i < n; i++) {
		d[i].addr = vh_is_blk(c) ? A(vh_mem.hdr[0]) : A(vh_mem.rng[i]);
		d[i].len = vh_is_blk(c) ? BLK_HDR_BYTES : 16;
		d[i].flags = (uint16_t)(DESC_F_NEXT | (vh_is_blk(c) ? 0 : DESC_F_WRITE));
		d[i].next = (uint16_t)((i + 1) % n);
	}
	vq_publish(c->v, 0);
	return refused(c, false);
}

/* 3: a buffer outside guest RAM: 0 at BAD_ADDR, 1 straddling the end of
 * RAM, 2 in the MMIO hole (the device's own window), 3 (blk) the header at BAD_ADDR. */
static int c_outside(struct hctx *c, uint64_t kind)
{
	uint64_t addr = kind == 1 ? c->ram_end - 256 : kind == 2 ? c->v->base : BAD_ADDR;
	if (kind == 3) {
		struct vbuf b[2] = { { BAD_ADDR, BLK_HDR_BYTES, false }, { A(&vh_mem.status[0]), 1, true } };
		vh_mem.status[0] = 0xff;
		vq_chain(c->v, 0, b, 2);
	} else if (vh_is_blk(c)) {
		blk_chain(c, 0, 0, BLK_T_IN, 0, addr, BLK_SECTOR_BYTES, true);
	} else {
		struct vbuf b = { addr, 512, true };
		vq_chain(c->v, 0, &b, 1);
	}
	vq_publish(c->v, 0);
	return refused(c, false);
}

/* 4: a data buffer of length 0 or 0xFFFFFFFF (at a valid address). */
static int c_len(struct hctx *c, uint64_t len)
{
	if (vh_is_blk(c)) {
		blk_chain(c, 0, 0, BLK_T_IN, 0, A(vh_mem.data[0]), (uint32_t)len, true);
	} else {
		struct vbuf b = { A(vh_mem.rng[0]), (uint32_t)len, true };
		vq_chain(c->v, 0, &b, 1);
	}
	vq_publish(c->v, 0);
	return refused(c, false);
}

/* 5: wrong direction flags, as a layout per kind: h header, d data (512
 * bytes, of a write to sector 1 or a read), s status, r an rng buffer;
 * upper case = device-writable. blk: 0 read into a device-readable buffer;
 * 1 read with a read-only status; 2 write with the data after the status;
 * 3 write from device-writable data; 4 write with nothing writable. rng: 5 a
 * read-only buffer; 6 a read-only buffer after a writable one. */
static int c_dir(struct hctx *c, uint64_t kind)
{
	static const char *const layout[] = { "hdS", "hDs", "hSd", "hDS", "hds", "r", "Rr" };
	const char *l = layout[kind];
	struct vbuf b[3];
	unsigned nb = 0, nr = 0;
	blk_header(vh_mem.hdr[0], kind < 2 ? BLK_T_IN : BLK_T_OUT, 1);
	vh_mem.status[0] = 0xff;
	for (; l[nb]; nb++) {
		char ch = (char)(l[nb] | 0x20);
		b[nb].addr = ch == 'h' ? A(vh_mem.hdr[0]) : ch == 'd' ? A(vh_mem.data[0])
		           : ch == 's' ? A(&vh_mem.status[0]) : A(vh_mem.rng[nr++]);
		b[nb].len = ch == 'h' ? BLK_HDR_BYTES : ch == 'd' ? BLK_SECTOR_BYTES : ch == 's' ? 1 : 16;
		b[nb].writable = l[nb] != ch;
	}
	vq_publish(c->v, vq_chain(c->v, 0, b, nb));
	return refused(c, kind == 0 || kind == 3); /* well-formed chains: must be answered */
}

/* 6: bad queue configuration; QueueReady must read back 0. 0..2 QueueNum
 * 0, 3, 2 * QueueNumMax; 3..5 desc +8, avail +1, used +2. 6, 7: the
 * descriptor table straddling the end of RAM / at BAD_ADDR (accepted by the
 * transport, which does not know RAM: the back-end must refuse the ring). */
static int c_queue(struct hctx *c, uint64_t kind)
{
	struct vring *r = &vh_mem.ring;
	memset(r, 0, sizeof(*r));
	if (!vdev_reset(c->v) || !vdev_negotiate(c->v, 0, c->why))
		return O_FAIL;
	uint32_t max = vio_rd(c->v, R_QUEUE_NUM_MAX);
	uint32_t num = kind == 0 ? 0 : kind == 1 ? 3 : kind == 2 ? max * 2 : VQ_SIZE;
	uint64_t desc = A(r->desc) + (kind == 3 ? 8 : 0), av = A(&r->avail) + (kind == 4),
		 us = A(&r->used) + (kind == 5 ? 2 : 0);
	if (kind >= 6)
		desc = kind == 6 ? (c->ram_end - 64) : BAD_ADDR;
	uint32_t ready = vdev_queue(c->v, num, desc, av, us);
	if (kind < 6) {
		if (ready == 0)
			return O_NOTREADY;
		detail_add(c->why, "QueueReady reads %u (QueueNum %u desc %#lx avail %#lx used %#lx)", ready, num,
		           desc, av, us);
		return O_FAIL;
	}
	if (ready == 0)
		return O_NOTREADY;
	if (!vdev_driver_ok(c->v, c->why))
		return O_NOTREADY; /* refused at DRIVER_OK: NEEDS_RESET shows */
	struct vbuf b = { vh_is_blk(c) ? A(&vh_mem.status[0]) : A(vh_mem.rng[0]), 1, true };
	vq_publish(c->v, vq_chain(c->v, 0, &b, 1)); /* the device cannot read this descriptor */
	return refused(c, false);
}

/* 7a: the used ring scribbled before a good request: the device must place
 * the element at its own index (0) and publish idx 1. */
static int c_scribble(struct hctx *c, uint64_t unused)
{
	(void)unused;
	volatile struct vq_used *u = used(c);
	u->flags = 0xffff;
	u->idx = SCRIBBLE_IDX;
	for (unsigned i = 0; i < VQ_SIZE; i++)
		u->ring[i].id = 0xdeadbeef, u->ring[i].len = 0xffffffff;
	struct vbuf b = { A(vh_mem.rng[0]), 16, true };
	if (vh_is_blk(c))
		blk_chain(c, 0, 0, BLK_T_IN, 0, A(vh_mem.data[0]), BLK_SECTOR_BYTES, true);
	else
		vq_chain(c->v, 0, &b, 1);
	vq_publish(c->v, 0);
	uint64_t dl = deadline_us(REQ_TIMEOUT_US);
	while (u->idx != 1 && !deadline_passed(dl))
		cpu_pause();
	vio_mb();
	uint32_t id = u->ring[0].id, len = u->ring[0].len;
	bool served = vh_is_blk(c) ? status0() == BLK_S_OK && !memcmp(vh_mem.data[0], vh_sector0, BLK_SECTOR_BYTES)
	                           : len > 0 && len <= 16;
	if (u->idx != 1 || id != 0 || !served) {
		detail_add(c->why, "used idx %u id %#x len %u status %u", u->idx, id, len, status0());
		return O_FAIL;
	}
	return O_IGNORED;
}

/* 7b: requests in flight, then the used ring is scribbled and the avail idx
 * jumps ahead by more than the queue size; once that is seen the device must
 * stop: a fresh scribble of the used idx stays, whatever else it did before. */
static int c_race(struct hctx *c, uint64_t unused)
{
	(void)unused;
	volatile struct vq_avail *av = avail(c);
	volatile struct vq_used *u = used(c);
	unsigned n = vh_is_blk(c) ? 2 : 4;
	for (unsigned k = 0; k < n; k++) {
		struct vbuf b = { A(vh_mem.rng[k]), 16, true };
		if (vh_is_blk(c))
			av->ring[k] = blk_chain(c, k, (uint16_t)(3 * k), BLK_T_IN, 0, A(vh_mem.data[k]), BLK_SECTOR_BYTES,
			                        true);
		else
			av->ring[k] = vq_chain(c->v, (uint16_t)k, &b, 1);
	}
	vio_mb();
	av->idx = (uint16_t)n;
	vq_notify(c->v);
	u->idx = SCRIBBLE_IDX; /* races the device's own updates */
	for (unsigned i = 0; i < VQ_SIZE; i++)
		u->ring[i].id = 0xdeadbeef, u->ring[i].len = 0xffffffff;
	av->idx = (uint16_t)(n + VQ_SIZE + 5);
	vq_notify(c->v);
	udelay(SHORT_US);
	u->idx = SETTLED_IDX;
	vq_notify(c->v);
	udelay(SHORT_US);
	if (u->idx != SETTLED_IDX) {
		detail_add(c->why, "used idx moved to %u after the avail idx jumped", u->idx);
		return O_FAIL;
	}
	return O_STOPPED;
}

/* 8 (blk): requests past the end of the disk and unknown types. */
static int c_range(struct hctx *c, uint64_t kind)
{
	static const struct {
		uint32_t type, sectors;
		uint8_t at; /* 0: capacity, 1: capacity - 1, 2: 2^63, 3: 2^64 - 1, 4: 0 */
	} r[] = { { BLK_T_IN, 1, 0 },  { BLK_T_IN, 2, 1 }, { BLK_T_OUT, 2, 1 },   { BLK_T_IN, 1, 2 },
		  { BLK_T_OUT, 1, 2 }, { BLK_T_IN, 1, 3 }, { 0x7fffffff, 0, 4 }, { BLK_T_DISCARD, 0, 4 } };
	uint64_t at[] = { c->cap, c->cap - 1, 1ull << 63, ~0ull, 0 };
	uint32_t t = r[kind].type, len = r[kind].sectors * BLK_SECTOR_BYTES;
	blk_chain(c, 0, 0, t, at[r[kind].at], len ? A(vh_mem.data[0]) : 0, len, t == BLK_T_IN);
	vq_publish(c->v, 0);
	return refused(c, true);
}

const struct hcase vh_cases[] = {
	{ "1", "descriptor loop 0->1->0", c_loop, 2, 3, false },
	{ "2", "chain through all 8 entries and back", c_loop, VQ_SIZE, 3, false },
	{ "3a", "buffer at 0xFFFFFFFF0000", c_outside, 0, 3, false },
	{ "3b", "buffer straddling the end of RAM", c_outside, 1, 3, false },
	{ "3c", "buffer in the MMIO hole", c_outside, 2, 3, false },
	{ "3d", "header at 0xFFFFFFFF0000", c_outside, 3, 1, false },
	{ "4a", "zero-length buffer", c_len, 0, 3, false },
	{ "4b", "buffer length 0xFFFFFFFF", c_len, 0xffffffffu, 3, false },
	{ "5a", "read into a device-readable buffer", c_dir, 0, 1, false },
	{ "5b", "read with a read-only status byte", c_dir, 1, 1, false },
	{ "5c", "readable data after the writable status", c_dir, 2, 1, false },
	{ "5d", "write from a device-writable buffer", c_dir, 3, 1, false },
	{ "5e", "write with nothing writable", c_dir, 4, 1, false },
	{ "5f", "read-only buffer", c_dir, 5, 2, false },
	{ "5g", "read-only buffer after a writable one", c_dir, 6, 2, false },
	{ "6a", "QueueNum 0", c_queue, 0, 3, false },
	{ "6b", "QueueNum 3", c_queue, 1, 3, false },
	{ "6c", "QueueNum 2 * QueueNumMax", c_queue, 2, 3, false },
	{ "6d", "desc address not 16-aligned", c_queue, 3, 3, false },
	{ "6e", "avail address odd", c_queue, 4, 3, false },
	{ "6f", "used address not 4-aligned", c_queue, 5, 3, false },
	{ "6g", "descriptor table straddling the end of RAM", c_queue, 6, 3, false },
	{ "7a", "used ring scribbled before a request", c_scribble, 0, 3, true },
	{ "7b", "used ring scribbled and avail idx jump while in flight", c_race, 0, 3, true },
	{ "8a", "read at sector = capacity", c_range, 0, 1, false },
	{ "8b", "read 2 sectors at capacity - 1", c_range, 1, 1, false },
	{ "8c", "write 2 sectors at capacity - 1", c_range, 2, 1, false },
	{ "8d", "read at sector 2^63", c_range, 3, 1, false },
	{ "8e", "write at sector 2^63", c_range, 4, 1, false },
	{ "8f", "read at sector 2^64 - 1", c_range, 5, 1, false },
	{ "8g", "request type 0x7fffffff", c_range, 6, 1, false },
	{ "8h", "DISCARD (not offered)", c_range, 7, 1, false },
	{ "6h", "descriptor table at 0xFFFFFFFF0000", c_queue, 7, 3, false },
};
const unsigned vh_ncases = ARRAY_SIZE(vh_cases);
