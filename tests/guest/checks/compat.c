/* check compat: with compat=exercise, drives the VMM's kvm_pvm compatibility module on any
 * KVM (`vmm run --kvm-compat on`). Part 1 runs each instruction the module completes from
 * the VMM's emulation window, a page of RAM with no KVM memslot, where every KVM's
 * emulator fails the way kvm_pvm's does; part 2 makes SYSCALL round trips from ring 3,
 * real ones and simulated kvm_pvm landings (CPL 3 at LSTAR), which only the module's
 * SYSCALL fix-up brings to CPL 0. Without compat=exercise the check does nothing;
 * compat=unsupported runs one instruction the module does not complete (the VMM's error). */
#include "platform.h"

#define WINDOW 0xD0000ull /* the VMM's arch/x86_64/layout.h kCompatWindowAddr */
#define WINDOW_END (WINDOW + 0x1000)
#define ROUNDS 4 /* arch/compat.S COMPAT_ROUNDS */
#define USER_FLAGS 0x40483ull
#define FMASK 0x47700ull /* TF IF DF IOPL NT AC, as Linux sets it */
#define STAR ((uint64_t)(SEL_UCODE32 | 3) << 48 | (uint64_t)SEL_CODE64 << 32)
#define MSR_EFER 0xC0000080u
#define MSR_STAR 0xC0000081u
#define MSR_LSTAR 0xC0000082u
#define MSR_FMASK 0xC0000084u
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_AC (1ull << 18)
#define PTE_USER 0x4ull

struct compat_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, r8, rflags;
};
struct compat_side {
	uint64_t cs, ss, rflags, rcx, r11;
};
struct compat_syscalls {
	struct compat_side kernel[2 * ROUNDS], user[2 * ROUNDS];
};

/* arch/compat.S */
void compat_call(struct compat_regs *r, uint64_t target);
void compat_user_run(struct compat_syscalls *s);
extern const char compat_syscall_entry[], compat_after_syscall[];
extern uint64_t boot_pml4[];

extern uint64_t gdt[];

static uint64_t operand[2] __attribute__((aligned(16)));

/* A 64-bit TSS whose RSP0 takes interrupts that arrive in ring 3: on kvm_pvm SYSRET brings
 * back R11 with IF set (the hardware flags of guest user mode), so ring 3 can be
 * interrupted there. SDM Vol. 3A §8.7, Figure 8-11. */
static struct {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3, iomap_base;
} __attribute__((packed, aligned(16))) tss;
static uint8_t tss_stack[8192] __attribute__((aligned(16)));

static void load_tss(void)
{
	static bool loaded;
	if (loaded) /* ltr marks the descriptor busy; once is enough */
		return;
	uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;
	tss.rsp[0] = (uint64_t)(uintptr_t)(tss_stack + sizeof(tss_stack));
	tss.iomap_base = sizeof(tss); /* no I/O bitmap */
	gdt[SEL_TSS / 8] = (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | 0x89ull << 40 | /* P, type 9 */
	                   ((limit >> 16) & 0xF) << 48 | ((base >> 24) & 0xFF) << 56;
	gdt[SEL_TSS / 8 + 1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS));
	loaded = true;
}
static uint32_t mxcsr_word;
static struct compat_syscalls results;

/* Puts `code` at the end of the window, so execution falls through to a ret on the next
 * (ordinary) page. Each store to the window is an MMIO exit the VMM serves from RAM. */
static uint64_t place(const uint8_t *code, size_t len)
{
	*(volatile uint8_t *)(uintptr_t)WINDOW_END = 0xC3; /* ret */
	uint64_t at = WINDOW_END - len;
	for (size_t i = 0; i < len; i++)
		*(volatile uint8_t *)(uintptr_t)(at + i) = code[i];
	return at;
}

static bool run(struct detail *d, const char *name, const uint8_t *code, size_t len,
                struct compat_regs *r)
{
	compat_call(r, place(code, len));
	detail_add(d, " %s", name);
	return true;
}

