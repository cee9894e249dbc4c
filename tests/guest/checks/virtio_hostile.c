/*
 * check virtio-hostile (command line hostile=virtio): a driver that lies.
 * Against each blk and rng device it posts malformed virtqueues and bad
 * requests (the case table is in checks/virtio_hostile_cases.c) and checks
 * that the device refuses them:
 * no completion at all (the back-end stopped the ring: counted "stopped"),
 * a blk status IOERR/UNSUPP, a QueueReady that reads back 0, or a request
 * served without looking at what the driver scribbled. Nothing may be
 * executed: every buffer the device must not fill keeps its 0xA5 filler, and
 * for blk sectors 0..2 and the last one hold what they held (sector 1: a
 * pattern written first). After each case the device is reset, initialised
 * again and must serve one good request (blk: read sector 0; rng: 16 bytes).
 * DEVICE_NEEDS_RESET and the config-change interrupt bit are counted, not
 * required. The driver is src/virtio_drv.c.
 */
#include "virtio_hostile.h"

static const char *const o_names[O_N] = { "stopped", "IOERR", "UNSUPP", "QueueReady=0", "ignored" };
static uint8_t saved[2][BLK_SECTOR_BYTES]; /* sector 2 and the last one, as found */
static uint8_t sector1[BLK_SECTOR_BYTES];  /* the pattern written to sector 1 */
static uint8_t io[BLK_SECTOR_BYTES];

static bool filler_intact(void)
{
	const uint8_t *p = vh_mem.data[0], *q = vh_mem.rng[0];
	for (size_t i = 0; i < sizeof(vh_mem.data); i++)
		if (p[i] != VH_FILL)
			return false;
	for (size_t i = 0; i < sizeof(vh_mem.rng); i++)
		if (q[i] != VH_FILL)
			return false;
	return true;
}

/* The proof of life after each case. */
static bool good_request(struct hctx *c)
{
	if (!vh_start(c))
		return false;
	if (vh_is_blk(c)) {
		int st = vh_blk_rw(c, BLK_T_IN, 0, io);
		if (st != BLK_S_OK || memcmp(io, vh_sector0, BLK_SECTOR_BYTES)) {
			detail_add(c->why, "read of sector 0: %s", st < 0 ? "no completion" : st ? "bad status" : "wrong data");
			return false;
		}
		return true;
	}
	struct vbuf b = { vio_addr(vh_mem.rng[0]), 16, true };
	uint32_t len;
	return vq_run(c->v, &b, 1, &len, c->why, "16-byte request") && len > 0 && len <= 16;
}

/* blk: sectors 0, 2 and the last are kept, sector 1 gets a pattern (phase 0);
 * at the end (phase 1) all four must read back as expected. */
static bool blk_sectors(struct hctx *c, int phase)
{
	uint8_t *keep[3] = { vh_sector0, saved[0], saved[1] };
	if (!vh_start(c))
		return false;
	for (unsigned i = 0; i < 3; i++) {
		uint64_t s = i == 0 ? 0 : i == 1 ? 2 : c->cap - 1;
		if (vh_blk_rw(c, BLK_T_IN, s, io) != BLK_S_OK) {
			detail_add(c->why, "read of sector %lu failed", s);
			return false;
		}
		if (!phase)
			memcpy(keep[i], io, BLK_SECTOR_BYTES);
		else if (memcmp(io, keep[i], BLK_SECTOR_BYTES)) {
			detail_add(c->why, "sector %lu changed", s);
			return false;
		}
	}
	if (!phase) {
		static const char tag[] = "TESTGUEST-HOSTILE-SECTOR1";
		for (unsigned i = 0; i < BLK_SECTOR_BYTES; i++)
			sector1[i] = i < sizeof(tag) - 1 ? (uint8_t)tag[i] : (uint8_t)(i * 13 + 7);
		if (vh_blk_rw(c, BLK_T_OUT, 1, sector1) != BLK_S_OK) {
			detail_add(c->why, "write of sector 1 failed");
			return false;
		}
	}
	if (vh_blk_rw(c, BLK_T_IN, 1, io) != BLK_S_OK || memcmp(io, sector1, BLK_SECTOR_BYTES)) {
		detail_add(c->why, "sector 1 does not hold its pattern");
		return false;
	}
	return vdev_reset(c->v);
}

