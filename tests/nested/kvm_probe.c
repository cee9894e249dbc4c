/*
 * kvm_probe.c - deeper checks of the /dev/kvm provided by scripts/nested-kvm.sh
 * (or any host), self-contained, no dependencies beyond libc + linux headers.
 *
 *   kvm_probe [caps|pit|cpuid|longmode|smp|bench [N]|all]   (default: all)
 *
 *   caps      KVM_CHECK_EXTENSION over the capabilities a VMM typically needs
 *   pit       KVM_CREATE_IRQCHIP + KVM_CREATE_PIT2 + KVM_GET_PIT2, irqfd,
 *             ioeventfd, KVM_IRQ_LINE, KVM_SET_TSS_ADDR
 *   cpuid     KVM_GET_SUPPORTED_CPUID (+ a summary of notable feature bits),
 *             KVM_GET_MSR_INDEX_LIST
 *   longmode  KVM_SET_CPUID2 + a 64-bit long-mode guest (paging on)
 *   smp       4 vCPUs with in-kernel LAPIC; the BSP (32-bit protected mode)
 *             sends INIT + SIPI + SIPI, the APs start in real mode at the
 *             SIPI vector, each reports in over port 0x3f8 and halts
 *   bench N   N userspace I/O exits, N userspace MMIO exits and N in-kernel
 *             CPUID exits; prints exits per second
 *
 * Prints "PASS: x" / "FAIL: x" lines, then "N passed, N failed".
 * Exit status: 0 if nothing failed.
 * Build: cc -O2 -Wall -pthread -o kvm_probe kvm_probe.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ guest code */
__asm__(".pushsection .rodata\n"
        /* bench_io: ECX userspace port-I/O exits, then hlt (real mode @0x1000) */
        ".globl bench_io, bench_io_end\n"
        "bench_io:\n"
        ".code16\n"
        "  mov $0x3f8, %dx\n"
        "  mov $'x', %al\n"
        "1: out %al, (%dx)\n"
        "  dec %ecx\n"
        "  jnz 1b\n"
        "  cli\n"
        "2: hlt\n"
        "  jmp 2b\n"
        "bench_io_end:\n"
        /* bench_mmio: ECX byte writes to unbacked guest-physical 0xf0000 */
        ".globl bench_mmio, bench_mmio_end\n"
        "bench_mmio:\n"
        "  mov $0xf000, %bx\n"
        "  mov %bx, %es\n"
        "  mov $'y', %al\n"
        "1: mov %al, %es:0\n"
        "  dec %ecx\n"
        "  jnz 1b\n"
        "  cli\n"
        "2: hlt\n"
        "  jmp 2b\n"
        "bench_mmio_end:\n"
        /* bench_cpuid: ECX in-kernel CPUID exits (ESI is the counter) */
        ".globl bench_cpuid, bench_cpuid_end\n"
        "bench_cpuid:\n"
        "  mov %ecx, %esi\n"
        "1: xor %eax, %eax\n"
        "  cpuid\n"
        "  dec %esi\n"
        "  jnz 1b\n"
        "  cli\n"
        "2: hlt\n"
        "  jmp 2b\n"
        "bench_cpuid_end:\n"
        /* smp_ap: real mode at 0x2000 (SIPI vector 2) */
        ".globl smp_ap, smp_ap_end\n"
        "smp_ap:\n"
        "  lock incl 0x3000\n"
        "  mov $0x3f8, %dx\n"
        "  mov $'A', %al\n"
        "  out %al, (%dx)\n"
        "  cli\n"
        "2: hlt\n"
        "  jmp 2b\n"
        "smp_ap_end:\n"
        /* smp_bsp: 32-bit flat protected mode at 0x1000; EBX = number of APs */
        ".code32\n"
        ".globl smp_bsp, smp_bsp_end\n"
        "smp_bsp:\n"
        "  movl $0x1ff, 0xfee000f0\n"     /* SVR: APIC software enable */
        "  movl $0x000c4500, 0xfee00300\n" /* INIT, assert, all-excluding-self */
        "  movl $0x000c4602, 0xfee00300\n" /* SIPI, vector 0x02 -> 0x2000 */
        "  movl $0x000c4602, 0xfee00300\n" /* second SIPI, as the MP spec says */
        "1: pause\n"
        "  cmpl %ebx, 0x3000\n"
        "  jne 1b\n"
        "  mov $0x3f8, %dx\n"
        "  mov $'B', %al\n"
        "  out %al, (%dx)\n"
        "  cli\n"
        "2: hlt\n"
        "  jmp 2b\n"
        "smp_bsp_end:\n"
        /* lm64: 64-bit code at 0x1000 */
        ".code64\n"
        ".globl lm64, lm64_end\n"
        "lm64:\n"
        "  mov $0x3f8, %dx\n"
        "  mov $'L', %al\n"
        "  out %al, (%dx)\n"
        "  xor %eax, %eax\n"
        "  cpuid\n"
        "  movabs $0x1122334455667788, %rax\n"
        "  mov %rax, 0x5000\n"
        "  mov 0x5000, %rbx\n"
        "  cmp %rax, %rbx\n"
        "  jne 3f\n"
        "  mov $'M', %al\n"
        "  out %al, (%dx)\n"
        "3: cli\n"
        "2: hlt\n"
        "  jmp 2b\n"
        "lm64_end:\n"
        ".popsection\n");