static bool window_part(struct detail *d)
{
	bool ok = true;
	struct compat_regs r;
	static const uint8_t popcnt[] = { 0xF3, 0x4C, 0x0F, 0xB8, 0xC6 };   /* popcnt r8, rsi */
	static const uint8_t cx16[] = { 0xF0, 0x48, 0x0F, 0xC7, 0x0F };     /* lock cmpxchg16b [rdi] */
	static const uint8_t stac[] = { 0x0F, 0x01, 0xCB };
	static const uint8_t clac[] = { 0x0F, 0x01, 0xCA };
	static const uint8_t fwait[] = { 0x9B };
	static const uint8_t ldmxcsr[] = { 0x0F, 0xAE, 0x17 };             /* ldmxcsr [rdi] */
	static const uint8_t stmxcsr[] = { 0x0F, 0xAE, 0x1F };             /* stmxcsr [rdi] */
	static const uint8_t int3[] = { 0xCC };

	r = (struct compat_regs){ .rsi = 0xF0F0 };
	run(d, "popcnt", popcnt, sizeof(popcnt), &r);
	if (r.r8 != 8) {
		detail_add(d, "=%lu", r.r8);
		ok = false;
	}

	operand[0] = 1;
	operand[1] = 2;
	r = (struct compat_regs){ .rax = 1, .rdx = 2, .rbx = 3, .rcx = 4, .rdi = (uint64_t)(uintptr_t)operand };
	run(d, "cmpxchg16b", cx16, sizeof(cx16), &r);
	if (!(r.rflags & RFLAGS_ZF) || operand[0] != 3 || operand[1] != 4) {
		detail_add(d, "(zf %lu, %lu:%lu)", (r.rflags >> 6) & 1, operand[1], operand[0]);
		ok = false;
	}

	r = (struct compat_regs){ 0 };
	run(d, "stac", stac, sizeof(stac), &r);
	bool ac_set = r.rflags & RFLAGS_AC;
	run(d, "clac", clac, sizeof(clac), &r);
	if (!ac_set || (r.rflags & RFLAGS_AC)) {
		detail_add(d, "(ac %d then %lu)", ac_set, (r.rflags >> 18) & 1);
		ok = false;
	}

	run(d, "fwait", fwait, sizeof(fwait), &r);

	/* ldmxcsr/stmxcsr need CR4.OSFXSR (and CR0.EM clear): set for this part only. */
	uint64_t cr4, cr0;
	__asm__ volatile("mov %%cr4, %0; mov %%cr0, %1" : "=r"(cr4), "=r"(cr0));
	__asm__ volatile("mov %0, %%cr4; mov %1, %%cr0" : : "r"(cr4 | (1ull << 9)), "r"((cr0 & ~4ull) | 2ull));
	/* Each direction against the CPU's own instruction in ordinary memory: ldmxcsr from
	 * the window, then the CPU's stmxcsr; the CPU's ldmxcsr, then stmxcsr from the window.
	 * (On kvm_pvm the CPU's own ldmxcsr/stmxcsr in ring 0 go through the module too.) */
	mxcsr_word = 0x3F80; /* round down, all exceptions masked */
	r = (struct compat_regs){ .rdi = (uint64_t)(uintptr_t)&mxcsr_word };
	run(d, "ldmxcsr", ldmxcsr, sizeof(ldmxcsr), &r);
	uint32_t seen = 0;
	__asm__ volatile("stmxcsr %0" : "=m"(seen));
	if (seen != 0x3F80) {
		detail_add(d, "(not in the cpu: %#x)", seen);
		ok = false;
	}
	uint32_t set = 0x5F80; /* round up */
	__asm__ volatile("ldmxcsr %0" : : "m"(set));
	mxcsr_word = 0;
	run(d, "stmxcsr", stmxcsr, sizeof(stmxcsr), &r);
	if (mxcsr_word != 0x5F80) {
		detail_add(d, "(not from the cpu: %#x)", mxcsr_word);
		ok = false;
	}
	uint32_t def = 0x1F80;
	__asm__ volatile("ldmxcsr %0" : : "m"(def)); /* ordinary memory: the CPU's own */
	__asm__ volatile("mov %0, %%cr4; mov %1, %%cr0" : : "r"(cr4), "r"(cr0));

	/* int3 is a trap: the module injects #BP with RIP past it, the next page's ret, as
	 * kvm_pvm delivers it. VMX/SVM KVM handle an injected #BP as a soft exception and
	 * recompute its return address from the instruction at RIP (SVM drops it when that
	 * fails): the detail says which happened, and only a #BP at a wrong address fails. */
	uint64_t rip = 0, err = 0;
	exc_expect(3, 0);
	r = (struct compat_regs){ 0 };
	run(d, "int3", int3, sizeof(int3), &r);
	if (!exc_was_caught(&rip, &err)) {
		detail_add(d, "(#BP not delivered)");
	} else if (rip != WINDOW_END) {
		detail_add(d, "(#BP rip %#lx)", rip);
		ok = false;
	}
	return ok;
}

