/*
 * bench/exits guest: times three kinds of VM exit in loops, with the TSC, and
 * reports on COM1, one line per figure:
 *   exits: begin NAME
 *   exits: result NAME n=N cycles=C        (C = TSC ticks for all N iterations)
 *   exits: skip NAME reason=...
 *   exits: done
 * The host side (exits_bench) timestamps the lines too, for a wall-clock figure.
 *
 * Command line: exits.n=N (MMIO and port reads, default 20000), exits.blk_n=N
 * (virtio-blk requests, default N/10), exits.mmio=ADDR [exits.stride=S
 * exits.slots=K]: the virtio-mmio windows ADDR + i*S, i < K (default 1), of
 * which the first virtio-blk one is used for (1) and (3). QEMU microvm with
 * ACPI names its devices only in the DSDT, hence the scan of its 512-byte slots.
 */
#include "guest.h"

#define PVH_START_MAGIC 0x336ec578u
#define UART_SCRATCH 0x3FF

static void begin(const char *name)
{
	put_str("exits: begin ");
	put_str(name);
	put_str("\n");
}

static void result(const char *name, uint64_t n, uint64_t cycles)
{
	put_str("exits: result ");
	put_str(name);
	put_str(" n=");
	put_u64(n);
	put_str(" cycles=");
	put_u64(cycles);
	put_str("\n");
}

static void skip(const char *name, const char *reason)
{
	put_str("exits: skip ");
	put_str(name);
	put_str(" reason=");
	put_str(reason);
	put_str("\n");
}

/* (1) a trapped 32-bit MMIO read of MagicValue: KVM_EXIT_MMIO, answered in the VMM process. */
static uint64_t mmio_loop(uint64_t base, uint64_t n)
{
	uint64_t t0 = rdtsc_ordered();
	for (uint64_t i = 0; i < n; ++i)
		(void)mmio_read32(base);
	return rdtsc_ordered() - t0;
}

/* (2) a port read of the 16550 scratch register: KVM_EXIT_IO. */
static uint64_t pio_loop(uint64_t n)
{
	uint64_t t0 = rdtsc_ordered();
	for (uint64_t i = 0; i < n; ++i)
		(void)inb(UART_SCRATCH);
	return rdtsc_ordered() - t0;
}

/* (3) virtio-blk READ of one sector, notify to completion. Returns 0 on an I/O error. */
static uint64_t blk_loop(struct vblk *d, uint64_t n)
{
	uint64_t t0 = rdtsc_ordered();
	for (uint64_t i = 0; i < n; ++i)
		if (vblk_read_sector(d, i % d->capacity) != 0)
			return 0;
	return rdtsc_ordered() - t0;
}

/* The first window holding a virtio-blk device, else the first one at all. */
static uint64_t find_blk(uint64_t first, uint64_t stride, uint64_t slots)
{
	for (uint64_t i = 0; i < slots && i < 64; ++i) {
		uint64_t w = first + i * stride;
		if (w >= 0x100000000ull || w < 0xC0000000ull)
			break;
		if (mmio_read32(w) == 0x74726976 && mmio_read32(w + 8) == 2)
			return w;
	}
	return first;
}

void exits_main(uint32_t start_info_addr)
{
	const uint8_t *si = (const uint8_t *)(uint64_t)start_info_addr;
	const char *cmdline = 0;
	if (si && *(const uint32_t *)si == PVH_START_MAGIC) {
		uint64_t c = *(const uint32_t *)(si + 24) | ((uint64_t)*(const uint32_t *)(si + 28) << 32);
		if (c && c < 0x100000000ull)
			cmdline = (const char *)c;
	}
	uint64_t n = 20000, blk_n = 0, base = 0, stride = 0x1000, slots = 1;
	cmdline_u64(cmdline, "exits.n=", &n);
	if (!cmdline_u64(cmdline, "exits.blk_n=", &blk_n))
		blk_n = n / 10 ? n / 10 : 1;
	cmdline_u64(cmdline, "exits.stride=", &stride);
	cmdline_u64(cmdline, "exits.slots=", &slots);
	if (cmdline_u64(cmdline, "exits.mmio=", &base))
		base = find_blk(base, stride, slots);
	put_str("exits: start n=");
	put_u64(n);
	put_str(" blk_n=");
	put_u64(blk_n);
	put_str(" mmio=");
	put_hex(base);
	put_str("\n");

	if (base && mmio_read32(base) == 0x74726976) {
		mmio_loop(base, n / 100 + 1);
		begin("mmio");
		result("mmio", n, mmio_loop(base, n));
	} else {
		skip("mmio", base ? "no virtio-mmio magic at the given address" : "no virtio-mmio device");
	}

	pio_loop(n / 100 + 1);
	begin("pio");
	result("pio", n, pio_loop(n));

	struct vblk d;
	const char *why = base ? vblk_init(&d, base) : "no virtio-mmio device";
	if (why) {
		skip("blk", why);
	} else if (vblk_read_sector(&d, 0) != 0) {
		skip("blk", "the device answered the first READ with an error");
	} else {
		blk_loop(&d, blk_n / 100 + 1);
		begin("blk");
		uint64_t c = blk_loop(&d, blk_n);
		if (c)
			result("blk", blk_n, c);
		else
			skip("blk", "a READ failed");
	}
	put_str("exits: done\n");
	poweroff(si);
}
