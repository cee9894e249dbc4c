/*
 * bench/exits guest: freestanding, long mode, identity-mapped low 4 GiB,
 * interrupts off throughout. Everything the benchmark needs, and no more.
 */
#ifndef EXITS_GUEST_H
#define EXITS_GUEST_H

#include <stdint.h>

#include "port_io.h" /* tests/guest/include */

static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* lfence keeps rdtsc from running ahead of the loop it closes (AMD and Intel alike). */
static inline uint64_t rdtsc_ordered(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* console.c: COM1, polled. */
void put_str(const char *s);
void put_u64(uint64_t v);
void put_hex(uint64_t v);

/* cmdline.c: "key=value" words of the kernel command line. */
int cmdline_u64(const char *cmdline, const char *key, uint64_t *out);

/* poweroff.c: our VMM's PM1a_CNT, else the FADT sleep control register (QEMU microvm). */
void poweroff(const uint8_t *start_info);

/* virtio_blk.c: one device, queue 0 of size 8, one request in flight. */
struct vblk {
	uint64_t base;
	uint64_t capacity; /* 512-byte sectors */
	uint16_t avail_idx;
};
/* 0 on success, else a reason the device cannot be used. */
const char *vblk_init(struct vblk *d, uint64_t base);
/* Reads sector `sector` into the driver's buffer; returns the status byte (0 = OK). */
int vblk_read_sector(struct vblk *d, uint64_t sector);

#endif
