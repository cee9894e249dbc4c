/*
 * Minimal virtio-mmio driver shared by the virtio and virtio-hostile checks
 * (see include/virtio_drv.h). Written from the virtio 1.2 spec.
 */
#include "virtio_drv.h"

bool vio_probe(struct vdev *v, unsigned n, uint32_t *version)
{
	memset(v, 0, sizeof(*v));
	v->n = n;
	v->base = vio_slot_base(n);
	v->gsi = VIO_FIRST_GSI + n;
	if (vio_rd(v, R_MAGIC) != VIO_MAGIC) /* unclaimed MMIO reads as all ones */
		return false;
	*version = vio_rd(v, R_VERSION);
	v->device_id = vio_rd(v, R_DEVICE_ID);
	v->name = v->device_id == ID_BLK     ? "blk"
	          : v->device_id == ID_RNG   ? "rng"
	          : v->device_id == ID_VSOCK ? "vsock"
	                                     : "dev";
	return v->device_id != 0; /* §4.2.3.1.1: ID 0 is a placeholder window */
}

bool vdev_reset(const struct vdev *v)
{
	vio_wr(v, R_STATUS, 0);
	uint64_t dl = deadline_us(RESET_TIMEOUT_US);
	while (vio_rd(v, R_STATUS) != 0)
		if (deadline_passed(dl))
			return false;
	return true;
}