extern const unsigned char bench_io[], bench_io_end[], bench_mmio[], bench_mmio_end[],
    bench_cpuid[], bench_cpuid_end[], smp_ap[], smp_ap_end[], smp_bsp[], smp_bsp_end[],
    lm64[], lm64_end[];

/* ------------------------------------------------------------------ helpers */
static int g_kvm = -1, g_pass, g_fail;

static void result(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) g_pass++; else g_fail++;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct vm {
    int fd;
    unsigned char *mem;
    size_t mem_size;
};

struct vcpu {
    int fd;
    struct kvm_run *run;
    size_t run_size;
};

static int vm_create(struct vm *vm, size_t mem_size, int irqchip)
{
    memset(vm, 0, sizeof(*vm));
    vm->fd = ioctl(g_kvm, KVM_CREATE_VM, 0);
    if (vm->fd < 0) { perror("KVM_CREATE_VM"); return -1; }
    if (ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) { perror("KVM_SET_TSS_ADDR"); return -1; }
    if (irqchip && ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) { perror("KVM_CREATE_IRQCHIP"); return -1; }
    vm->mem_size = mem_size;
    vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (vm->mem == MAP_FAILED) { perror("mmap"); return -1; }
    struct kvm_userspace_memory_region r = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = mem_size,
        .userspace_addr = (uint64_t)(uintptr_t)vm->mem,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) { perror("KVM_SET_USER_MEMORY_REGION"); return -1; }
    return 0;
}

static void vm_destroy(struct vm *vm)
{
    if (vm->mem && vm->mem != MAP_FAILED) munmap(vm->mem, vm->mem_size);
    if (vm->fd >= 0) close(vm->fd);
}

static int vcpu_create(struct vm *vm, struct vcpu *v, int id)
{
    v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
    if (v->fd < 0) { perror("KVM_CREATE_VCPU"); return -1; }
    int sz = ioctl(g_kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz <= 0) { perror("KVM_GET_VCPU_MMAP_SIZE"); return -1; }
    v->run_size = (size_t)sz;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) { perror("mmap kvm_run"); return -1; }
    return 0;
}

static void vcpu_destroy(struct vcpu *v)
{
    if (v->run && v->run != MAP_FAILED) munmap(v->run, v->run_size);
    if (v->fd >= 0) close(v->fd);
}

static int vcpu_real_mode(struct vcpu *v, uint64_t rip)
{
    struct kvm_sregs s;
    if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0) return -1;
    s.cs.base = 0;
    s.cs.selector = 0;
    if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0) return -1;
    struct kvm_regs r;
    memset(&r, 0, sizeof(r));
    r.rip = rip;
    r.rflags = 2;
    return ioctl(v->fd, KVM_SET_REGS, &r);
}

static struct kvm_cpuid2 *supported_cpuid(void)
{
    for (int n = 64; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)n * sizeof(c->entries[0]));
        c->nent = (uint32_t)n;
        if (ioctl(g_kvm, KVM_GET_SUPPORTED_CPUID, c) == 0) return c;
        int e = errno;
        free(c);
        if (e != E2BIG) { errno = e; return NULL; }
    }
    return NULL;
}

static struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx) return &c->entries[i];
    return NULL;
}

static void on_sig(int sig) { (void)sig; }

