// PolicyBuilder, the printer and the role tables: pure data, nothing is loaded here
// (except one death test that proves Apply refuses a missing parameter).
#include "sandbox/policy.h"

#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "sandbox/kvm_ioctls.h"
#include "sandbox/report.h"
#include "sandbox/roles.h"
#include "tests/unit/sandbox/sandbox_test_util.h"

namespace vmm::sandbox {
namespace {

TEST(SandboxPolicyPrinter, OneRuleALineWithConditionsAndReason) {
  auto p =
      PolicyBuilder("demo")
          .Allow("read", "its fds")
          .AllowIf("ioctl", {ArgMaskedEq(1, 0xffffffff, KVM_RUN, "KVM_RUN")}, "enter the guest")
          .ReturnErrno("clone3", ENOSYS, "glibc falls back to clone")
          .AllowRisky("openat", {ArgEqParam(0, "dir_fd"), ArgEq(2, 0)}, "path-based")
          .Build();
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(
      p->ToText(),
      "# policy demo: 4 rules; any other syscall: KILL_PROCESS (SIGSYS)\n"
      "allow  read              always                                          # its fds\n"
      "allow  ioctl             if arg1 & 0xffffffff == 0xae80 (KVM_RUN)        # enter the guest\n"
      "errno  clone3            -> ENOSYS                                       # glibc falls back "
      "to clone\n"
      "allow  openat            if arg0 == $dir_fd && arg2 == 0x0               # RISKY: "
      "path-based\n");
}

TEST(SandboxPolicyBuilder, BuildReportsTheFirstError) {
  auto p = PolicyBuilder("t")
               .Allow("no_such_syscall", "typo")
               .AllowIf("write", {ArgEq(7, 0)}, "bad index")
               .Build();
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(p.error().message().find("no_such_syscall"), std::string::npos) << p.error().message();
  EXPECT_EQ(p.error().message().find("index"), std::string::npos) << p.error().message();
}

TEST(SandboxPolicyBuilder, RejectsArgumentIndexAboveFive) {
  auto p = PolicyBuilder("t").AllowIf("write", {ArgEq(6, 0)}, "x").Build();
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message().find("argument index 6"), std::string::npos);
}

TEST(SandboxPolicyBuilder, RejectsTwoConditionsOnOneArgument) {
  auto p = PolicyBuilder("t").AllowIf("write", {ArgEq(0, 1), ArgEq(0, 2)}, "x").Build();
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message().find("two conditions on arg0"), std::string::npos);
}

TEST(SandboxPolicyBuilder, RejectsAlwaysAndConditionalAllowOfOneSyscall) {
  auto p = PolicyBuilder("t").Allow("ioctl", "all").AllowKvmIoctl(KVM_RUN, "run").Build();
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message().find("ioctl"), std::string::npos);
}

TEST(SandboxPolicyBuilder, RejectsAllowAndErrnoOfOneSyscall) {
  auto p = PolicyBuilder("t").Allow("clone3", "a").ReturnErrno("clone3", ENOSYS, "b").Build();
  EXPECT_FALSE(p.has_value());
}

TEST(SandboxPolicyBuilder, RejectsSyscallsThatAreNotX8664) {
  EXPECT_FALSE(PolicyBuilder("t").Allow("socketcall", "i386 only").Build().has_value());
}

TEST(SandboxPolicyBuilder, OverlappingSetsAddEachRuleOnce) {
  auto p = PolicyBuilder("t").AllowExit().AllowExit().AllowFutex().AllowFutex().Build();
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->rules().size(), 2u + 4u);
}

TEST(SandboxPolicyBuilder, RequiredParamsListsNamedValuesButNotSelfPid) {
  auto p = PolicyBuilder("t")
               .AllowSignals()
               .AllowIf("pread64", {ArgEqParam(0, "image_fd")}, "x")
               .Build();
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->RequiredParams(), std::vector<std::string>{"image_fd"});
}

