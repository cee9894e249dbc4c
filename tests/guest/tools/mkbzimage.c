/*
 * mkbzimage: testguest.elf -> testguest.bzImage (host tool).
 *
 * Layout (see README.md): sector 0 = boot sector with the setup header at
 * 0x1F1; sectors 1..4 = setup code, here only a "cli; hlt" stub since loaders
 * we target never run real-mode setup; then the protected-mode kernel = the
 * ELF's PT_LOAD file contents as a flat image starting at 0x100000 (what
 * objcopy -O binary would give), whose offset 0x200 is the 64-bit entry.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bzimage.h"

static void die(const char *msg, const char *arg)
{
	fprintf(stderr, "mkbzimage: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	exit(1);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open", path);
	if (fseek(f, 0, SEEK_END) || (*len = (size_t)ftell(f)) == 0 || fseek(f, 0, SEEK_SET))
		die("cannot size", path);
	unsigned char *buf = malloc(*len);
	if (!buf || fread(buf, 1, *len, f) != *len)
		die("cannot read", path);
	fclose(f);
	return buf;
}

static void put16(unsigned char *b, size_t off, uint16_t v) { memcpy(b + off, &v, 2); }
static void put32(unsigned char *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static void put64(unsigned char *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mkbzimage <testguest.elf> <out.bzImage>\n");
		return 2;
	}
	size_t elf_len;
	unsigned char *elf = read_file(argv[1], &elf_len);
	Elf64_Ehdr eh;
	if (elf_len < sizeof(eh))
		die("too small for ELF", argv[1]);
	memcpy(&eh, elf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > elf_len)
		die("not an x86-64 ELF64 with program headers", argv[1]);

	/* Flat image bounds: PT_LOAD by physical address. */
	uint64_t lo = UINT64_MAX, file_end = 0, mem_end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, elf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_offset + ph.p_filesz > elf_len)
			die("segment outside the file", argv[1]);
		lo = ph.p_paddr < lo ? ph.p_paddr : lo;
		if (ph.p_paddr + ph.p_filesz > file_end)
			file_end = ph.p_paddr + ph.p_filesz;
		if (ph.p_paddr + ph.p_memsz > mem_end)
			mem_end = ph.p_paddr + ph.p_memsz;
	}
	if (lo != BZ_LOAD_ADDR || file_end <= lo + BZ_ENTRY64_OFFSET || mem_end > 0xFFFFFFFFu)
		die("image must start at 0x100000 and extend past the 0x200 entry", argv[1]);

	size_t setup_len = (1 + BZ_SETUP_SECTS) * BZ_SECTOR;
	size_t pm_len = (size_t)(file_end - lo);
	size_t out_len = setup_len + pm_len;
	unsigned char *out = calloc(1, out_len);
	if (!out)
		die("out of memory", NULL);
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, elf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD && ph.p_filesz)
			memcpy(out + setup_len + (ph.p_paddr - lo), elf + ph.p_offset, ph.p_filesz);
	}

	/* Boot sector: a message for anyone who dd's it to a disk. */
	static const char msg[] = "testguest: load with a Linux boot protocol loader (64-bit entry)\r\n";
	memcpy(out + 2, msg, sizeof(msg));
	out[0] = 0xEB; /* jmp $ */
	out[1] = 0xFE;

	out[OFF_SETUP_SECTS] = BZ_SETUP_SECTS;
	put32(out, OFF_SYSSIZE, (uint32_t)((pm_len + 15) / 16));
	put16(out, OFF_VID_MODE, 0xFFFF); /* "normal" */
	put16(out, OFF_BOOT_FLAG, 0xAA55);
	out[OFF_JUMP] = 0xEB; /* short jmp to the setup stub right after the header */
	out[OFF_JUMP + 1] = (unsigned char)(HEADER_END - (OFF_JUMP + 2));
	memcpy(out + OFF_HEADER, "HdrS", 4);
	put16(out, OFF_VERSION, BZ_PROTOCOL);
	out[OFF_LOADFLAGS] = LOADED_HIGH;
	put32(out, OFF_CODE32_START, BZ_LOAD_ADDR);
	put32(out, OFF_INITRD_ADDR_MAX, 0x7FFFFFFF);
	put32(out, OFF_KERNEL_ALIGN, BZ_KERNEL_ALIGN);
	out[OFF_RELOCATABLE] = 0;
	out[OFF_MIN_ALIGNMENT] = BZ_MIN_ALIGN;
	put16(out, OFF_XLOADFLAGS, XLF_KERNEL_64);
	put32(out, OFF_CMDLINE_SIZE, BZ_CMDLINE_SIZE);
	put64(out, OFF_PREF_ADDRESS, BZ_LOAD_ADDR);
	/* init_size: memory from the load address the kernel needs, bss included. */
	put32(out, OFF_INIT_SIZE, (uint32_t)(((mem_end - lo) + 0xFFF) & ~0xFFFull));
	/* Real-mode setup stub: cli; hlt; jmp back to hlt. */
	static const unsigned char stub[] = { 0xFA, 0xF4, 0xEB, 0xFD };
	memcpy(out + HEADER_END, stub, sizeof(stub));

	FILE *f = fopen(argv[2], "wb");
	if (!f || fwrite(out, 1, out_len, f) != out_len || fclose(f))
		die("cannot write", argv[2]);
	free(out);
	free(elf);
	return 0;
}
