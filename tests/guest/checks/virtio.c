/*
 * check virtio: drives the VMM's virtio-mmio devices the way a driver does
 * (virtio 1.2: §2 basic facilities, §3.1.1 initialization, §4.2 virtio-mmio
 * version 2, §5.2 block, §5.4 entropy). Written from the spec.
 *
 * Discovery probes the fixed windows 0xD0000000 + n * 0x1000 (n = 0..7;
 * the 3..4 GiB range is mapped uncached by head.S) and cross-checks each
 * device against the DSDT's "LNRO0005" devices (window base, GSI 16 + n,
 * edge/active-high). Each device gets one split virtqueue of 8 entries in
 * bss. Completions are found by polling the used ring (bounded); the
 * interrupt on GSI 16 + n is routed through the IOAPIC and counted as well.
 */
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

/* §6 reserved feature bits and §5.2.3 block feature bits. */
#define F_VERSION_1 (1ull << 32)
#define BLK_F_RO (1ull << 5)
#define BLK_F_FLUSH (1ull << 9)

/* §5 device IDs. */
#define ID_BLK 2
#define ID_RNG 4

/* §5.2.6 block request types and status. */
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_SECTOR 8 /* the sector written and read back */
#define BLK_ID_BYTES 20
#define BLK_MARKER "TESTGUEST-VIRTIO-BLK"

/* §2.7 split virtqueue. */
#define QSIZE 8
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

#define REQ_TIMEOUT_US 2000000 /* per request */
#define IRQ_GRACE_US 200000    /* the irqfd edge may trail the used ring update */
#define RESET_TIMEOUT_US 100000

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vq_avail {
	uint16_t flags, idx;
	uint16_t ring[QSIZE];
	uint16_t used_event; /* unused: VIRTIO_F_EVENT_IDX is never accepted */
};

struct vq_used_elem {
	uint32_t id, len;
};

struct vq_used {
	uint16_t flags, idx;
	struct vq_used_elem ring[QSIZE];
	uint16_t avail_event;
};

/* One page per slot: rings (§2.7 alignment: desc 16, avail 2, used 4) and
 * request buffers. bss is identity mapped, so guest virtual = physical. */
struct slot_mem {
	struct vq_desc desc[QSIZE] __attribute__((aligned(16)));
	struct vq_avail avail __attribute__((aligned(2)));
	struct vq_used used __attribute__((aligned(4)));
	uint8_t hdr[16] __attribute__((aligned(16)));
	uint8_t data[512] __attribute__((aligned(16)));
	uint8_t id[BLK_ID_BYTES];
	uint8_t status;
	uint8_t rng[64];
} __attribute__((aligned(4096)));

static struct slot_mem slot_mem[VIO_SLOTS];
static volatile unsigned slot_irqs[VIO_SLOTS];

struct vdev {
	unsigned n;
	uint64_t base;
	uint32_t gsi, device_id;
	uint64_t offered, accepted;
	uint16_t avail_idx, last_used;
	struct slot_mem *m;
};

struct buf {
	void *p;
	uint32_t len;
	bool writable;
};

static uint64_t slot_base(unsigned n) { return VIO_BASE + (uint64_t)n * VIO_STRIDE; }
/* §4.2.2.2: control registers are accessed 32 bits wide only. */
static uint32_t rd(const struct vdev *v, uint32_t reg) { return mmio_read32(v->base + reg); }
static void wr(const struct vdev *v, uint32_t reg, uint32_t val) { mmio_write32(v->base + reg, val); }
static void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

static void virtio_irq(struct isr_frame *f)
{
	unsigned n = (unsigned)(f->vector - VEC_VIRTIO_BASE);
	if (n >= VIO_SLOTS)
		return;
	/* §4.2.3.4: read InterruptStatus, acknowledge what was read. */
	uint32_t st = mmio_read32(slot_base(n) + R_INT_STATUS) & 3;
	if (st)
		mmio_write32(slot_base(n) + R_INT_ACK, st);
	slot_irqs[n]++;
}

/* ---- DSDT cross-check --------------------------------------------------- */

struct dsdt_vio {
	uint32_t base, gsi;
	uint8_t irq_flags;
	bool has_irq;
};

static uint32_t le32(const uint8_t *b) { return (uint32_t)b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }

/* Finds each "LNRO0005" string in the DSDT and, in the bytes after it (the
 * device's _UID/_CCA/_CRS, up to the next LNRO0005), an ACPI 6 Memory32Fixed
 * descriptor (0x86, length 9) and an Extended Interrupt descriptor (0x89). */
