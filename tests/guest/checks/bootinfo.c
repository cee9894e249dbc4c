/* check bootinfo: the loader's boot structure is what the protocol says and
 * the command line is readable. */
#include "platform.h"

#define PVH_MAGIC 0x336ec578u
#define HDRS_MAGIC 0x53726448u /* "HdrS" */

bool check_bootinfo(struct guest *g, struct detail *d)
{
	const struct boot_info *bi = &g->boot;
	bool ok = true;
	if (!bi->data_addr || !phys_ok(bi->data_addr, 4096)) {
		detail_add(d, "boot data pointer %#lx unusable", bi->data_addr);
		return false;
	}
	if (bi->path == BOOT_PVH) {
		detail_add(d, "pvh start_info@%#lx", bi->data_addr);
		if (bi->magic != PVH_MAGIC) {
			detail_add(d, " bad magic %#x", bi->magic);
			return false;
		}
		detail_add(d, " v%u", bi->version);
		if (bi->version < 1) {
			detail_add(d, " (need >= 1 for memmap)");
			ok = false;
		}
	} else {
		detail_add(d, "boot_params@%#lx", bi->data_addr);
		if (bi->magic != HDRS_MAGIC) {
			detail_add(d, " setup header magic %#x, not HdrS", bi->magic);
			return false;
		}
		detail_add(d, " protocol %u.%02u", bi->version >> 8, bi->version & 0xff);
		if (bi->raw_entries == 0 || bi->raw_entries > 128) {
			detail_add(d, " bad e820_entries %u", bi->raw_entries);
			ok = false;
		}
	}
	detail_add(d, " memmap %u entries", bi->raw_entries);
	if (!bi->cmdline_addr) {
		detail_add(d, " cmdline none");
	} else if (bi->cmdline_truncated) {
		detail_add(d, " cmdline@%#lx not NUL-terminated within %u bytes", bi->cmdline_addr, CMDLINE_MAX);
		ok = false;
	} else {
		/* Shortened and made printable: the detail is one output line. */
		char shown[72];
		unsigned n = 0;
		for (; n < bi->cmdline_len && n < sizeof(shown) - 4; n++) {
			char c = bi->cmdline[n];
			shown[n] = c >= 0x20 && c < 0x7f && c != '"' ? c : '?';
		}
		if (n < bi->cmdline_len)
			shown[n++] = '.', shown[n++] = '.', shown[n++] = '.';
		shown[n] = '\0';
		detail_add(d, " cmdline@%#lx \"%s\"", bi->cmdline_addr, shown);
	}
	if (bi->rsdp)
		detail_add(d, " rsdp %#lx", bi->rsdp);
	else
		detail_add(d, " rsdp none");
	return ok;
}
