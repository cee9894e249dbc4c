/*
 * bzcheck: host-side validation of the two guest artifacts, since QEMU cannot
 * boot our bzImage (it runs the real-mode setup, which we do not ship).
 *   bzcheck <testguest.bzImage> <testguest.elf>
 * Checks the setup header fields the VMM's loader relies on, that the
 * protected-mode part equals the ELF's loadable bytes, that offset 0x200 is
 * the ELF's startup_64, and that the ELF carries the PVH entry note.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bzimage.h"

static int failures, passes;

static void expect(int cond, const char *what, unsigned long long got)
{
	printf("%s: %s (%#llx)\n", cond ? "ok" : "FAIL", what, got);
	cond ? passes++ : failures++;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	if (f && !fseek(f, 0, SEEK_END) && (*len = (size_t)ftell(f)) && !fseek(f, 0, SEEK_SET) &&
	    (buf = malloc(*len)) && fread(buf, 1, *len, f) == *len) {
		fclose(f);
		return buf;
	}
	fprintf(stderr, "bzcheck: cannot read %s\n", path);
	exit(2);
}

static uint64_t get(const unsigned char *b, size_t off, unsigned n)
{
	uint64_t v = 0;
	memcpy(&v, b + off, n);
	return v;
}

/* Value of a symbol from the ELF's .symtab, or 0. */
static uint64_t sym(const unsigned char *elf, size_t len, const char *name)
{
	const Elf64_Ehdr *eh = (const void *)elf;
	const Elf64_Shdr *sh = (const void *)(elf + eh->e_shoff);
	if (eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(*sh) > len)
		return 0;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
			continue;
		const Elf64_Sym *s = (const void *)(elf + sh[i].sh_offset);
		const char *str = (const char *)elf + sh[sh[i].sh_link].sh_offset;
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*s); k++)
			if (!strcmp(str + s[k].st_name, name))
				return s[k].st_value;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bzcheck <testguest.bzImage> <testguest.elf>\n");
		return 2;
	}
	size_t bl, el;
	unsigned char *bz = slurp(argv[1], &bl), *elf = slurp(argv[2], &el);
	if (bl < 0x1000 || el < sizeof(Elf64_Ehdr)) {
		fprintf(stderr, "bzcheck: files too small\n");
		return 1;
	}
	unsigned sects = bz[OFF_SETUP_SECTS] ? bz[OFF_SETUP_SECTS] : 4;
	size_t pm_off = (1 + sects) * 512ul, pm_len = bl - pm_off;
	expect(get(bz, OFF_BOOT_FLAG, 2) == 0xAA55, "boot_flag 0xAA55", get(bz, OFF_BOOT_FLAG, 2));
	expect(!memcmp(bz + OFF_HEADER, "HdrS", 4), "header \"HdrS\" at 0x202", get(bz, OFF_HEADER, 4));
	expect(get(bz, OFF_VERSION, 2) >= 0x020C, "protocol version >= 2.12", get(bz, OFF_VERSION, 2));
	expect(sects == BZ_SETUP_SECTS, "setup_sects", sects);
	expect(bz[OFF_LOADFLAGS] & LOADED_HIGH, "loadflags LOADED_HIGH", bz[OFF_LOADFLAGS]);
	expect(get(bz, OFF_XLOADFLAGS, 2) & XLF_KERNEL_64, "xloadflags XLF_KERNEL_64", get(bz, OFF_XLOADFLAGS, 2));
	expect(bz[OFF_RELOCATABLE] == 0, "relocatable_kernel 0", bz[OFF_RELOCATABLE]);
	expect(get(bz, OFF_PREF_ADDRESS, 8) == BZ_LOAD_ADDR, "pref_address 0x100000", get(bz, OFF_PREF_ADDRESS, 8));
	expect(get(bz, OFF_CODE32_START, 4) == BZ_LOAD_ADDR, "code32_start 0x100000", get(bz, OFF_CODE32_START, 4));
	expect(get(bz, OFF_CMDLINE_SIZE, 4) >= 255, "cmdline_size", get(bz, OFF_CMDLINE_SIZE, 4));
	expect(get(bz, OFF_KERNEL_ALIGN, 4) != 0, "kernel_alignment", get(bz, OFF_KERNEL_ALIGN, 4));
	expect(get(bz, OFF_SYSSIZE, 4) == (pm_len + 15) / 16, "syssize = protected-mode size / 16", get(bz, OFF_SYSSIZE, 4));

	/* The protected-mode part must be the ELF's loadable bytes at 0x100000. */
	const Elf64_Ehdr *eh = (const void *)elf;
	uint64_t mem_end = 0;
	int same = eh->e_machine == EM_X86_64 && eh->e_phoff + eh->e_phnum * sizeof(Elf64_Phdr) <= el;
	int note_ok = 0;
	for (unsigned i = 0; same && i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const void *)(elf + eh->e_phoff + i * sizeof(Elf64_Phdr));
		if (ph->p_type == PT_LOAD) {
			uint64_t off = ph->p_paddr - BZ_LOAD_ADDR;
			same = ph->p_paddr >= BZ_LOAD_ADDR && off + ph->p_filesz <= pm_len && ph->p_offset + ph->p_filesz <= el &&
			       !memcmp(bz + pm_off + off, elf + ph->p_offset, ph->p_filesz);
			if (ph->p_paddr + ph->p_memsz > mem_end)
				mem_end = ph->p_paddr + ph->p_memsz;
		} else if (ph->p_type == PT_NOTE && ph->p_offset + 24 <= el) {
			/* Xen note: namesz 4, descsz 4 or 8, type 18, "Xen\0", entry */
			const unsigned char *n = elf + ph->p_offset;
			note_ok = get(n, 0, 4) == 4 && get(n, 8, 4) == 18 && !memcmp(n + 12, "Xen", 4) &&
			          (uint32_t)get(n, 16, 4) == sym(elf, el, "pvh_start32") && sym(elf, el, "pvh_start32");
		}
	}
	expect(same, "protected-mode part equals ELF PT_LOAD contents", pm_len);
	expect(get(bz, OFF_INIT_SIZE, 4) >= mem_end - BZ_LOAD_ADDR, "init_size covers bss", get(bz, OFF_INIT_SIZE, 4));
	uint64_t s64 = sym(elf, el, "startup_64");
	expect(s64 == BZ_LOAD_ADDR + BZ_ENTRY64_OFFSET, "startup_64 at load address + 0x200", s64);
	expect(pm_len > BZ_ENTRY64_OFFSET && bz[pm_off + BZ_ENTRY64_OFFSET] == 0xFA, "offset 0x200 starts with cli",
	       pm_len > BZ_ENTRY64_OFFSET ? bz[pm_off + BZ_ENTRY64_OFFSET] : 0);
	expect(note_ok, "ELF PT_NOTE Xen PHYS32_ENTRY -> pvh_start32", sym(elf, el, "pvh_start32"));
	printf("bzcheck: %d passed, %d failed\n", passes, failures);
	free(bz);
	free(elf);
	return failures ? 1 : 0;
}