/* ------------------------------------------------------------------ caps */
static void test_caps(void)
{
    static const struct { const char *name; int cap; int required; } caps[] = {
#define C(x, req) { #x, KVM_CAP_##x, req }
        C(IRQCHIP, 1), C(HLT, 0), C(USER_MEMORY, 1), C(SET_TSS_ADDR, 1),
        C(EXT_CPUID, 1), C(NR_VCPUS, 1), C(MAX_VCPUS, 1), C(NR_MEMSLOTS, 1),
        C(PIT, 0), C(PIT2, 1), C(PIT_STATE2, 1), C(IRQ_ROUTING, 1), C(IRQ_INJECT_STATUS, 0),
        C(IRQFD, 1), C(IRQFD_RESAMPLE, 0), C(IOEVENTFD, 1), C(IOEVENTFD_ANY_LENGTH, 0),
        C(SIGNAL_MSI, 1), C(MP_STATE, 1), C(SYNC_MMU, 1), C(COALESCED_MMIO, 0),
        C(COALESCED_PIO, 0), C(SET_IDENTITY_MAP_ADDR, 0), C(ADJUST_CLOCK, 0),
        C(VCPU_EVENTS, 1), C(DEBUGREGS, 0), C(XSAVE, 1), C(XCRS, 1), C(TSC_CONTROL, 0),
        C(GET_TSC_KHZ, 0), C(TSC_DEADLINE_TIMER, 0), C(KVMCLOCK_CTRL, 0), C(READONLY_MEM, 0),
        C(SPLIT_IRQCHIP, 0), C(X2APIC_API, 0), C(IMMEDIATE_EXIT, 1), C(GET_MSR_FEATURES, 0),
        C(X86_DISABLE_EXITS, 0), C(NESTED_STATE, 0), C(MANUAL_DIRTY_LOG_PROTECT2, 0),
        C(DIRTY_LOG_RING, 0), C(X86_USER_SPACE_MSR, 0), C(X86_MSR_FILTER, 0),
        C(EXIT_HYPERCALL, 0), C(ENFORCE_PV_FEATURE_CPUID, 0), C(SYS_ATTRIBUTES, 0),
        C(X86_SMM, 0), C(PMU_CAPABILITY, 0), C(XSAVE2, 0), C(X86_TRIPLE_FAULT_EVENT, 0),
        C(X86_BUS_LOCK_EXIT, 0), C(HYPERV_CPUID, 0), C(SW_TLB, 0), C(S390_UCONTROL, 0),
#ifdef KVM_CAP_MEMORY_ATTRIBUTES
        C(MEMORY_ATTRIBUTES, 0),
#endif
#ifdef KVM_CAP_GUEST_MEMFD
        C(GUEST_MEMFD, 0),
#endif
#ifdef KVM_CAP_VM_TYPES
        C(VM_TYPES, 0),
#endif
#undef C
    };
    int missing_required = 0;
    char missing[2048] = "";
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        int r = ioctl(g_kvm, KVM_CHECK_EXTENSION, caps[i].cap);
        printf("CAP: KVM_CAP_%-26s = %d%s\n", caps[i].name, r,
               (r <= 0 && caps[i].required) ? "   <-- MISSING (needed)" : "");
        if (r <= 0) {
            if (caps[i].required) missing_required++;
            strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
            strncat(missing, caps[i].name, sizeof(missing) - strlen(missing) - 1);
        }
    }
    printf("CAPS-ABSENT:%s\n", missing);
    result(missing_required == 0, "caps: all required capabilities present (%d missing)", missing_required);
}

