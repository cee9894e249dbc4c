/*
 * selftest=linux64 (test-only option, PVH boot): re-enter the image through
 * the Linux 64-bit entry the way our VMM does, so QEMU (which cannot run our
 * bzImage) still exercises startup_64 and the boot_params parser. We build,
 * at the VMM's addresses, a zero page (0x7000, setup header + e820 + RSDP),
 * the command line (0x20000), identity page tables (0x9000..0xEFFF) and a
 * GDT with Linux's __BOOT_CS 0x10 / __BOOT_DS 0x18, switch to them and jump
 * to startup_64 with RSI = zero page and interrupts off.
 */
#include "platform.h"

#define ZP 0x7000
#define CMDLINE 0x20000
#define PT 0x9000 /* PML4, PDPT, 4 PDs: 0x9000..0xEFFF */
#define VMM_GDT 0x5000

void startup_64(void);

static void put(uint64_t pa, const void *v, size_t n) { memcpy(phys(pa), v, n); }

static void put32(uint64_t pa, uint32_t v) { put(pa, &v, 4); }

void selftest_linux64(const struct boot_info *bi)
{
	/* Command line without our own option, so the second run is normal. */
	char *cl = phys(CMDLINE);
	memcpy(cl, bi->cmdline, bi->cmdline_len + 1);
	for (char *s = cl; *s; s++)
		if (!strncmp(s, "selftest=linux64", 16))
			memset(s, ' ', 16);

	uint8_t *zp = phys(ZP);
	memset(zp, 0, 4096);
	zp[0x1F1] = 4;                         /* setup_sects, as in our bzImage */
	put32(ZP + 0x1FE, 0xAA55);             /* boot_flag (u16) + jump (0) */
	put(ZP + 0x202, "HdrS", 4);
	put32(ZP + 0x206, 0x020C);             /* version (u16) */
	zp[0x211] = 0x01;                      /* loadflags LOADED_HIGH */
	put32(ZP + 0x228, CMDLINE);            /* cmd_line_ptr; ext_cmd_line_ptr stays 0 */
	put(ZP + 0x070, &bi->rsdp, 8);         /* acpi_rsdp_addr */
	unsigned n = bi->nmem < 128 ? bi->nmem : 128;
	zp[0x1E8] = (uint8_t)n;                /* e820_entries */
	for (unsigned i = 0; i < n; i++) {
		uint64_t e = ZP + 0x2D0 + i * 20;
		put(e, &bi->mem[i].addr, 8);
		put(e + 8, &bi->mem[i].size, 8);
		put(e + 16, &bi->mem[i].type, 4);
	}

	uint64_t *pml4 = phys(PT), *pdpt = phys(PT + 0x1000), *pd = phys(PT + 0x2000);
	memset(pml4, 0, 0x2000);
	pml4[0] = (PT + 0x1000) | 3;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (PT + 0x2000 + i * 0x1000) | 3;
	for (uint64_t i = 0; i < 2048; i++)
		pd[i] = (i << 21) | 0x83;

	static const uint64_t gdt[4] = { 0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull };
	put(VMM_GDT, gdt, sizeof(gdt));
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) desc = { sizeof(gdt) - 1, VMM_GDT };

	kprintf("testguest: selftest: re-entering at startup_64 %p with boot_params %#x\n", (void *)startup_64, ZP);
	console_flush();
	__asm__ volatile("cli\n\t"
	                 "lgdt %0\n\t"
	                 "mov %1, %%cr3\n\t"
	                 "mov $0x18, %%eax\n\t"
	                 "mov %%eax, %%ds\n\t"
	                 "mov %%eax, %%es\n\t"
	                 "mov %%eax, %%ss\n\t"
	                 "pushq $0x10\n\t"
	                 "pushq %2\n\t"
	                 "mov %3, %%rsi\n\t"
	                 "lretq"
	                 :
	                 : "m"(desc), "r"((uint64_t)PT), "r"((uint64_t)(uintptr_t)startup_64), "i"(ZP)
	                 : "rax", "rsi", "memory");
	__builtin_unreachable();
}