/* Runs every case for one device; returns how many passed, or -1 (c->why says why). */
static int run_device(struct hctx *c)
{
	uint8_t bit = vh_is_blk(c) ? 1 : 2;
	if (vh_is_blk(c)) {
		c->cap = blk_capacity(c->v);
		vio_wr(c->v, R_DEV_FEATURES_SEL, 0);
		if (c->cap < 16 || (vio_rd(c->v, R_DEV_FEATURES) & BLK_F_RO)) {
			detail_add(c->why, "needs a writable disk of >= 16 sectors (%lu)", c->cap);
			return -1;
		}
		if (!blk_sectors(c, 0))
			return -1;
	}
	int passed = 0;
	for (unsigned i = 0; i < vh_ncases; i++) {
		const struct hcase *k = &vh_cases[i];
		if (!(k->devs & bit))
			continue;
		size_t mark = c->why->len;
		detail_add(c->why, "case %s (%s): ", k->id, k->what);
		int o = vh_start(c) ? k->run(c, k->arg) : O_FAIL;
		uint32_t st = vio_rd(c->v, R_STATUS), is = vio_rd(c->v, R_INT_STATUS);
		c->needs_reset += !!(st & S_NEEDS_RESET);
		c->cfg_irq += !!(is & INT_CONFIG_CHANGE);
		if (o != O_FAIL && !k->writes && !filler_intact()) {
			detail_add(c->why, "a buffer was written (outcome %s)", o_names[o]);
			o = O_FAIL;
		}
		if (!vdev_reset(c->v)) {
			detail_add(c->why, "%sreset failed (status %#x)", o == O_FAIL ? "; " : "", vio_rd(c->v, R_STATUS));
			return -1;
		}
		if (o == O_FAIL)
			return -1;
		if (!good_request(c)) {
			detail_add(c->why, " after it (outcome %s): device dead", o_names[o]);
			return -1;
		}
		vdev_reset(c->v);
		c->why->len = mark; /* this one passed: drop its label */
		c->why->buf[mark] = '\0';
		c->count[o]++;
		passed++;
	}
	if (vh_is_blk(c) && !blk_sectors(c, 1))
		return -1;
	return passed;
}

static uint64_t ram_end(const struct boot_info *bi)
{
	uint64_t end = 0;
	for (unsigned i = 0; i < bi->nmem; i++)
		if (bi->mem[i].type == E820_RAM && bi->mem[i].addr + bi->mem[i].size > end)
			end = bi->mem[i].addr + bi->mem[i].size;
	return end;
}

bool check_virtio_hostile(struct guest *g, struct detail *d)
{
	uint32_t opt = g->opt.hostile;
	if (!(opt & HOSTILE_VIRTIO)) {
		detail_add(d, "skipped (no hostile=virtio)");
		return true;
	}
	static struct detail per; /* the per-device summaries */
	per.len = 0;
	per.buf[0] = '\0';
	unsigned total = 0, ndev = 0;
	for (unsigned n = 0; n < VIO_SLOTS; n++) {
		struct vdev v;
		uint32_t version;
		if (!vio_probe(&v, n, &version) || version != 2 || (v.device_id != ID_BLK && v.device_id != ID_RNG))
			continue;
		struct hctx c = { .v = &v, .why = d, .ram_end = ram_end(&g->boot) };
		detail_add(d, "%s%u ", v.name, n);
		int passed = run_device(&c);
		vdev_reset(&v);
		if (passed < 0)
			return false; /* d: "<dev> case <id> (<what>): <what happened>" */
		d->len = 0;
		d->buf[0] = '\0';
		total += (unsigned)passed;
		detail_add(&per, "%s%s%u: %d cases", ndev++ ? "; " : "", v.name, n, passed);
		for (unsigned o = 0, sep = 0; o < O_N; o++)
			if (c.count[o])
				detail_add(&per, "%s%u %s", sep++ ? ", " : " (", c.count[o], o_names[o]);
		detail_add(&per, "), NEEDS_RESET %u, config irq %u%s", c.needs_reset, c.cfg_irq,
		           v.device_id == ID_BLK ? ", sectors 0-2+last intact" : "");
	}
	if (!ndev)
		detail_add(d, "0 cases (no blk or rng device)");
	else
		detail_add(d, "%u cases refused, device still works after each (%s)", total, per.buf);
	return true;
}