/* ------------------------------------------------------------------ PIT2 & friends */
static void test_pit(void)
{
    struct vm vm;
    int ok = vm_create(&vm, 0x10000, 1) == 0;
    result(ok, "KVM_CREATE_IRQCHIP");
    if (!ok) return;
    struct kvm_pit_config pc = { .flags = KVM_PIT_SPEAKER_DUMMY };
    int r = ioctl(vm.fd, KVM_CREATE_PIT2, &pc);
    result(r == 0, "KVM_CREATE_PIT2 (%s)", r == 0 ? "ok" : strerror(errno));
    struct kvm_pit_state2 ps;
    memset(&ps, 0, sizeof(ps));
    r = ioctl(vm.fd, KVM_GET_PIT2, &ps);
    result(r == 0, "KVM_GET_PIT2 (%s)", r == 0 ? "ok" : strerror(errno));
    if (r == 0) {
        r = ioctl(vm.fd, KVM_SET_PIT2, &ps);
        result(r == 0, "KVM_SET_PIT2 (%s)", r == 0 ? "ok" : strerror(errno));
    }
    struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
    r = ioctl(vm.fd, KVM_GET_IRQCHIP, &chip);
    result(r == 0, "KVM_GET_IRQCHIP(IOAPIC) (%s)", r == 0 ? "ok" : strerror(errno));
    struct kvm_irq_level lvl = { .irq = 4, .level = 1 };
    r = ioctl(vm.fd, KVM_IRQ_LINE, &lvl);
    lvl.level = 0;
    if (r == 0) r = ioctl(vm.fd, KVM_IRQ_LINE, &lvl);
    result(r == 0, "KVM_IRQ_LINE (%s)", r == 0 ? "ok" : strerror(errno));
    int efd = eventfd(0, EFD_CLOEXEC);
    struct kvm_irqfd irqfd = { .fd = (uint32_t)efd, .gsi = 5 };
    r = ioctl(vm.fd, KVM_IRQFD, &irqfd);
    result(r == 0, "KVM_IRQFD (%s)", r == 0 ? "ok" : strerror(errno));
    int efd2 = eventfd(0, EFD_CLOEXEC);
    struct kvm_ioeventfd iofd = { .addr = 0x510, .len = 2, .fd = efd2, .flags = KVM_IOEVENTFD_FLAG_PIO };
    r = ioctl(vm.fd, KVM_IOEVENTFD, &iofd);
    result(r == 0, "KVM_IOEVENTFD (pio) (%s)", r == 0 ? "ok" : strerror(errno));
    struct vcpu v;
    if (vcpu_create(&vm, &v, 0) == 0) {
        /* Needs a vCPU with APIC ID 0 as destination; >0 means delivered. */
        struct kvm_msi msi = { .address_lo = 0xfee00000, .data = 0x40 };
        r = ioctl(vm.fd, KVM_SIGNAL_MSI, &msi);
        result(r >= 0, "KVM_SIGNAL_MSI (returned %d%s%s)", r, r < 0 ? ", " : "", r < 0 ? strerror(errno) : "");
        struct kvm_lapic_state la;
        r = ioctl(v.fd, KVM_GET_LAPIC, &la);
        result(r == 0, "KVM_GET_LAPIC (%s)", r == 0 ? "ok" : strerror(errno));
        struct kvm_clock_data cd;
        memset(&cd, 0, sizeof(cd));
        r = ioctl(vm.fd, KVM_GET_CLOCK, &cd);
        result(r == 0, "KVM_GET_CLOCK (%s)", r == 0 ? "ok" : strerror(errno));
        r = ioctl(v.fd, KVM_GET_TSC_KHZ, 0);
        printf("INFO: KVM_GET_TSC_KHZ = %d\n", r);
        vcpu_destroy(&v);
    }
    close(efd);
    close(efd2);
    vm_destroy(&vm);
}

