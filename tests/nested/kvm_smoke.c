/*
 * kvm_smoke.c - minimal, self-contained proof that /dev/kvm works.
 *
 * Creates a VM with an in-kernel irqchip (KVM_CREATE_IRQCHIP) and one vCPU,
 * maps 4 KiB of guest memory at guest-physical 0x1000 that holds the
 * real-mode code
 *
 *     mov $0x3f8, %dx
 *     mov $'K', %al
 *     out %al, (%dx)
 *     hlt
 *
 * and runs it.  Expects one KVM_EXIT_IO (port 0x3f8, 1 byte, 'K') followed
 * by the vCPU halting.  Note: with an in-kernel irqchip KVM handles HLT
 * itself (the vCPU blocks waiting for an interrupt) instead of returning
 * KVM_EXIT_HLT, so in that configuration a 100 ms interval timer kicks KVM_RUN
 * out with EINTR and the test checks KVM_GET_MP_STATE == HALTED.  A second
 * VM without an irqchip then runs the same code and must produce a real
 * KVM_EXIT_HLT.
 *
 * Exit status: 0 on success, 1 on failure.
 * Build: cc -O2 -Wall -o kvm_smoke kvm_smoke.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#define GUEST_ADDR 0x1000u
#define GUEST_SIZE 0x1000u

/* The guest code, assembled by the C compiler's assembler. */
__asm__(".pushsection .rodata\n"
        ".globl smoke_code, smoke_code_end\n"
        "smoke_code:\n"
        ".code16\n"
        "  mov $0x3f8, %dx\n"
        "  mov $'K', %al\n"
        "  out %al, (%dx)\n"
        "  cli\n"
        "1: hlt\n"
        "  jmp 1b\n"
        "smoke_code_end:\n"
        ".code64\n"
        ".popsection\n");
extern const unsigned char smoke_code[], smoke_code_end[];

static void die(const char *what)
{
    fprintf(stderr, "kvm_smoke: FAIL: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *msg)
{
    fprintf(stderr, "kvm_smoke: FAIL: %s\n", msg);
    exit(1);
}

static void on_alarm(int sig) { (void)sig; }

static const char *exit_name(unsigned r)
{
    switch (r) {
    case KVM_EXIT_IO: return "IO";
    case KVM_EXIT_HLT: return "HLT";
    case KVM_EXIT_MMIO: return "MMIO";
    case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
    default: return "other";
    }
}

/* Runs the guest once; returns 0 on success. */
static int run_vm(int kvm, int with_irqchip)
{
    const char *tag = with_irqchip ? "irqchip" : "no-irqchip";
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");

    if (with_irqchip && ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
        die("KVM_CREATE_IRQCHIP");

    unsigned char *mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) die("mmap guest memory");
    memcpy(mem, smoke_code, (size_t)(smoke_code_end - smoke_code));

    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = GUEST_ADDR,
        .memory_size = GUEST_SIZE,
        .userspace_addr = (uint64_t)(uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");

    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run)) die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE,
                               MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");

    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rip = GUEST_ADDR;
    regs.rflags = 0x2;
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

    int seen = -1, halted = 0;
    for (int iter = 0; iter < 100 && !halted; iter++) {
        /* Kick KVM_RUN after 100 ms in case HLT is handled in-kernel. */
        struct itimerval it = { .it_value = { .tv_usec = 100000 } };
        setitimer(ITIMER_REAL, &it, NULL);
        int r = ioctl(vcpu, KVM_RUN, 0);
        int err = errno;
        struct itimerval off = { 0 };
        setitimer(ITIMER_REAL, &off, NULL);
        if (r < 0) {
            if (err != EINTR) { errno = err; die("KVM_RUN"); }
            struct kvm_mp_state mp;
            if (ioctl(vcpu, KVM_GET_MP_STATE, &mp) < 0) die("KVM_GET_MP_STATE");
            if (mp.mp_state == KVM_MP_STATE_HALTED) {
                printf("kvm_smoke[%s]: vCPU halted (HLT handled in-kernel, mp_state=HALTED)\n", tag);
                halted = 1;
                continue;
            }
            fprintf(stderr, "kvm_smoke[%s]: KVM_RUN interrupted, mp_state=%u\n", tag, mp.mp_state);
            continue;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x3f8 &&
                run->io.size == 1 && run->io.count == 1) {
                seen = ((unsigned char *)run)[run->io.data_offset];
                printf("kvm_smoke[%s]: KVM_EXIT_IO port=0x%x byte='%c' (0x%02x)\n",
                       tag, run->io.port, seen, seen);
            } else {
                fprintf(stderr, "kvm_smoke[%s]: unexpected IO exit port=0x%x\n", tag, run->io.port);
                return 1;
            }
            break;
        case KVM_EXIT_HLT:
            printf("kvm_smoke[%s]: KVM_EXIT_HLT\n", tag);
            halted = 1;
            break;
        default:
            fprintf(stderr, "kvm_smoke[%s]: unexpected exit %u (%s)", tag,
                    run->exit_reason, exit_name(run->exit_reason));
            if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
                fprintf(stderr, " hw_reason=0x%llx",
                        (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
                fprintf(stderr, " suberror=%u", run->internal.suberror);
            fputc('\n', stderr);
            return 1;
        }
    }
    munmap(run, (size_t)run_size);
    munmap(mem, GUEST_SIZE);
    close(vcpu);
    close(vm);
    if (seen != 'K') { fprintf(stderr, "kvm_smoke[%s]: never saw 'K' on port 0x3f8\n", tag); return 1; }
    if (!halted) { fprintf(stderr, "kvm_smoke[%s]: vCPU never halted\n", tag); return 1; }
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm; /* no SA_RESTART: KVM_RUN must return EINTR */
    sigaction(SIGALRM, &sa, NULL);

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("open /dev/kvm");
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api < 0) die("KVM_GET_API_VERSION");
    printf("kvm_smoke: KVM_GET_API_VERSION=%d\n", api);
    if (api != KVM_API_VERSION) fail("unexpected KVM API version");
    if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0)
        fail("KVM_CAP_IRQCHIP not supported");

    if (run_vm(kvm, 1) != 0) fail("VM with in-kernel irqchip");
    if (run_vm(kvm, 0) != 0) fail("VM without irqchip");
    close(kvm);
    printf("kvm_smoke: PASS\n");
    return 0;
}
