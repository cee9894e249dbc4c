// One generated death test per denied syscall per role (Chromium's TEST_BASELINE_SIGSYS):
// a fresh child loads the role's filter and makes the call; it must die by SIGSYS.
// Every call uses arguments that would do no harm if a filter let it through (bad fds,
// null pointers, invalid flags), so a broken filter fails the test, never the host.
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/keyctl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <functional>
#include <string_view>
#include <vector>

#include "sandbox/kvm_ioctls.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

using testing_util::kTestImageFd;
using testing_util::kTestStateDirFd;

struct Forbidden {
  std::string_view name;
  std::function<long()> call;
  std::vector<std::string_view> allowed_in = {};  // roles where this exact call is legal
};

// An ioctl `request` on a bad fd: harmless if let through (EBADF), but it must not be.
Forbidden Ioctl(std::string_view name, unsigned long request,
                std::vector<std::string_view> allowed_in = {}) {
  return {name, [request] { return syscall(SYS_ioctl, -1, request, nullptr); },
          std::move(allowed_in)};
}

char* const kArgv[] = {const_cast<char*>("true"), nullptr};
char* const kEnvp[] = {nullptr};
alignas(4096) char g_page[4096];
uint32_t g_futex_word = 0;

const std::vector<Forbidden>& ForbiddenCalls() {
  static const auto* calls = new std::vector<Forbidden>{
      // Run another program.
      {"execve", [] { return syscall(SYS_execve, "/bin/true", kArgv, kEnvp); }},
      {"execveat", [] { return syscall(SYS_execveat, AT_FDCWD, "/bin/true", kArgv, kEnvp, 0); }},
      // Reach host files.
      {"open", [] { return syscall(SYS_open, "/etc/passwd", O_RDONLY); }},
      {"openat", [] { return syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY); }},
      {"openat_state_dir_rdwr", [] { return syscall(SYS_openat, kTestStateDirFd, "x", O_RDWR); }},
      {"newfstatat",
       [] {
         struct stat st;
         return syscall(SYS_newfstatat, AT_FDCWD, "/etc/passwd", &st, 0);
       }},
      {"renameat_cwd",
       [] {
         return syscall(SYS_renameat, AT_FDCWD, "/nonexistent-a", AT_FDCWD, "/nonexistent-b");
       }},
      {"unlinkat_cwd", [] { return syscall(SYS_unlinkat, AT_FDCWD, "/nonexistent-vmm", 0); }},
      {"unlinkat_state_dir_rmdir",
       [] { return syscall(SYS_unlinkat, kTestStateDirFd, "x", AT_REMOVEDIR); }},
      {"mknodat",
       [] { return syscall(SYS_mknodat, AT_FDCWD, "/nonexistent-vmm/x", S_IFIFO | 0600, 0); }},
      {"open_by_handle_at", [] { return syscall(SYS_open_by_handle_at, -1, nullptr, 0); }},
      {"pread64_other_fd",
       [] {
         char b;
         return syscall(SYS_pread64, 1002, &b, 1, 0);
       },
       {"vtpm"}},
      {"pwrite64_other_fd",
       [] {
         char b = 0;
         return syscall(SYS_pwrite64, 1002, &b, 1, 0);
       },
       {"vtpm"}},
      {"fsync", [] { return syscall(SYS_fsync, -1); }, {"vtpm"}},
      // Network and new channels.
      {"socket", [] { return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0); }},
      {"socket_unix", [] { return syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0); }},
      {"socketpair",
       [] {
         int sv[2];
         return syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv);
       }},
      // device-vsock: unix stream sockets only, non-blocking and close-on-exec, checked by
      // argument; connect's path is bounded by its mount namespace (roles.cc).
      {"socket_unix_dgram",
       [] { return syscall(SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }},
      {"socket_inet_nonblock",
       [] { return syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }},
      {"socket_vsock",
       [] { return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }},
      {"shutdown_rd", [] { return syscall(SYS_shutdown, -1, SHUT_RD); }},
      {"connect", [] { return syscall(SYS_connect, -1, nullptr, 0); }, {"device-vsock"}},
      {"bind", [] { return syscall(SYS_bind, -1, nullptr, 0); }},
      {"accept4", [] { return syscall(SYS_accept4, -1, nullptr, nullptr, 0); }},
      {"sendto_with_address",
       [] {
         sockaddr sa{};
         return syscall(SYS_sendto, -1, "", 0, 0, &sa, sizeof(sa));
       }},
      // Other processes, privileges, the kernel.
      {"ptrace", [] { return syscall(SYS_ptrace, PTRACE_PEEKDATA, getppid(), nullptr, nullptr); }},
      {"process_vm_readv",
       [] { return syscall(SYS_process_vm_readv, getppid(), nullptr, 0, nullptr, 0, 0); }},
      {"kill", [] { return syscall(SYS_kill, getppid(), 0); }},
      {"tgkill_other_process", [] { return syscall(SYS_tgkill, getppid(), getppid(), 0); }},
      {"fork", [] { return syscall(SYS_fork); }},
      {"clone_process",
       [] { return syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr); }},
      {"clone3",
       [] { return syscall(SYS_clone3, nullptr, 0); },
       {"vcpu", "vcpu-kvm-pvm"}},  // ENOSYS
      {"unshare", [] { return syscall(SYS_unshare, 0); }},
      {"setns", [] { return syscall(SYS_setns, -1, 0); }},
      {"mount", [] { return syscall(SYS_mount, nullptr, nullptr, nullptr, 0, nullptr); }},
      {"umount2", [] { return syscall(SYS_umount2, "/nonexistent-vmm", 0); }},
      {"pivot_root",
       [] { return syscall(SYS_pivot_root, "/nonexistent-vmm", "/nonexistent-vmm"); }},
      {"chroot", [] { return syscall(SYS_chroot, "/nonexistent-vmm"); }},
      {"setresuid", [] { return syscall(SYS_setresuid, -1, -1, -1); }},
      {"prctl", [] { return syscall(SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0); }},
      {"seccomp",
       [] {
         uint32_t a = 0;
         return syscall(SYS_seccomp, 2 /*GET_ACTION_AVAIL*/, 0, &a);
       }},
      {"personality", [] { return syscall(SYS_personality, 0xffffffffUL); }},
      {"bpf", [] { return syscall(SYS_bpf, -1, nullptr, 0); }},
      {"kexec_load", [] { return syscall(SYS_kexec_load, 0, 0, nullptr, 0x100); }},  // bad flags
      {"kexec_file_load", [] { return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0x100); }},
      {"init_module", [] { return syscall(SYS_init_module, nullptr, 0, ""); }},
      {"finit_module", [] { return syscall(SYS_finit_module, -1, "", 0); }},
      {"delete_module",
       [] { return syscall(SYS_delete_module, "vmm_no_such_module", O_NONBLOCK); }},
      {"keyctl",
       [] { return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0); }},
      {"add_key", [] { return syscall(SYS_add_key, nullptr, nullptr, nullptr, 0, 0); }},
      {"userfaultfd", [] { return syscall(SYS_userfaultfd, O_CLOEXEC); }},
      {"perf_event_open", [] { return syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
      {"io_uring_setup", [] { return syscall(SYS_io_uring_setup, 0, nullptr); }},
      {"memfd_create", [] { return syscall(SYS_memfd_create, "vmm", MFD_CLOEXEC); }},
      {"reboot", [] { return syscall(SYS_reboot, 0, 0, 0, nullptr); }},  // bad magic
      {"clock_settime", [] { return syscall(SYS_clock_settime, CLOCK_REALTIME, nullptr); }},
      // Arguments outside what a role's rule admits.
      {"mmap_exec",
       [] {
         return syscall(SYS_mmap, nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
       }},
      {"mprotect_exec", [] { return syscall(SYS_mprotect, g_page, 4096, PROT_READ | PROT_EXEC); }},
      {"mremap_fixed",
       [] { return syscall(SYS_mremap, 0, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, 0); }},
      {"madvise_dontfork", [] { return syscall(SYS_madvise, g_page, 4096, MADV_DONTFORK); }},
      {"futex_lock_pi",
       [] { return syscall(SYS_futex, &g_futex_word, FUTEX_LOCK_PI_PRIVATE, 0, nullptr); }},
      {"futex_cmp_requeue",
       [] {
         return syscall(SYS_futex, &g_futex_word, FUTEX_CMP_REQUEUE_PRIVATE, 0, 0, nullptr, 1);
       }},
      {"fcntl_dupfd", [] { return syscall(SYS_fcntl, 0, F_DUPFD, 100); }},
      {"eventfd2_semaphore", [] { return syscall(SYS_eventfd2, 0, EFD_SEMAPHORE); }},
      {"epoll_create1_no_cloexec", [] { return syscall(SYS_epoll_create1, 0); }},
      // Every role waits on epoll (base/event_loop.h), none with poll.
      {"poll", [] { return syscall(SYS_poll, nullptr, 0, 0); }},
      {"ppoll",
       [] {
         timespec zero{};
         return syscall(SYS_ppoll, nullptr, 0, &zero, nullptr, 8);
       }},
      {"getrandom",
       [] {
         char b[4];
         return syscall(SYS_getrandom, b, sizeof(b), 0);
       },
       {"device-rng", "vtpm"}},
      Ioctl("ioctl_tiocsti", TIOCSTI),
      Ioctl("ioctl_kvm_create_vm", KVM_CREATE_VM),
      Ioctl("ioctl_kvm_create_vcpu", KVM_CREATE_VCPU),
      Ioctl("ioctl_kvm_set_user_memory_region", KVM_SET_USER_MEMORY_REGION),
      Ioctl("ioctl_kvm_set_cpuid2", kvm::kKvmSetCpuid2),
      Ioctl("ioctl_kvm_set_gsi_routing", kvm::kKvmSetGsiRouting),
      Ioctl("ioctl_kvm_run_upper_bits", 0x100000000UL | KVM_RUN,
            {"vcpu", "vcpu-kvm-pvm"}),  // the kernel reads cmd as 32 bits, so the filter does too
      // What only the kvm_pvm compatibility module needs: not in the plain vcpu role.
      Ioctl("ioctl_kvm_set_regs", KVM_SET_REGS, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_set_sregs", KVM_SET_SREGS, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_get_xsave", kvm::kKvmGetXsave, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_set_xsave", kvm::kKvmSetXsave, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_get_msrs", kvm::kKvmGetMsrs, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_set_msrs", kvm::kKvmSetMsrs, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_get_vcpu_events", KVM_GET_VCPU_EVENTS, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_set_vcpu_events", KVM_SET_VCPU_EVENTS, {"vcpu-kvm-pvm"}),
      Ioctl("ioctl_kvm_set_guest_debug", KVM_SET_GUEST_DEBUG, {"vcpu-kvm-pvm"}),
      // Never after confinement, module or not.
      Ioctl("ioctl_kvm_set_debugregs", KVM_SET_DEBUGREGS),
      Ioctl("ioctl_kvm_set_lapic", KVM_SET_LAPIC),
      Ioctl("ioctl_kvm_get_fpu", KVM_GET_FPU),
      Ioctl("ioctl_kvm_set_fpu", KVM_SET_FPU),
      Ioctl("ioctl_kvm_set_msr_filter", KVM_X86_SET_MSR_FILTER),
      Ioctl("ioctl_kvm_enable_cap", KVM_ENABLE_CAP),
  };
  return *calls;
}

struct Case {
  std::string role;
  const Forbidden* call;
};

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (const std::string& role : RoleNames()) {
    for (const Forbidden& f : ForbiddenCalls()) {
      if (std::find(f.allowed_in.begin(), f.allowed_in.end(), role) == f.allowed_in.end()) {
        cases.push_back({role, &f});
      }
    }
  }
  return cases;
}

class SandboxForbiddenSyscallDeathTest : public testing::TestWithParam<Case> {};

TEST_P(SandboxForbiddenSyscallDeathTest, KillsTheProcessWithSigsys) {
  testing_util::UseThreadsafeDeathTests();
  const Case& c = GetParam();
  EXPECT_EXIT(
      {
        testing_util::ApplyRoleFilter(c.role);
        c.call->call();
        _exit(0);  // survived (a forked copy, too, if fork was let through)
      },
      testing::KilledBySignal(SIGSYS), "")
      << c.role << " let " << c.call->name << " through";
}

INSTANTIATE_TEST_SUITE_P(AllRoles, SandboxForbiddenSyscallDeathTest, testing::ValuesIn(AllCases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           std::string n =
                               info.param.role + "_" + std::string(info.param.call->name);
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// An ephemeral vmm-vtpm holds no state directory, so its filter has no path-taking rule:
// no dirfd at all may open, rename or unlink, -1 included. The kernel reads dirfd as an
// int, seccomp sees the whole register: -1 as a 64-bit value (all ones, what a compromised
// process can put there) is exactly a "no directory" placeholder of ~0 that a parameterised
// rule would compare with, and dirfd does not matter to an absolute path.
struct EphemeralCall {
  std::string_view name;
  std::function<long()> call;
};
const EphemeralCall kEphemeralVtpmCalls[] = {
    {"openat_minus_one_read", [] { return syscall(SYS_openat, -1L, "x", kVtpmStateReadFlags); }},
    {"openat_minus_one_write",
     [] { return syscall(SYS_openat, -1L, "x", kVtpmStateWriteFlags, 0600); }},
    {"renameat_minus_one", [] { return syscall(SYS_renameat, -1L, "a", -1L, "b"); }},
    {"unlinkat_minus_one", [] { return syscall(SYS_unlinkat, -1L, "x", 0); }},
};

void PrintTo(const EphemeralCall& c, std::ostream* os) { *os << c.name; }

class SandboxEphemeralVtpmDeathTest : public testing::TestWithParam<EphemeralCall> {};

TEST_P(SandboxEphemeralVtpmDeathTest, KillsTheProcessWithSigsys) {
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        auto filter = VtpmFilter(-1);
        if (!filter) testing_util::Die(filter.error().ToString());
        testing_util::ApplyFilter(filter->policy, filter->params);
        GetParam().call();
        _exit(0);
      },
      testing::KilledBySignal(SIGSYS), "")
      << "the ephemeral vtpm filter let " << GetParam().name << " through";
}

INSTANTIATE_TEST_SUITE_P(Vtpm, SandboxEphemeralVtpmDeathTest,
                         testing::ValuesIn(kEphemeralVtpmCalls),
                         [](const testing::TestParamInfo<EphemeralCall>& info) {
                           return std::string(info.param.name);
                         });

TEST(SandboxForbiddenSyscalls, EphemeralVtpmFilterHasNoPathRuleAndNeedsNoStateDir) {
  auto ephemeral = VtpmFilter(-1);
  ASSERT_TRUE(ephemeral.has_value()) << ephemeral.error().ToString();
  for (const char* name : {"openat", "renameat", "unlinkat"}) {
    EXPECT_FALSE(ephemeral->policy.Mentions(name)) << name;
  }
  EXPECT_TRUE(ephemeral->policy.RequiredParams().empty());
  auto persistent = VtpmFilter(kTestStateDirFd);
  ASSERT_TRUE(persistent.has_value()) << persistent.error().ToString();
  EXPECT_TRUE(persistent->policy.Mentions("openat"));
  EXPECT_EQ(persistent->params.at(std::string(kParamStateDirFd)), uint64_t{kTestStateDirFd});
}

TEST(SandboxForbiddenSyscalls, EveryRoleIsTestedAgainstTheRequiredList) {
  const std::vector<Case> cases = AllCases();
  for (const std::string& role : RoleNames()) {
    for (std::string_view name :
         {"execve", "open", "openat", "socket", "connect", "ptrace", "mount", "bpf", "kexec_load",
          "init_module", "keyctl", "userfaultfd", "perf_event_open"}) {
      // The one role that connects: its reach is its mount namespace's (roles.cc).
      if (role == "device-vsock" && name == "connect") continue;
      EXPECT_TRUE(
          std::any_of(cases.begin(), cases.end(),
                      [&](const Case& c) { return c.role == role && c.call->name == name; }))
          << role << " " << name;
    }
  }
}

}  // namespace
}  // namespace vmm::sandbox