/* ------------------------------------------------------------------ CPUID */
static void test_cpuid(void)
{
    struct kvm_cpuid2 *c = supported_cpuid();
    result(c != NULL, "KVM_GET_SUPPORTED_CPUID (%u entries)", c ? c->nent : 0);
    if (!c) return;
    struct kvm_cpuid_entry2 *e;
    if ((e = cpuid_find(c, 0, 0)))
        printf("INFO: cpuid 0: max leaf 0x%x vendor %.4s%.4s%.4s\n", e->eax,
               (char *)&e->ebx, (char *)&e->edx, (char *)&e->ecx);
    static const struct { uint32_t fn, idx; int reg; int bit; const char *name; } feats[] = {
        { 1, 0, 2, 0, "sse3" }, { 1, 0, 2, 21, "x2apic" }, { 1, 0, 2, 24, "tsc-deadline" },
        { 1, 0, 2, 26, "xsave" }, { 1, 0, 2, 28, "avx" }, { 1, 0, 2, 31, "hypervisor" },
        { 1, 0, 3, 9, "apic" }, { 1, 0, 3, 4, "tsc" }, { 1, 0, 3, 5, "msr" }, { 1, 0, 3, 26, "sse2" },
        { 7, 0, 1, 0, "fsgsbase" }, { 7, 0, 1, 5, "avx2" }, { 7, 0, 1, 7, "smep" },
        { 7, 0, 1, 20, "smap" }, { 7, 0, 1, 16, "avx512f" }, { 7, 0, 2, 2, "umip" }, { 7, 0, 2, 16, "la57" },
        { 0x80000001, 0, 3, 29, "lm" }, { 0x80000001, 0, 3, 20, "nx" }, { 0x80000001, 0, 3, 27, "rdtscp" },
        { 0x80000001, 0, 2, 2, "svm(nested)" }, { 0x80000001, 0, 3, 26, "pdpe1gb" },
        { 0x40000001, 0, 0, 3, "kvmclock2" }, { 0x80000007, 0, 3, 8, "invariant-tsc" },
    };
    char have[1024] = "", lack[1024] = "";
    for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
        e = cpuid_find(c, feats[i].fn, feats[i].idx);
        uint32_t regs[4] = { 0 };
        if (e) { regs[0] = e->eax; regs[1] = e->ebx; regs[2] = e->ecx; regs[3] = e->edx; }
        char *dst = (regs[feats[i].reg] >> feats[i].bit) & 1 ? have : lack;
        strncat(dst, " ", 1023 - strlen(dst));
        strncat(dst, feats[i].name, 1023 - strlen(dst));
    }
    printf("INFO: supported cpuid has:%s\n", have);
    printf("INFO: supported cpuid lacks:%s (tsc-deadline and hypervisor are set by the VMM, not reported here)\n", lack);
    e = cpuid_find(c, 0x80000001, 0);
    result(e && ((e->edx >> 29) & 1), "supported CPUID advertises long mode");
    free(c);

    struct kvm_msr_list probe = { .nmsrs = 0 };
    int r = ioctl(g_kvm, KVM_GET_MSR_INDEX_LIST, &probe);
    result(r == 0 || errno == E2BIG, "KVM_GET_MSR_INDEX_LIST (%u MSRs)", probe.nmsrs);
    probe.nmsrs = 0;
    r = ioctl(g_kvm, KVM_GET_MSR_FEATURE_INDEX_LIST, &probe);
    printf("INFO: KVM_GET_MSR_FEATURE_INDEX_LIST: %u feature MSRs\n", (r == 0 || errno == E2BIG) ? probe.nmsrs : 0);
}

/* ------------------------------------------------------------------ long mode */
static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int l, int db)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->s = 1;
    s->l = (uint8_t)l;
    s->db = (uint8_t)db;
    s->g = 1;
}

static void test_longmode(void)
{
    struct vm vm;
    struct vcpu v;
    if (vm_create(&vm, 0x200000, 1) || vcpu_create(&vm, &v, 0)) { result(0, "longmode: setup"); return; }
    struct kvm_cpuid2 *c = supported_cpuid();
    int r = c ? ioctl(v.fd, KVM_SET_CPUID2, c) : -1;
    result(r == 0, "KVM_SET_CPUID2 with the supported CPUID (%s)", r == 0 ? "ok" : strerror(errno));
    free(c);
    memcpy(vm.mem + 0x1000, lm64, (size_t)(lm64_end - lm64));
    uint64_t *pml4 = (uint64_t *)(vm.mem + 0x8000), *pdpt = (uint64_t *)(vm.mem + 0x9000),
             *pd = (uint64_t *)(vm.mem + 0xa000);
    pml4[0] = 0x9000 | 3;
    pdpt[0] = 0xa000 | 3;
    pd[0] = 0x0 | 0x83; /* 2 MiB page, present, writable */
    struct kvm_sregs s;
    ioctl(v.fd, KVM_GET_SREGS, &s);
    seg(&s.cs, 8, 11, 1, 0);
    seg(&s.ds, 16, 3, 0, 1);
    s.es = s.fs = s.gs = s.ss = s.ds;
    s.cr3 = 0x8000;
    s.cr4 = 1u << 5; /* PAE */
    s.cr0 = 0x80000011; /* PG | ET | PE */
    s.efer = 0x500;     /* LMA | LME */
    r = ioctl(v.fd, KVM_SET_SREGS, &s);
    result(r == 0, "longmode: KVM_SET_SREGS (%s)", r == 0 ? "ok" : strerror(errno));
    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rip = 0x1000;
    regs.rflags = 2;
    regs.rsp = 0x7000;
    ioctl(v.fd, KVM_SET_REGS, &regs);
    char got[8] = "";
    size_t n = 0;
    for (int i = 0; i < 4 && n < 2; i++) {
        if (ioctl(v.fd, KVM_RUN, 0) < 0) { perror("KVM_RUN"); break; }
        if (v.run->exit_reason != KVM_EXIT_IO) {
            printf("INFO: longmode: unexpected exit %u\n", v.run->exit_reason);
            break;
        }
        got[n++] = (char)((unsigned char *)v.run)[v.run->io.data_offset];
    }
    result(n == 2 && got[0] == 'L' && got[1] == 'M', "longmode: 64-bit guest with paging ran (saw \"%s\")", got);
    vcpu_destroy(&v);
    vm_destroy(&vm);
}