TEST(SandboxPolicyDeathTest, ApplyRefusesAMissingParameterAndLoadsNothing) {
  testing_util::UseThreadsafeDeathTests();
  EXPECT_EXIT(
      {
        auto p = PolicyForRole("device-blk");
        if (!p) testing_util::Die(p.error().ToString());
        auto r = p->Apply({});
        if (r || r.error().message().find("$image_fd") == std::string::npos) {
          testing_util::Die("Apply without $image_fd did not fail as expected");
        }
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
}

TEST(SandboxRoles, NamesAreTheDesignsRoles) {
  EXPECT_EQ(RoleNames(), (std::vector<std::string>{"vcpu", "vcpu-kvm-pvm", "device", "device-blk",
                                                   "device-rng", "device-vsock", "vtpm"}));
}

TEST(SandboxRoles, UnknownRoleIsAnErrorListingTheRoles) {
  auto p = PolicyForRole("qemu");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(p.error().message().find("vcpu, vcpu-kvm-pvm, device, device-blk"), std::string::npos);
}

TEST(SandboxRoles, EveryRoleBuildsAndPrints) {
  for (const std::string& role : RoleNames()) {
    auto p = PolicyForRole(role);
    ASSERT_TRUE(p.has_value()) << role << ": " << p.error().ToString();
    std::string text = p->ToText();
    EXPECT_EQ(text.rfind("# policy " + role + ":", 0), 0u) << text;
    EXPECT_EQ(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')),
              p->rules().size() + 1);
  }
}

TEST(SandboxRoles, NoRoleAllowsExecutableMemoryOrNewProcesses) {
  for (const std::string& role : RoleNames()) {
    auto p = PolicyForRole(role);
    ASSERT_TRUE(p.has_value());
    for (const char* banned : {"execve", "execveat", "fork", "vfork", "ptrace", "socket", "connect",
                               "mount", "bpf", "personality", "pkey_mprotect", "io_uring_setup",
                               "memfd_create", "prctl", "seccomp", "open"}) {
      // The vsock back-end connects to the host's unix listeners: socket() only for
      // AF_UNIX stream sockets (its own test below), connect() within its mount namespace.
      const std::string_view b(banned);
      if (role == "device-vsock" && (b == "socket" || b == "connect")) continue;
      EXPECT_FALSE(p->Mentions(banned)) << role << " allows " << banned;
    }
    for (const SyscallRule& r : p->rules()) {
      if (r.name == "mmap" || r.name == "mprotect") {
        ASSERT_EQ(r.conditions.size(), 1u);
        EXPECT_EQ(r.conditions[0].mask & PROT_EXEC, static_cast<uint64_t>(PROT_EXEC));
        EXPECT_EQ(r.conditions[0].value, 0u);
      }
    }
  }
}

TEST(SandboxRoles, VsockDeviceCreatesOnlyUnixStreamSockets) {
  auto p = PolicyForRole("device-vsock");
  ASSERT_TRUE(p.has_value());
  int socket_rules = 0;
  for (const SyscallRule& r : p->rules()) {
    if (r.name != "socket") continue;
    ++socket_rules;
    ASSERT_EQ(r.conditions.size(), 3u);
    EXPECT_EQ(r.conditions[0].value, static_cast<uint64_t>(AF_UNIX));
    EXPECT_EQ(r.conditions[1].value,
              static_cast<uint64_t>(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC));
  }
  EXPECT_EQ(socket_rules, 1);
  for (const std::string& role : RoleNames()) {
    if (role != "device-vsock") {
      EXPECT_FALSE(PolicyForRole(role)->Mentions("socket")) << role;
    }
  }
}

TEST(SandboxRoles, OnlyVtpmTakesPathsAndOnlyRelativeToItsStateDir) {
  for (const std::string& role : RoleNames()) {
    auto p = PolicyForRole(role);
    ASSERT_TRUE(p.has_value());
    for (const SyscallRule& r : p->rules()) {
      if (r.name != "openat" && r.name != "renameat" && r.name != "unlinkat") continue;
      EXPECT_EQ(role, "vtpm") << r.name;
      EXPECT_TRUE(r.risky) << r.name;
      ASSERT_FALSE(r.conditions.empty());
      EXPECT_EQ(r.conditions[0].arg, 0u);
      EXPECT_EQ(r.conditions[0].param, kParamStateDirFd);
    }
  }
}

std::set<unsigned long> IoctlRequests(const Policy& p) {
  std::set<unsigned long> out;
  for (const SyscallRule& r : p.rules()) {
    if (r.name == "ioctl") out.insert(r.conditions.at(0).value);
  }
  return out;
}

const std::vector<unsigned long> kReshapingIoctls = {KVM_SET_USER_MEMORY_REGION,
                                                     KVM_CREATE_VCPU,
                                                     KVM_CREATE_VM,
                                                     kvm::kKvmSetCpuid2,
                                                     kvm::kKvmGetSupportedCpuid,
                                                     kvm::kKvmSetGsiRouting,
                                                     KVM_SET_TSS_ADDR,
                                                     KVM_ENABLE_CAP,
                                                     KVM_X86_SET_MSR_FILTER,
                                                     KVM_SET_FPU,
                                                     KVM_SET_LAPIC,
                                                     KVM_SET_DEBUGREGS};
// What only the kvm_pvm compatibility module calls (vmm/vm/compat/kvm_pvm/pvm_compat.cc).
const std::vector<unsigned long> kModuleIoctls = {
    KVM_SET_REGS,        KVM_SET_SREGS,       kvm::kKvmGetXsave,
    kvm::kKvmSetXsave,   kvm::kKvmGetMsrs,    kvm::kKvmSetMsrs,
    KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_SET_GUEST_DEBUG};

TEST(SandboxRoles, VcpuMayRunTheGuestButNotReshapeIt) {
  auto p = PolicyForRole("vcpu");
  ASSERT_TRUE(p.has_value());
  std::set<unsigned long> allowed = IoctlRequests(*p);
  EXPECT_EQ(allowed, (std::set<unsigned long>{KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_IRQ_LINE,
                                              KVM_IOEVENTFD, KVM_IRQFD}));
  for (unsigned long req : kReshapingIoctls) EXPECT_FALSE(allowed.count(req)) << KvmIoctlName(req);
  for (unsigned long req : kModuleIoctls) EXPECT_FALSE(allowed.count(req)) << KvmIoctlName(req);
}

TEST(SandboxRoles, VcpuKvmPvmAddsExactlyTheModulesIoctls) {
  auto base = PolicyForRole("vcpu");
  auto p = PolicyForRole("vcpu-kvm-pvm");
  ASSERT_TRUE(base.has_value() && p.has_value());
  std::set<unsigned long> expected = IoctlRequests(*base);
  expected.insert(kModuleIoctls.begin(), kModuleIoctls.end());
  EXPECT_EQ(IoctlRequests(*p), expected);
  for (unsigned long req : kReshapingIoctls)
    EXPECT_FALSE(IoctlRequests(*p).count(req)) << KvmIoctlName(req);
  EXPECT_EQ(VcpuRole(true), "vcpu-kvm-pvm");
  EXPECT_EQ(VcpuRole(false), "vcpu");
}

TEST(SandboxRoles, DevicesHaveNoIoctlAndNoThreads) {
  for (const char* role : {"device", "device-blk", "device-rng", "device-vsock", "vtpm"}) {
    auto p = PolicyForRole(role);
    ASSERT_TRUE(p.has_value());
    EXPECT_FALSE(p->Mentions("ioctl")) << role;
    EXPECT_FALSE(p->Mentions("clone")) << role;
  }
}

TEST(SandboxRoles, ParametersAreTheBackendFds) {
  EXPECT_EQ(PolicyForRole("device-blk")->RequiredParams(), std::vector<std::string>{"image_fd"});
  EXPECT_EQ(PolicyForRole("vtpm")->RequiredParams(), std::vector<std::string>{"state_dir_fd"});
  EXPECT_TRUE(PolicyForRole("vcpu")->RequiredParams().empty());
}

TEST(SandboxRoles, EveryRoleBoundsCoreAndFiles) {
  for (const std::string& role : RoleNames()) {
    auto limits = RoleRlimits(role);
    ASSERT_TRUE(limits.has_value());
    auto find = [&](int res) {
      return std::find_if(limits->begin(), limits->end(),
                          [res](const Rlimit& l) { return l.resource == res; });
    };
    ASSERT_NE(find(RLIMIT_CORE), limits->end()) << role;
    EXPECT_EQ(find(RLIMIT_CORE)->value, 0u);
    ASSERT_NE(find(RLIMIT_NOFILE), limits->end()) << role;
    EXPECT_LE(find(RLIMIT_NOFILE)->value, 1024u);
  }
}

TEST(SandboxRoles, SelinuxContextIsPerRoleAndPerVmLevel) {
  EXPECT_EQ(RoleSelinuxContext("device-blk", "s0:c12,c34"),
            "system_u:system_r:vmm_device_blk_t:s0:c12,c34");
  EXPECT_EQ(RoleSelinuxType("vcpu"), "vmm_vcpu_t");
}

TEST(SandboxKvmIoctls, NamesAndNumbersAreUnique) {
  std::set<unsigned long> numbers;
  std::set<std::string_view> names;
  for (const KvmIoctl& k : kKnownKvmIoctls) {
    EXPECT_TRUE(numbers.insert(k.request).second) << k.name;
    EXPECT_TRUE(names.insert(k.name).second) << k.name;
  }
  EXPECT_EQ(KvmIoctlName(KVM_RUN), "KVM_RUN");
  EXPECT_EQ(KvmIoctlName(kvm::kKvmSetCpuid2), "KVM_SET_CPUID2");
  EXPECT_EQ(KvmIoctlName(0x1234), "");
}

TEST(SandboxReport, ParsesProcStatus) {
  const char* status =
      "Name:\tvmm\nThreads:\t1\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
      "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n"
      "NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";
  auto r = ParseProcStatus(status);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->cap_eff, 0u);
  EXPECT_EQ(r->cap_bnd, 0u);
  EXPECT_EQ(r->no_new_privs, 1);
  EXPECT_EQ(r->seccomp_mode, 2);
  EXPECT_EQ(r->threads, 1);
  EXPECT_FALSE(ParseProcStatus("CapEff:\tzz\n").has_value());
  EXPECT_FALSE(ParseProcStatus("Name:\tx\n").has_value());
}

}  // namespace
}  // namespace vmm::sandbox
