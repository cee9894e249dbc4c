/*
 * check virtio: drives the VMM's virtio-mmio devices the way a driver does
 * (virtio 1.2: §2 basic facilities, §3.1.1 initialization, §4.2 virtio-mmio
 * version 2, §5.2 block, §5.4 entropy, §5.10 socket: config and queues only). Written from the spec.
 *
 * Discovery probes the fixed windows 0xD0000000 + n * 0x1000 (n = 0..7;
 * the 3..4 GiB range is mapped uncached by head.S) and cross-checks each
 * device against the DSDT's "LNRO0005" devices (window base, GSI 16 + n,
 * edge/active-high). Each device gets one split virtqueue of 8 entries in
 * bss. Completions are found by polling the used ring (bounded); the
 * interrupt on GSI 16 + n is routed through the IOAPIC and counted as well.
 * The driver itself (transport, queue, polling) is src/virtio_drv.c, shared
 * with the virtio-hostile check.
 */
#include "virtio_drv.h"

#define BLK_SECTOR 8 /* the sector written and read back */
#define BLK_ID_BYTES 20
#define BLK_MARKER "TESTGUEST-VIRTIO-BLK"
#define IRQ_GRACE_US 200000 /* the irqfd edge may trail the used ring update */

/* One page per slot: the ring and the request buffers. */
struct slot_mem {
	struct vring ring;
	uint8_t hdr[BLK_HDR_BYTES] __attribute__((aligned(16)));
	uint8_t data[512] __attribute__((aligned(16)));
	uint8_t id[BLK_ID_BYTES];
	uint8_t status;
	uint8_t rng[64];
} __attribute__((aligned(4096)));

static struct slot_mem slot_mem[VIO_SLOTS];
static volatile unsigned slot_irqs[VIO_SLOTS];

static void virtio_irq(struct isr_frame *f)
{
	unsigned n = (unsigned)(f->vector - VEC_VIRTIO_BASE);
	if (n >= VIO_SLOTS)
		return;
	/* §4.2.3.4: read InterruptStatus, acknowledge what was read. */
	uint32_t st = mmio_read32(vio_slot_base(n) + R_INT_STATUS) & 3;
	if (st)
		mmio_write32(vio_slot_base(n) + R_INT_ACK, st);
	slot_irqs[n]++;
}

/* ---- DSDT cross-check --------------------------------------------------- */

struct dsdt_vio {
	uint32_t base, gsi;
	uint8_t irq_flags;
	bool has_irq;
};

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

static bool blk_req(struct vdev *v, uint32_t type, void *data, uint32_t len, bool data_writable, struct detail *d,
                    const char *what)
{
	struct slot_mem *m = &slot_mem[v->n];
	blk_header(m->hdr, type, BLK_SECTOR);
	m->status = 0xff;
	struct vbuf b[3] = { { vio_addr(m->hdr), sizeof(m->hdr), false } };
	unsigned nb = 1;
	if (data)
		b[nb++] = (struct vbuf){ vio_addr(data), len, data_writable };
	b[nb++] = (struct vbuf){ vio_addr(&m->status), 1, true };
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
	struct slot_mem *m = &slot_mem[v->n];
	uint64_t cap = blk_capacity(v);
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
	struct slot_mem *m = &slot_mem[v->n];
	memset(m->rng, 0, sizeof(m->rng));
	struct vbuf b = { vio_addr(m->rng), sizeof(m->rng), true };
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

/* ---- socket (§5.10) -------------------------------------------------------- */

/* The config's le64 guest_cid (§5.10.4), read with the §2.5.1 generation loop,
 * and the three queues (rx, tx, event, §5.10.2) the transport must offer. No
 * queue is started: without a guest listener the device has nothing to do. */
static bool vsock_test(struct vdev *v, uint64_t expect_cid, struct detail *d)
{
	detail_add(d, "vsock%u", v->n);
	if (!vdev_negotiate(v, 0, d))
		return false;
	uint32_t gen, lo, hi;
	unsigned tries = 0;
	do {
		gen = vio_rd(v, R_CONFIG_GEN);
		lo = vio_rd(v, R_CONFIG);
		hi = vio_rd(v, R_CONFIG + 4);
	} while (gen != vio_rd(v, R_CONFIG_GEN) && ++tries < 100);
	uint64_t cid = (uint64_t)hi << 32 | lo;
	detail_add(d, " cid=%lu", (unsigned long)cid);
	bool ok = true;
	if (expect_cid && cid != expect_cid) {
		detail_add(d, " (want %lu)", (unsigned long)expect_cid);
		ok = false;
	}
	for (uint32_t q = 0; q < 4; q++) {
		vio_wr(v, R_QUEUE_SEL, q);
		uint32_t max = vio_rd(v, R_QUEUE_NUM_MAX);
		if ((q < 3) != (max != 0)) {
			detail_add(d, " queue %u max %u (want 3 queues)", q, max);
			ok = false;
		}
	}
	return ok;
}

/* ---- the check ------------------------------------------------------------ */

static bool run_device(const struct platform *p, struct vdev *v, struct detail *d)
{
	const char *name = v->name;
	uint8_t vec = (uint8_t)(VEC_VIRTIO_BASE + v->n);
	slot_irqs[v->n] = 0;
	irq_set_handler(vec, virtio_irq);
	if (!ioapic_route(p, v->gsi, vec, bsp_apic_id, VIO_IRQ_FLAGS)) {
		detail_add(d, "%s%u no IOAPIC pin for gsi %u", name, v->n, v->gsi);
		irq_set_handler(vec, NULL);
		return false;
	}
	bool ok = vdev_init(v, v->device_id == ID_BLK ? BLK_F_FLUSH : 0, d);
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
		struct vdev v;
		uint32_t version;
		if (!vio_probe(&v, n, &version))
			continue;
		v.ring = &slot_mem[n].ring;
		const char *sep = ndev++ ? "; " : "";
		if (version != 2) {
			detail_add(d, "%sslot%u version %u (want 2, modern)", sep, n, version);
			ok = false;
			continue;
		}
		if (v.device_id == ID_VSOCK) {
			detail_add(d, "%s", sep);
			present |= 1u << ID_VSOCK;
			if (vsock_test(&v, g->opt.expect_vsock_cid, d))
				found |= 1u << ID_VSOCK;
			else
				ok = false;
			vdev_reset(&v);
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
	} kinds[] = { { ID_BLK, "blk" }, { ID_RNG, "rng" }, { ID_VSOCK, "vsock" } };
	for (unsigned i = 0; i < ARRAY_SIZE(kinds); i++) {
		uint32_t bit = 1u << kinds[i].id;
		if ((expect & bit) && !(found & bit)) {
			detail_add(d, "; expected %s: %s", kinds[i].name, present & bit ? "failed" : "not found");
			ok = false;
		}
	}
	return ok;
}