/* ------------------------------------------------------------------ SMP */
#define SMP_VCPUS 4
struct smp_thread {
    struct vcpu v;
    pthread_t tid;
    volatile int stop;
    volatile char seen;
    volatile int error;
};

static void *smp_thread_fn(void *arg)
{
    struct smp_thread *t = arg;
    while (!t->stop) {
        int r = ioctl(t->v.fd, KVM_RUN, 0);
        if (r < 0) {
            /* EAGAIN: a vCPU leaving KVM_MP_STATE_UNINITIALIZED (INIT/SIPI) */
            if (errno == EINTR || errno == EAGAIN) continue;
            t->error = errno;
            break;
        }
        if (t->v.run->exit_reason == KVM_EXIT_IO && t->v.run->io.port == 0x3f8) {
            t->seen = (char)((unsigned char *)t->v.run)[t->v.run->io.data_offset];
        } else {
            t->error = 1000 + (int)t->v.run->exit_reason;
            break;
        }
    }
    return NULL;
}

static void test_smp(void)
{
    struct vm vm;
    struct smp_thread th[SMP_VCPUS];
    memset(th, 0, sizeof(th));
    if (vm_create(&vm, 0x10000, 1)) { result(0, "smp: setup"); return; }
    memcpy(vm.mem + 0x1000, smp_bsp, (size_t)(smp_bsp_end - smp_bsp));
    memcpy(vm.mem + 0x2000, smp_ap, (size_t)(smp_ap_end - smp_ap));
    struct kvm_cpuid2 *c = supported_cpuid();
    for (int i = 0; i < SMP_VCPUS; i++) {
        if (vcpu_create(&vm, &th[i].v, i)) { result(0, "smp: create vCPU %d", i); return; }
        if (c) ioctl(th[i].v.fd, KVM_SET_CPUID2, c);
    }
    free(c);
    struct kvm_mp_state mp;
    ioctl(th[1].v.fd, KVM_GET_MP_STATE, &mp);
    result(mp.mp_state == KVM_MP_STATE_UNINITIALIZED,
           "smp: AP starts in KVM_MP_STATE_UNINITIALIZED (got %u)", mp.mp_state);
    /* BSP: flat 32-bit protected mode. */
    struct kvm_sregs s;
    ioctl(th[0].v.fd, KVM_GET_SREGS, &s);
    seg(&s.cs, 8, 11, 0, 1);
    seg(&s.ds, 16, 3, 0, 1);
    s.es = s.fs = s.gs = s.ss = s.ds;
    s.cr0 |= 1;
    ioctl(th[0].v.fd, KVM_SET_SREGS, &s);
    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rip = 0x1000;
    regs.rflags = 2;
    regs.rbx = SMP_VCPUS - 1;
    ioctl(th[0].v.fd, KVM_SET_REGS, &regs);

    double t0 = now();
    for (int i = 0; i < SMP_VCPUS; i++) pthread_create(&th[i].tid, NULL, smp_thread_fn, &th[i]);
    int all = 0;
    while (now() - t0 < 30.0) {
        all = 1;
        for (int i = 0; i < SMP_VCPUS; i++) {
            if (th[i].error) all = 0;
            if (th[i].seen != (i == 0 ? 'B' : 'A')) all = 0;
        }
        if (all) break;
        usleep(10000);
    }
    double dt = now() - t0;
    usleep(200000); /* let everybody reach hlt */
    for (int i = 0; i < SMP_VCPUS; i++) {
        th[i].stop = 1;
        th[i].v.run->immediate_exit = 1;
    }
    for (int i = 0; i < SMP_VCPUS; i++) {
        for (;;) {
            pthread_kill(th[i].tid, SIGUSR1);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20000000;
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            if (pthread_timedjoin_np(th[i].tid, NULL, &ts) == 0) break;
        }
    }
    int halted = 0;
    for (int i = 0; i < SMP_VCPUS; i++) {
        th[i].v.run->immediate_exit = 0;
        if (ioctl(th[i].v.fd, KVM_GET_MP_STATE, &mp) == 0 && mp.mp_state == KVM_MP_STATE_HALTED) halted++;
        printf("INFO: smp: vCPU %d saw '%c' error=%d mp_state=%u\n", i, th[i].seen ? th[i].seen : '?',
               th[i].error, mp.mp_state);
    }
    result(all, "smp: BSP sent INIT/SIPI/SIPI via in-kernel LAPIC, %d APs came up (%.3f s)", SMP_VCPUS - 1, dt);
    result(halted == SMP_VCPUS, "smp: all %d vCPUs halted in-kernel", SMP_VCPUS);
    for (int i = 0; i < SMP_VCPUS; i++) vcpu_destroy(&th[i].v);
    vm_destroy(&vm);
}

