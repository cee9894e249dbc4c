/* check memmap: the memory map is well formed and matches what the guest
 * relies on (low RAM, its own image in RAM). */
#include "platform.h"

#define LOW_RAM_END 0x9FC00

bool check_memmap(struct guest *g, struct detail *d)
{
	const struct boot_info *bi = &g->boot;
	struct mem_region m[MAX_MEM];
	unsigned n = bi->nmem;
	if (n == 0) {
		detail_add(d, "no memory map");
		return false;
	}
	if (bi->raw_entries > MAX_MEM) {
		detail_add(d, "%u entries, more than %u", bi->raw_entries, MAX_MEM);
		return false;
	}
	/* Sorted copy, so overlap is a neighbour test. Zero-length entries
	 * describe no memory and are dropped, as Linux's e820 code does (qboot,
	 * QEMU microvm's firmware, emits an all-zero one); the detail says so. */
	unsigned empty = 0;
	n = 0;
	for (unsigned i = 0; i < bi->nmem; i++) {
		if (bi->mem[i].size)
			m[n++] = bi->mem[i];
		else
			empty++;
	}
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && m[j - 1].addr > m[j].addr; j--) {
			struct mem_region t = m[j];
			m[j] = m[j - 1];
			m[j - 1] = t;
		}
	uint64_t usable = 0, top = 0;
	for (unsigned i = 0; i < n; i++) {
		if (m[i].addr + m[i].size < m[i].addr) {
			detail_add(d, "entry at %#lx has bad size %#lx", m[i].addr, m[i].size);
			return false;
		}
		if (i && m[i - 1].addr + m[i - 1].size > m[i].addr) {
			detail_add(d, "entries overlap at %#lx", m[i].addr);
			return false;
		}
		if (m[i].type == E820_RAM) {
			usable += m[i].size;
			top = m[i].addr + m[i].size;
		}
	}
	detail_add(d, "%u entries, %lu MiB usable, top %#lx", n, usable >> 20, top);
	if (empty)
		detail_add(d, " (%u empty entries ignored)", empty);
	bool ok = n > 0;
	if (!mem_usable(bi, 0, LOW_RAM_END)) {
		detail_add(d, ", low RAM 0-%#x not usable", LOW_RAM_END);
		ok = false;
	}
	uint64_t img0 = (uint64_t)(uintptr_t)_image_start, img1 = (uint64_t)(uintptr_t)_image_end;
	if (mem_usable(bi, img0, img1)) {
		detail_add(d, ", image %#lx-%#lx in RAM", img0, img1);
	} else {
		detail_add(d, ", image %#lx-%#lx not in usable RAM", img0, img1);
		ok = false;
	}
	return ok;
}
