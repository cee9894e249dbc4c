/* check exceptions: the IDT delivers a trap (#BP), a fault (#UD) and a fault
 * with error code and CR2 (#PF) with the right vector and RIP. Anything not
 * armed this way is fatal (see guest_fatal_exception).
 * exceptions=no-int3 skips the #BP probe and says so in the detail: kvm_pvm's
 * instruction emulator cannot run int3 (ARCHITECTURE.md §5), and QEMU with KVM
 * there stops at it, so bench/boot needs a payload without it. */
#include "platform.h"

/* arch/isr.S */
void probe_int3(void);
void probe_ud(void);
void probe_pf(void);
extern const char probe_int3_resume[], probe_ud_resume[], probe_pf_resume[];
#define ADDR(sym) ((uint64_t)(uintptr_t)(sym))

static bool expect(struct detail *d, const char *name, uint8_t vec, void (*fn)(void), uint64_t want_rip,
                   uint64_t resume, uint64_t want_err)
{
	uint64_t rip = 0, err = 0;
	exc_expect(vec, resume);
	fn();
	if (!exc_was_caught(&rip, &err)) {
		detail_add(d, " %s not delivered", name);
		return false;
	}
	if (rip != want_rip || err != want_err) {
		detail_add(d, " %s rip %#lx err %#lx, want %#lx/%#lx", name, rip, err, want_rip, want_err);
		return false;
	}
	detail_add(d, " %s", name);
	return true;
}

bool check_exceptions(struct guest *g, struct detail *d)
{
	bool ok = true;
	detail_add(d, "caught");
	if (!g->opt.exceptions_no_int3)
		ok &= expect(d, "#BP", 3, probe_int3, ADDR(probe_int3_resume), 0, 0);
	ok &= expect(d, "#UD", 6, probe_ud, ADDR(probe_ud), ADDR(probe_ud_resume), 0);
	/* Not-present read in supervisor mode: error code 0, CR2 = address. */
	ok &= expect(d, "#PF", 14, probe_pf, ADDR(probe_pf), ADDR(probe_pf_resume), 0);
	if (read_cr2() != 0x200000000ull) {
		detail_add(d, " (cr2 %#lx)", read_cr2());
		ok = false;
	}
	if (g->opt.exceptions_no_int3)
		detail_add(d, "; #BP not probed (exceptions=no-int3)");
	if (g->opt.crash && !strncmp(g->opt.crash, "ud", 2))
		probe_ud(); /* crash=ud: exercise the fatal path on purpose */
	if (g->opt.crash && !strncmp(g->opt.crash, "fetch", 5))
		((void (*)(void))(uintptr_t)0xC0000000u)(); /* crash=fetch: code from the MMIO hole,
		                                            * which no KVM can emulate: the VMM's error */
	return ok;
}