/* ------------------------------------------------------------------ bench */
static void bench_one(const char *name, const unsigned char *code, size_t len, unsigned n,
                      unsigned expect_exit)
{
    struct vm vm;
    struct vcpu v;
    if (vm_create(&vm, 0x10000, 0) || vcpu_create(&vm, &v, 0)) { result(0, "bench %s: setup", name); return; }
    memcpy(vm.mem + 0x1000, code, len);
    vcpu_real_mode(&v, 0x1000);
    struct kvm_regs r;
    ioctl(v.fd, KVM_GET_REGS, &r);
    r.rcx = n;
    ioctl(v.fd, KVM_SET_REGS, &r);
    unsigned exits = 0, other = 0;
    double t0 = now();
    for (;;) {
        if (ioctl(v.fd, KVM_RUN, 0) < 0) { perror("KVM_RUN"); break; }
        if (v.run->exit_reason == KVM_EXIT_HLT) break;
        if (v.run->exit_reason == expect_exit) exits++;
        else if (++other > 100) break;
    }
    double dt = now() - t0;
    unsigned counted = expect_exit == KVM_EXIT_HLT ? n : exits;
    int ok = counted == n && other == 0;
    if (ok)
        printf("BENCH: %-34s %6u exits in %8.3f s = %9.0f exits/s (%.1f us/exit)\n", name, n, dt,
               n / dt, dt * 1e6 / n);
    result(ok, "bench %s (%u/%u exits, %u unexpected)", name, counted, n, other);
    vcpu_destroy(&v);
    vm_destroy(&vm);
}

static void test_bench(unsigned n)
{
    bench_one("userspace PIO exits (out 0x3f8)", bench_io, (size_t)(bench_io_end - bench_io), n, KVM_EXIT_IO);
    bench_one("userspace MMIO exits (unbacked)", bench_mmio, (size_t)(bench_mmio_end - bench_mmio), n, KVM_EXIT_MMIO);
    bench_one("in-kernel CPUID exits", bench_cpuid, (size_t)(bench_cpuid_end - bench_cpuid), n, KVM_EXIT_HLT);
}

/* ------------------------------------------------------------------ main */
int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sig;
    sigaction(SIGUSR1, &sa, NULL);

    const char *what = argc > 1 ? argv[1] : "all";
    unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 10000;
    if (n == 0) n = 10000;

    struct utsname u;
    uname(&u);
    printf("INFO: kernel %s %s\n", u.release, u.version);
    g_kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (g_kvm < 0) { perror("open /dev/kvm"); printf("0 passed, 1 failed\n"); return 1; }
    int api = ioctl(g_kvm, KVM_GET_API_VERSION, 0);
    result(api == KVM_API_VERSION, "KVM_GET_API_VERSION = %d", api);

    int all = !strcmp(what, "all");
    int known = 0;
    if (all || !strcmp(what, "caps")) { known = 1; test_caps(); }
    if (all || !strcmp(what, "pit")) { known = 1; test_pit(); }
    if (all || !strcmp(what, "cpuid")) { known = 1; test_cpuid(); }
    if (all || !strcmp(what, "longmode")) { known = 1; test_longmode(); }
    if (all || !strcmp(what, "smp")) { known = 1; test_smp(); }
    if (all || !strcmp(what, "bench")) { known = 1; test_bench(n); }
    if (!known) {
        fprintf(stderr, "usage: %s [caps|pit|cpuid|longmode|smp|bench [N]|all]\n", argv[0]);
        return 2;
    }
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
