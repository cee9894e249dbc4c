/*
 * Normalizes the two boot paths into struct boot_info. Runs before anything
 * reuses low memory: the loader's start_info / boot_params, memory map and
 * command line all live there (our VMM: 0x6000, 0x6100, 0x7000, 0x20000).
 */
#include "platform.h"

#define PVH_MAGIC 0x336ec578u

struct hvm_start_info { /* xen/include/public/arch-x86/hvm/start_info.h */
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

/* boot_params ("zero page") offsets, Documentation/arch/x86/zero-page.rst */
#define BP_ACPI_RSDP 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0C0
#define BP_EXT_RAMDISK_SIZE 0x0C4
#define BP_EXT_CMDLINE 0x0C8
#define BP_E820_ENTRIES 0x1E8
#define BP_HDR_MAGIC 0x202
#define BP_HDR_VERSION 0x206
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21C
#define BP_CMDLINE_PTR 0x228
#define BP_E820_TABLE 0x2D0
#define BP_E820_MAX 128
#define E820_ENTRY_SIZE 20

static void busy_add(struct boot_info *bi, uint64_t addr, uint64_t size, const char *what)
{
	if (bi->nbusy < MAX_BUSY && size)
		bi->busy[bi->nbusy++] = (struct busy_range){ addr, size, what };
}

static void add_region(struct boot_info *bi, uint64_t addr, uint64_t size, uint32_t type)
{
	if (bi->nmem < MAX_MEM)
		bi->mem[bi->nmem++] = (struct mem_region){ addr, size, type };
}

static void copy_cmdline(struct boot_info *bi, uint64_t pa)
{
	bi->cmdline_addr = pa;
	if (!pa || !phys_ok(pa, 1))
		return;
	const volatile char *src = phys(pa);
	uint32_t n = 0;
	while (n < CMDLINE_MAX - 1 && phys_ok(pa + n, 1) && src[n])
		bi->cmdline[n] = src[n], n++;
	bi->cmdline[n] = '\0';
	bi->cmdline_len = n;
	bi->cmdline_truncated = n == CMDLINE_MAX - 1 && src[n];
	busy_add(bi, pa, n + 1, "cmdline");
}

static void collect_pvh(struct boot_info *bi, uint64_t data)
{
	const struct hvm_start_info *si = phys(data);
	busy_add(bi, data, sizeof(*si), "start_info");
	bi->magic = si->magic;
	bi->version = si->version;
	if (si->magic != PVH_MAGIC)
		return;
	/* memmap fields exist from version 1 on */
	if (si->version >= 1 && si->memmap_paddr && phys_ok(si->memmap_paddr, 0)) {
		const struct hvm_memmap_entry *e = phys(si->memmap_paddr);
		bi->raw_entries = si->memmap_entries;
		for (uint32_t i = 0; i < si->memmap_entries && i < MAX_MEM; i++)
			add_region(bi, e[i].addr, e[i].size, e[i].type);
		busy_add(bi, si->memmap_paddr, (uint64_t)si->memmap_entries * sizeof(*e), "memmap");
	}
	copy_cmdline(bi, si->cmdline_paddr);
	bi->rsdp = si->rsdp_paddr;
	/* The initramfs is module 0 (Linux's PVH entry takes the same one). */
	if (si->nr_modules && si->modlist_paddr && phys_ok(si->modlist_paddr, sizeof(struct hvm_modlist_entry))) {
		const struct hvm_modlist_entry *m = phys(si->modlist_paddr);
		bi->initrd_addr = m->paddr;
		bi->initrd_size = m->size;
	}
}

static void collect_linux(struct boot_info *bi, uint64_t data)
{
	const uint8_t *bp = phys(data);
	busy_add(bi, data, 4096, "zero page");
	memcpy(&bi->magic, bp + BP_HDR_MAGIC, 4);
	uint16_t ver;
	memcpy(&ver, bp + BP_HDR_VERSION, 2);
	bi->version = ver;
	bi->raw_entries = bp[BP_E820_ENTRIES];
	for (unsigned i = 0; i < bi->raw_entries && i < BP_E820_MAX; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + i * E820_ENTRY_SIZE;
		uint64_t addr, size;
		uint32_t type;
		memcpy(&addr, e, 8);
		memcpy(&size, e + 8, 8);
		memcpy(&type, e + 16, 4);
		add_region(bi, addr, size, type);
	}
	uint32_t lo, hi;
	memcpy(&lo, bp + BP_CMDLINE_PTR, 4);
	memcpy(&hi, bp + BP_EXT_CMDLINE, 4);
	copy_cmdline(bi, ((uint64_t)hi << 32) | lo);
	memcpy(&bi->rsdp, bp + BP_ACPI_RSDP, 8);
	memcpy(&lo, bp + BP_RAMDISK_IMAGE, 4);
	memcpy(&hi, bp + BP_EXT_RAMDISK_IMAGE, 4);
	bi->initrd_addr = (uint64_t)hi << 32 | lo;
	memcpy(&lo, bp + BP_RAMDISK_SIZE, 4);
	memcpy(&hi, bp + BP_EXT_RAMDISK_SIZE, 4);
	bi->initrd_size = (uint64_t)hi << 32 | lo;
}

void bootinfo_collect(struct boot_info *bi, uint64_t data, unsigned path)
{
	bi->path = path;
	bi->path_name = path == BOOT_PVH ? "pvh" : "linux64";
	bi->data_addr = data;
	if (!data || !phys_ok(data, 4096))
		return; /* check_bootinfo reports it */
	if (path == BOOT_PVH)
		collect_pvh(bi, data);
	else
		collect_linux(bi, data);
}

/* True if [start, end) is covered by usable RAM; entries may be unsorted
 * and adjacent entries may split the range. */
bool mem_usable(const struct boot_info *bi, uint64_t start, uint64_t end)
{
	uint64_t pos = start;
	bool progress = true;
	while (pos < end && progress) {
		progress = false;
		for (unsigned i = 0; i < bi->nmem; i++) {
			const struct mem_region *m = &bi->mem[i];
			if (m->type == E820_RAM && m->addr <= pos && pos - m->addr < m->size) {
				pos = m->addr + m->size;
				progress = true;
			}
		}
	}
	return pos >= end;
}