/* IF is left out of the user-side comparisons: this guest runs ring 3 with IF clear, but
 * kvm_pvm's SYSCALL saves the hardware RFLAGS in R11, whose IF is set in guest user mode. */
#define RFLAGS_IF (1ull << 9)

static bool side_ok(struct detail *d, const char *what, unsigned round, const struct compat_side *s,
                    uint64_t cs, uint64_t ss, uint64_t rflags, uint64_t rflags_mask)
{
	const uint64_t rcx = (uint64_t)(uintptr_t)compat_after_syscall;
	if (s->cs == cs && s->ss == ss && (s->rflags & rflags_mask) == rflags && s->rcx == rcx &&
	    (s->r11 & ~RFLAGS_IF) == USER_FLAGS)
		return true;
	detail_add(d, " %u %s: cs %#lx ss %#lx fl %#lx rcx %#lx r11 %#lx", round, what, s->cs, s->ss,
	           s->rflags, s->rcx, s->r11);
	return false;
}

static bool syscall_part(struct detail *d)
{
	uint64_t *pdpt = (uint64_t *)(uintptr_t)(boot_pml4[0] & ~0xFFFull);
	uint64_t *pd = (uint64_t *)(uintptr_t)(pdpt[0] & ~0xFFFull);
	const uint64_t efer = rdmsr(MSR_EFER);
	uint64_t flags;
	__asm__ volatile("pushfq; pop %0; cli" : "=r"(flags));
	/* The first 2 MiB (this image, its stack and data) user-accessible for the round trips. */
	boot_pml4[0] |= PTE_USER;
	pdpt[0] |= PTE_USER;
	pd[0] |= PTE_USER;
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
	wrmsr(MSR_STAR, STAR);
	wrmsr(MSR_FMASK, FMASK);
	wrmsr(MSR_LSTAR, (uint64_t)(uintptr_t)compat_syscall_entry); /* the VMM's MSR filter sees it */
	wrmsr(MSR_EFER, efer | 1); /* SCE */

	load_tss();
	memset(&results, 0, sizeof(results));
	compat_user_run(&results);

	wrmsr(MSR_EFER, efer);
	__asm__ volatile("cli");
	pd[0] &= ~PTE_USER;
	pdpt[0] &= ~PTE_USER;
	boot_pml4[0] &= ~PTE_USER;
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	if (flags & (1ull << 9))
		__asm__ volatile("sti");

	/* Kernel side: SYSCALL masked FMASK's bits (and the fix-up did, for a landing). A real
	 * SYSCALL keeps the arithmetic flags on hardware, but QEMU's TCG clears them, so they
	 * are compared only for landings, where the VMM's fix-up computed RFLAGS. */
	bool ok = true;
	const uint64_t all = ~0ull, kernel_flags = USER_FLAGS & ~FMASK;
	for (unsigned i = 0; i < 2 * ROUNDS; i++) {
		const bool landing = i >= ROUNDS;
		const char *how = landing ? "landing" : "syscall";
		ok &= side_ok(d, how, i, &results.kernel[i], SEL_CODE64, SEL_DATA,
		              landing ? kernel_flags : 0x2, landing ? all : FMASK | 0x2);
		ok &= side_ok(d, how, i, &results.user[i], SEL_UCODE64 | 3, SEL_UDATA | 3, USER_FLAGS,
		              ~RFLAGS_IF);
	}
	if (ok)
		detail_add(d, "; ring 3: %u syscall/sysret + %u CPL-3 landings at LSTAR, registers and flags ok",
		           ROUNDS, ROUNDS);
	return ok;
}

bool check_compat(struct guest *g, struct detail *d)
{
	if (g->opt.compat_unsupported) {
		/* cpuid from the window: the module does not complete it, so the VMM must stop
		 * the VM naming it (its error path, under the module's filter). */
		static const uint8_t cpuid[] = { 0x0F, 0xA2 };
		struct compat_regs r = { 0 };
		run(d, "cpuid", cpuid, sizeof(cpuid), &r);
		detail_add(d, " completed, but the module does not handle cpuid");
		return false;
	}
	if (!g->opt.compat_exercise) {
		detail_add(d, "not requested (compat=exercise)");
		return true;
	}
	detail_add(d, "window:");
	bool ok = window_part(d);
	ok &= syscall_part(d);
	return ok;
}