static unsigned dsdt_scan(const struct platform *p, struct dsdt_vio *out, unsigned max, bool *have_dsdt)
{
	*have_dsdt = false;
	if (!p->dsdt || !phys_ok(p->dsdt, 36))
		return 0;
	const uint8_t *t = phys(p->dsdt);
	uint32_t len = le32(t + 4);
	if (memcmp(t, "DSDT", 4) || len < 36 || len > (16u << 20) || !phys_ok(p->dsdt, len))
		return 0;
	*have_dsdt = true;
	unsigned count = 0;
	for (uint32_t i = 36; i + 8 <= len; i++) {
		if (memcmp(t + i, "LNRO0005", 8))
			continue;
		struct dsdt_vio e = { 0, 0, 0, false };
		uint32_t end = i + 160 < len ? i + 160 : len;
		for (uint32_t j = i + 8; j < end; j++) {
			if (j + 8 <= len && !memcmp(t + j, "LNRO0005", 8))
				break;
			if (!e.base && j + 12 <= end && t[j] == 0x86 && t[j + 1] == 9 && t[j + 2] == 0)
				e.base = le32(t + j + 4);
			if (!e.has_irq && j + 9 <= end && t[j] == 0x89 && t[j + 1] >= 6 && t[j + 2] == 0 && t[j + 4] >= 1) {
				e.irq_flags = t[j + 3];
				e.gsi = le32(t + j + 5);
				e.has_irq = true;
			}
		}
		if (count < max)
			out[count] = e;
		count++;
	}
	return count;
}

/* ---- transport ---------------------------------------------------------- */

/* §4.2.3.1 / §2.4: write 0 to Status and wait until it reads back 0. */
static bool vdev_reset(const struct vdev *v)
{
	wr(v, R_STATUS, 0);
	uint64_t dl = deadline_us(RESET_TIMEOUT_US);
	while (rd(v, R_STATUS) != 0)
		if (deadline_passed(dl))
			return false;
	return true;
}