bool vdev_negotiate(struct vdev *v, uint64_t wanted, struct detail *d)
{
	if (!vdev_reset(v)) {
		detail_add(d, "%s%u reset: status stays %#x", v->name, v->n, vio_rd(v, R_STATUS));
		return false;
	}
	vio_wr(v, R_STATUS, S_ACKNOWLEDGE);
	vio_wr(v, R_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	vio_wr(v, R_DEV_FEATURES_SEL, 0);
	uint64_t lo = vio_rd(v, R_DEV_FEATURES);
	vio_wr(v, R_DEV_FEATURES_SEL, 1);
	uint64_t hi = vio_rd(v, R_DEV_FEATURES);
	v->offered = hi << 32 | lo;
	if (!(v->offered & F_VERSION_1)) {
		detail_add(d, "%s%u no VIRTIO_F_VERSION_1 (features %#lx)", v->name, v->n, v->offered);
		goto failed;
	}
	/* Neither EVENT_IDX (29) nor INDIRECT_DESC (28): only what we ask for. */
	v->accepted = F_VERSION_1 | (v->offered & wanted);
	vio_wr(v, R_DRV_FEATURES_SEL, 0);
	vio_wr(v, R_DRV_FEATURES, (uint32_t)v->accepted);
	vio_wr(v, R_DRV_FEATURES_SEL, 1);
	vio_wr(v, R_DRV_FEATURES, (uint32_t)(v->accepted >> 32));
	vio_wr(v, R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	uint32_t st = vio_rd(v, R_STATUS); /* §3.1.1 step 6: the device may refuse */
	if (!(st & S_FEATURES_OK)) {
		detail_add(d, "%s%u FEATURES_OK refused (status %#x, accepted %#lx)", v->name, v->n, st,
		           v->accepted);
		goto failed;
	}
	vio_wr(v, R_QUEUE_SEL, 0);
	if (vio_rd(v, R_QUEUE_READY) != 0) {
		detail_add(d, "%s%u queue 0 ready before setup", v->name, v->n);
		goto failed;
	}
	return true;
failed:
	vio_wr(v, R_STATUS, vio_rd(v, R_STATUS) | S_FAILED); /* §3.1.1 step 8: give up */
	return false;
}

uint32_t vdev_queue(const struct vdev *v, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	vio_wr(v, R_QUEUE_SEL, 0);
	vio_wr(v, R_QUEUE_NUM, num);
	vio_wr(v, R_QUEUE_DESC_LO, (uint32_t)desc);
	vio_wr(v, R_QUEUE_DESC_HI, (uint32_t)(desc >> 32));
	vio_wr(v, R_QUEUE_DRIVER_LO, (uint32_t)avail);
	vio_wr(v, R_QUEUE_DRIVER_HI, (uint32_t)(avail >> 32));
	vio_wr(v, R_QUEUE_DEVICE_LO, (uint32_t)used);
	vio_wr(v, R_QUEUE_DEVICE_HI, (uint32_t)(used >> 32));
	vio_wr(v, R_QUEUE_READY, 1);
	return vio_rd(v, R_QUEUE_READY);
}

bool vdev_driver_ok(struct vdev *v, struct detail *d)
{
	v->avail_idx = v->last_used = 0;
	vio_wr(v, R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	uint32_t st = vio_rd(v, R_STATUS);
	if ((st & (S_DRIVER_OK | S_NEEDS_RESET)) != S_DRIVER_OK) {
		detail_add(d, "%s%u status %#x after DRIVER_OK", v->name, v->n, st);
		vio_wr(v, R_STATUS, st | S_FAILED);
		return false;
	}
	return true;
}

bool vdev_init(struct vdev *v, uint64_t wanted, struct detail *d)
{
	if (!vdev_negotiate(v, wanted, d))
		return false;
	uint32_t qmax = vio_rd(v, R_QUEUE_NUM_MAX);
	if (qmax < VQ_SIZE) {
		detail_add(d, "%s%u QueueNumMax %u < %u", v->name, v->n, qmax, VQ_SIZE);
		goto failed;
	}
	struct vring *r = v->ring;
	memset(r, 0, sizeof(*r));
	if (vdev_queue(v, VQ_SIZE, vio_addr(r->desc), vio_addr(&r->avail), vio_addr(&r->used)) != 1) {
		detail_add(d, "%s%u QueueReady not taken", v->name, v->n);
		goto failed;
	}
	return vdev_driver_ok(v, d);
failed:
	vio_wr(v, R_STATUS, vio_rd(v, R_STATUS) | S_FAILED);
	return false;
}

uint16_t vq_chain(struct vdev *v, uint16_t first, const struct vbuf *b, unsigned nb)
{
	volatile struct vq_desc *desc = v->ring->desc;
	for (unsigned i = 0; i < nb; i++) {
		uint16_t k = (uint16_t)((first + i) % VQ_SIZE);
		bool more = i + 1 < nb;
		desc[k].addr = b[i].addr;
		desc[k].len = b[i].len;
		desc[k].flags = (uint16_t)((b[i].writable ? DESC_F_WRITE : 0) | (more ? DESC_F_NEXT : 0));
		desc[k].next = (uint16_t)(more ? (k + 1) % VQ_SIZE : 0);
	}
	return first;
}

void vq_notify(const struct vdev *v)
{
	vio_mb(); /* §2.7.13.3: idx before the notification */
	vio_wr(v, R_QUEUE_NOTIFY, 0); /* §4.2.3.3: queue index, 32-bit write */
}

void vq_publish(struct vdev *v, uint16_t head)
{
	volatile struct vq_avail *av = &v->ring->avail;
	av->ring[v->avail_idx % VQ_SIZE] = head;
	vio_mb(); /* §2.7.13.2: ring entry before idx */
	av->idx = ++v->avail_idx;
	vq_notify(v);
}

bool vq_wait(struct vdev *v, uint64_t timeout_us, uint32_t *id, uint32_t *len)
{
	volatile struct vq_used *u = &v->ring->used;
	uint64_t dl = deadline_us(timeout_us);
	bool done;
	cpu_sti(); /* the virtio check counts the device's interrupts meanwhile */
	while (!(done = u->idx != v->last_used) && !deadline_passed(dl))
		cpu_pause();
	cpu_cli();
	if (!done)
		return false;
	vio_mb(); /* idx before the element */
	*id = u->ring[v->last_used % VQ_SIZE].id;
	*len = u->ring[v->last_used % VQ_SIZE].len;
	v->last_used++;
	return true;
}

bool vq_run(struct vdev *v, const struct vbuf *b, unsigned nb, uint32_t *used_len, struct detail *d,
            const char *what)
{
	vq_publish(v, vq_chain(v, 0, b, nb));
	uint32_t id;
	if (!vq_wait(v, REQ_TIMEOUT_US, &id, used_len)) {
		detail_add(d, " %s timeout after %u ms (avail %u used %u status %#x)", what, REQ_TIMEOUT_US / 1000,
		           v->avail_idx, ((volatile struct vq_used *)&v->ring->used)->idx, vio_rd(v, R_STATUS));
		return false;
	}
	uint16_t got = ((volatile struct vq_used *)&v->ring->used)->idx;
	if (got != v->last_used || id != 0) {
		detail_add(d, " %s used idx %u id %u (want %u/0)", what, got, id, v->last_used);
		return false;
	}
	return true;
}

uint64_t blk_capacity(const struct vdev *v)
{
	/* §2.5.1: reread until ConfigGeneration is stable around the 64-bit field. */
	uint64_t cap = 0;
	for (int tries = 0; tries < 10; tries++) {
		uint32_t gen = vio_rd(v, R_CONFIG_GEN);
		cap = (uint64_t)vio_rd(v, R_CONFIG + 4) << 32 | vio_rd(v, R_CONFIG);
		if (vio_rd(v, R_CONFIG_GEN) == gen)
			break;
	}
	return cap;
}

void blk_header(uint8_t *hdr, uint32_t type, uint64_t sector)
{
	memset(hdr, 0, BLK_HDR_BYTES);
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
}