/* §3.1.1 steps 1-8 with §4.2.3.2 for queue 0. */
static bool vdev_init(struct vdev *v, uint64_t wanted, struct detail *d, const char *name)
{
	if (!vdev_reset(v)) {
		detail_add(d, "%s%u reset: status stays %#x", name, v->n, rd(v, R_STATUS));
		return false;
	}
	wr(v, R_STATUS, S_ACKNOWLEDGE);
	wr(v, R_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	wr(v, R_DEV_FEATURES_SEL, 0);
	uint64_t lo = rd(v, R_DEV_FEATURES);
	wr(v, R_DEV_FEATURES_SEL, 1);
	uint64_t hi = rd(v, R_DEV_FEATURES);
	v->offered = hi << 32 | lo;
	if (!(v->offered & F_VERSION_1)) {
		detail_add(d, "%s%u no VIRTIO_F_VERSION_1 (features %#lx)", name, v->n, v->offered);
		goto failed;
	}
	/* Neither EVENT_IDX (29) nor INDIRECT_DESC (28): only what we ask for. */
	v->accepted = F_VERSION_1 | (v->offered & wanted);
	wr(v, R_DRV_FEATURES_SEL, 0);
	wr(v, R_DRV_FEATURES, (uint32_t)v->accepted);
	wr(v, R_DRV_FEATURES_SEL, 1);
	wr(v, R_DRV_FEATURES, (uint32_t)(v->accepted >> 32));
	wr(v, R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	uint32_t st = rd(v, R_STATUS); /* §3.1.1 step 6: the device may refuse */
	if (!(st & S_FEATURES_OK)) {
		detail_add(d, "%s%u FEATURES_OK refused (status %#x, accepted %#lx)", name, v->n, st, v->accepted);
		goto failed;
	}
	wr(v, R_QUEUE_SEL, 0);
	if (rd(v, R_QUEUE_READY) != 0) {
		detail_add(d, "%s%u queue 0 ready before setup", name, v->n);
		goto failed;
	}
	uint32_t qmax = rd(v, R_QUEUE_NUM_MAX);
	if (qmax < QSIZE) {
		detail_add(d, "%s%u QueueNumMax %u < %u", name, v->n, qmax, QSIZE);
		goto failed;
	}
	struct slot_mem *m = v->m;
	memset(m, 0, sizeof(*m));
	uint64_t desc = (uint64_t)(uintptr_t)m->desc, avail = (uint64_t)(uintptr_t)&m->avail,
		 used = (uint64_t)(uintptr_t)&m->used;
	wr(v, R_QUEUE_NUM, QSIZE);
	wr(v, R_QUEUE_DESC_LO, (uint32_t)desc);
	wr(v, R_QUEUE_DESC_HI, (uint32_t)(desc >> 32));
	wr(v, R_QUEUE_DRIVER_LO, (uint32_t)avail);
	wr(v, R_QUEUE_DRIVER_HI, (uint32_t)(avail >> 32));
	wr(v, R_QUEUE_DEVICE_LO, (uint32_t)used);
	wr(v, R_QUEUE_DEVICE_HI, (uint32_t)(used >> 32));
	wr(v, R_QUEUE_READY, 1);
	if (rd(v, R_QUEUE_READY) != 1) {
		detail_add(d, "%s%u QueueReady not taken", name, v->n);
		goto failed;
	}
	v->avail_idx = v->last_used = 0;
	wr(v, R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	st = rd(v, R_STATUS);
	if ((st & (S_DRIVER_OK | S_NEEDS_RESET)) != S_DRIVER_OK) {
		detail_add(d, "%s%u status %#x after DRIVER_OK", name, v->n, st);
		goto failed;
	}
	return true;
failed:
	wr(v, R_STATUS, rd(v, R_STATUS) | S_FAILED); /* §3.1.1 step 8: give up */
	return false;
}

/*
 * Posts one descriptor chain at head 0 (one request in flight at a time, so
 * descriptors 0.. are free again after each completion), notifies queue 0
 * and polls the used ring (§2.7.13, §2.7.14). Interrupts are on while
 * polling so the handler can count them.
 */
static bool vq_run(struct vdev *v, const struct buf *b, unsigned nb, uint32_t *used_len, struct detail *d,
                   const char *what)
{
	struct slot_mem *m = v->m;
	for (unsigned i = 0; i < nb; i++) {
		m->desc[i].addr = (uint64_t)(uintptr_t)b[i].p;
		m->desc[i].len = b[i].len;
		m->desc[i].flags = (uint16_t)((b[i].writable ? DESC_F_WRITE : 0) | (i + 1 < nb ? DESC_F_NEXT : 0));
		m->desc[i].next = (uint16_t)(i + 1 < nb ? i + 1 : 0);
	}
	volatile struct vq_avail *av = &m->avail;
	av->ring[v->avail_idx % QSIZE] = 0;
	mb(); /* §2.7.13.2: ring entry before idx */
	av->idx = ++v->avail_idx;
	mb(); /* §2.7.13.3: idx before the notification */
	wr(v, R_QUEUE_NOTIFY, 0); /* §4.2.3.3: queue index, 32-bit write */

	volatile struct vq_used *u = &m->used;
	uint64_t dl = deadline_us(REQ_TIMEOUT_US);
	bool done;
	cpu_sti();
	while (!(done = u->idx != v->last_used) && !deadline_passed(dl))
		cpu_pause();
	cpu_cli();
	if (!done) {
		detail_add(d, " %s timeout after %u ms (avail %u used %u status %#x)", what, REQ_TIMEOUT_US / 1000,
		           v->avail_idx, u->idx, rd(v, R_STATUS));
		return false;
	}
	mb(); /* idx before the element */
	uint16_t got = u->idx;
	uint32_t id = u->ring[v->last_used % QSIZE].id;
	*used_len = u->ring[v->last_used % QSIZE].len;
	v->last_used++;
	if (got != v->last_used || id != 0) {
		detail_add(d, " %s used idx %u id %u (want %u/0)", what, got, id, v->last_used);
		return false;
	}
	return true;
}

/* Waits briefly for the first interrupt if none came yet. */
static unsigned wait_irqs(const struct vdev *v)
{
	uint64_t dl = deadline_us(IRQ_GRACE_US);
	cpu_sti();
	while (!slot_irqs[v->n] && !deadline_passed(dl))
		cpu_pause();
	cpu_cli();
	return slot_irqs[v->n];
}

/* ---- block (§5.2) -------------------------------------------------------- */

static void blk_header(struct slot_mem *m, uint32_t type, uint64_t sector)
{
	memset(m->hdr, 0, sizeof(m->hdr)); /* le32 type, le32 reserved, le64 sector */
	memcpy(m->hdr, &type, 4);
	memcpy(m->hdr + 8, &sector, 8);
}

static bool blk_req(struct vdev *v, uint32_t type, void *data, uint32_t len, bool data_writable, struct detail *d,
                    const char *what)
{
	struct slot_mem *m = v->m;
	blk_header(m, type, BLK_SECTOR);
	m->status = 0xff;
	struct buf b[3] = { { m->hdr, sizeof(m->hdr), false } };
	unsigned nb = 1;
	if (data)
		b[nb++] = (struct buf){ data, len, data_writable };
	b[nb++] = (struct buf){ &m->status, 1, true };
	uint32_t used_len;
	if (!vq_run(v, b, nb, &used_len, d, what))
		return false;
	uint8_t st = *(volatile uint8_t *)&m->status;
	if (st != BLK_S_OK) {
		detail_add(d, " %s status %u", what, st);
		return false;
	}
	return true;
}

static bool blk_test(struct vdev *v, struct detail *d)
{
	struct slot_mem *m = v->m;
	/* §2.5.1: reread until ConfigGeneration is stable around the 64-bit field. */
	uint64_t cap = 0;
	for (int tries = 0; tries < 10; tries++) {
		uint32_t gen = rd(v, R_CONFIG_GEN);
		cap = (uint64_t)rd(v, R_CONFIG + 4) << 32 | rd(v, R_CONFIG);
		if (rd(v, R_CONFIG_GEN) == gen)
			break;
	}
	if (cap >= 2048)
		detail_add(d, "blk%u %luMiB", v->n, cap >> 11);
	else
		detail_add(d, "blk%u %lu sectors", v->n, cap);
	if (cap < 16) {
		detail_add(d, " capacity < 16 sectors");
		return false;
	}
	if (v->offered & BLK_F_RO) {
		detail_add(d, " read-only (VIRTIO_BLK_F_RO): cannot write");
		return false;
	}
	memcpy(m->data, BLK_MARKER, sizeof(BLK_MARKER) - 1);
	for (unsigned i = sizeof(BLK_MARKER) - 1; i < sizeof(m->data); i++)
		m->data[i] = (uint8_t)(i * 7 + 3);
	if (!blk_req(v, BLK_T_OUT, m->data, sizeof(m->data), false, d, "write"))
		return false;
	bool flush = v->accepted & BLK_F_FLUSH;
	if (flush && !blk_req(v, BLK_T_FLUSH, NULL, 0, false, d, "flush"))
		return false;
	memset(m->data, 0, sizeof(m->data));
	if (!blk_req(v, BLK_T_IN, m->data, sizeof(m->data), true, d, "read"))
		return false;
	for (unsigned i = 0; i < sizeof(m->data); i++) {
		uint8_t want = i < sizeof(BLK_MARKER) - 1 ? (uint8_t)BLK_MARKER[i] : (uint8_t)(i * 7 + 3);
		if (m->data[i] != want) {
			detail_add(d, " read back byte %u = %#x, want %#x", i, m->data[i], want);
			return false;
		}
	}
	detail_add(d, " wrote+%sread sector %u", flush ? "flushed+" : "", BLK_SECTOR);
	memset(m->id, 0, sizeof(m->id));
	if (!blk_req(v, BLK_T_GET_ID, m->id, sizeof(m->id), true, d, "get_id"))
		return false;
	/* §5.2.6: up to 20 bytes, NUL-terminated only if shorter. */
	char id[BLK_ID_BYTES + 1];
	unsigned n = 0;
	for (; n < BLK_ID_BYTES && m->id[n]; n++)
		id[n] = m->id[n] > 0x20 && m->id[n] < 0x7f ? (char)m->id[n] : '?';
	id[n] = '\0';
	detail_add(d, " id=%s", n ? id : "(empty)");
	return true;
}

/* ---- entropy (§5.4) ------------------------------------------------------ */

static bool rng_test(struct vdev *v, struct detail *d)
{
	struct slot_mem *m = v->m;
	memset(m->rng, 0, sizeof(m->rng));
	struct buf b = { m->rng, sizeof(m->rng), true };
	uint32_t len;
	detail_add(d, "rng%u", v->n);
	if (!vq_run(v, &b, 1, &len, d, "request"))
		return false;
	if (len == 0 || len > sizeof(m->rng)) {
		detail_add(d, " used length %u (want 1..%u)", len, (unsigned)sizeof(m->rng));
		return false;
	}
	uint8_t any = 0;
	for (uint32_t i = 0; i < len; i++)
		any |= ((volatile uint8_t *)m->rng)[i];
	detail_add(d, " %u bytes", len);
	if (!any) {
		detail_add(d, " all zero");
		return false;
	}
	return true;
}

/* ---- the check ------------------------------------------------------------ */

static bool run_device(const struct platform *p, struct vdev *v, struct detail *d)
{
	const char *name = v->device_id == ID_BLK ? "blk" : "rng";
	uint8_t vec = (uint8_t)(VEC_VIRTIO_BASE + v->n);
	slot_irqs[v->n] = 0;
	irq_set_handler(vec, virtio_irq);
	if (!ioapic_route(p, v->gsi, vec, bsp_apic_id, VIO_IRQ_FLAGS)) {
		detail_add(d, "%s%u no IOAPIC pin for gsi %u", name, v->n, v->gsi);
		irq_set_handler(vec, NULL);
		return false;
	}
	bool ok = vdev_init(v, v->device_id == ID_BLK ? BLK_F_FLUSH : 0, d, name);
	if (ok)
		ok = v->device_id == ID_BLK ? blk_test(v, d) : rng_test(v, d);
	unsigned irqs = ok ? wait_irqs(v) : slot_irqs[v->n];
	detail_add(d, " irqs=%u", irqs);
	if (ok && v->device_id == ID_BLK && !irqs) {
		detail_add(d, " (no interrupt on gsi %u)", v->gsi);
		ok = false;
	}
	/* Leave the device quiet: reset stops its queue (§2.4), then mask the pin. */
	if (!vdev_reset(v)) {
		detail_add(d, " reset at the end failed");
		ok = false;
	}
	ioapic_mask(p, v->gsi);
	irq_set_handler(vec, NULL);
	return ok;
}

bool check_virtio(struct guest *g, struct detail *d)
{
	const struct platform *p = &g->plat;
	uint32_t expect = g->opt.expect_virtio, present = 0, found = 0;
	unsigned ndev = 0;
	bool ok = true;
	struct dsdt_vio dv[16];
	bool have_dsdt;
	unsigned ndv = dsdt_scan(p, dv, ARRAY_SIZE(dv), &have_dsdt);

	for (unsigned n = 0; n < VIO_SLOTS; n++) {
		struct vdev v = { .n = n, .base = slot_base(n), .gsi = VIO_FIRST_GSI + n, .m = &slot_mem[n] };
		if (rd(&v, R_MAGIC) != VIO_MAGIC) /* unclaimed MMIO reads as all ones */
			continue;
		uint32_t version = rd(&v, R_VERSION);
		v.device_id = rd(&v, R_DEVICE_ID);
		if (v.device_id == 0) /* §4.2.3.1.1: a placeholder window */
			continue;
		const char *sep = ndev++ ? "; " : "";
		if (version != 2) {
			detail_add(d, "%sslot%u version %u (want 2, modern)", sep, n, version);
			ok = false;
			continue;
		}
		if (v.device_id != ID_BLK && v.device_id != ID_RNG) {
			detail_add(d, "%sslot%u device id %u not tested", sep, n, v.device_id);
			continue;
		}
		detail_add(d, "%s", sep);
		present |= 1u << v.device_id;
		/* The DSDT must describe this window like the VMM's layout says. */
		if (have_dsdt) {
			const struct dsdt_vio *e = NULL;
			for (unsigned i = 0; i < ndv && i < ARRAY_SIZE(dv); i++)
				if (dv[i].base == v.base)
					e = &dv[i];
			if (!e) {
				detail_add(d, "slot%u not in DSDT (no LNRO0005 at %#lx) ", n, v.base);
				ok = false;
			} else if (!e->has_irq || e->gsi != v.gsi || (e->irq_flags & 6) != 2) {
				detail_add(d, "slot%u DSDT irq gsi %u flags %#x (want gsi %u edge high) ", n, e->gsi,
				           e->irq_flags, v.gsi);
				ok = false;
			}
		}
		if (run_device(p, &v, d))
			found |= 1u << v.device_id;
		else
			ok = false;
	}
	if (!ndev && !expect) {
		detail_add(d, "no devices");
		return true;
	}
	if (!ndev)
		detail_add(d, "no devices");
	if (expect & (1u << 31)) {
		detail_add(d, "; expect_virtio: unknown device name");
		ok = false;
	}
	static const struct {
		uint32_t id;
		const char *name;
	} kinds[] = { { ID_BLK, "blk" }, { ID_RNG, "rng" } };
	for (unsigned i = 0; i < ARRAY_SIZE(kinds); i++) {
		uint32_t bit = 1u << kinds[i].id;
		if ((expect & bit) && !(found & bit)) {
			detail_add(d, "; expected %s: %s", kinds[i].name, present & bit ? "failed" : "not found");
			ok = false;
		}
	}
	return ok;
}
