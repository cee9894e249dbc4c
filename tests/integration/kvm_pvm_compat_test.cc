// The kvm_pvm compatibility module against a real KVM. This host's KVM (or the nested one
// scripts/test.sh starts) is not kvm_pvm, so the emulation failures kvm_pvm produces are
// made here the way any KVM produces them: the guest runs code from a page that is guest
// RAM for the VMM but has no KVM memslot. KVM's emulator cannot fetch it and exits with
// KVM_EXIT_INTERNAL_ERROR (emulation failure), exactly the exit the module completes on
// kvm_pvm, and the module reads the instruction through the guest's page tables.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>

#include "tests/integration/vmm_process.h"
#include "tests/unit/common/expect_text.h"
#include "vmm/contract/layout.h"
#include "vmm/vm/arch/x86_64/cpu_setup.h"
#include "vmm/vm/compat/kvm_pvm/pvm_compat.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/memory/guest_memory.h"

namespace vmm::compat::pvm {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

constexpr uint64_t kCodeA = 0x100000;  // slotted: sets up registers, jumps to page B
constexpr uint64_t kPageB = 0x200000;  // RAM without a memslot: every fetch fails in KVM
constexpr uint64_t kPageC = 0x201000;  // slotted again: reports through a port
constexpr uint64_t kData = 0x300000;   // cmpxchg16b's operand
constexpr uint16_t kDonePort = 0xF4;
constexpr uint64_t kGuestLstar = 0xFFFFFFFF81234560;

// 64-bit code (as(1) output, checked by hand).
const std::vector<uint8_t> kSetup = {
    0xB9, 0x82, 0x00, 0x00, 0xC0,  // mov ecx, IA32_LSTAR
    0xB8, 0x60, 0x45, 0x23, 0x81,  // mov eax, 0x81234560
    0xBA, 0xFF, 0xFF, 0xFF, 0xFF,  // mov edx, 0xffffffff
    0x0F, 0x30,                    // wrmsr
    0x31, 0xC0, 0x31, 0xD2,        // xor eax, eax; xor edx, edx
    0x0F, 0x32,                    // rdmsr
    0x48, 0xC1, 0xE2, 0x20,        // shl rdx, 32
    0x48, 0x09, 0xD0,              // or rax, rdx
    0x49, 0x89, 0xC4,              // mov r12, rax
    0xBE, 0xF0, 0xF0, 0x00, 0x00,  // mov esi, 0xf0f0
    0xBF, 0x00, 0x00, 0x30, 0x00,  // mov edi, 0x300000
    0xB8, 0x01, 0x00, 0x00, 0x00,  // mov eax, 1
    0xBA, 0x02, 0x00, 0x00, 0x00,  // mov edx, 2
    0xBB, 0x03, 0x00, 0x00, 0x00,  // mov ebx, 3
    0xB9, 0x04, 0x00, 0x00, 0x00,  // mov ecx, 4
};
// Ends exactly at the end of page B, so execution falls through into page C.
const std::vector<uint8_t> kUnslotted = {
    0xF3, 0x4C, 0x0F, 0xB8, 0xC6,  // popcnt r8, rsi
    0xF0, 0x48, 0x0F, 0xC7, 0x0F,  // lock cmpxchg16b [rdi]
    0x9B,                          // fwait
    0x0F, 0x01, 0xCB,              // stac
    0x0F, 0x01, 0xCA,              // clac
};
const std::vector<uint8_t> kReport = {0xE6, kDonePort, 0xF4};  // out 0xf4, al; hlt

struct Vm {
  kvm::Kvm kvm;
  kvm::KvmVm vm;
  GuestMemory mem;
  kvm::KvmVcpu vcpu;
};

Result<Vm> MakeVm() {
  ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open());
  ASSIGN_OR_RETURN(kvm::KvmVm vm, kvm.CreateVm());
  RETURN_IF_ERROR(vm.SetupX86Platform());
  ASSIGN_OR_RETURN(GuestMemory mem, GuestMemory::Create(64 << 20));
  RETURN_IF_ERROR(vm.SetUserMemoryRegion(0, 0, kPageB, mem.host_base()));
  RETURN_IF_ERROR(vm.SetUserMemoryRegion(1, kPageC, (64 << 20) - kPageC, mem.host_base() + kPageC));
  ASSIGN_OR_RETURN(kvm::KvmVcpu vcpu, vm.CreateVcpu(0, kvm.vcpu_mmap_size()));
  ASSIGN_OR_RETURN(auto supported, kvm.GetSupportedCpuid());
  RETURN_IF_ERROR(x86::SetupVcpuCommon(vcpu, x86::BuildCpuid(supported, 0, 1, kvm.flavor())));
  RETURN_IF_ERROR(x86::SetupBootCpuRegisters(vcpu, mem, boot::BootProtocol::kLinux64, kCodeA,
                                             x86::kZeroPageAddr));

  std::vector<uint8_t> code = kSetup;
  const uint64_t target = kPageC - kUnslotted.size();
  const uint64_t next = kCodeA + code.size() + 5;
  const uint32_t rel = static_cast<uint32_t>(target - next);
  code.push_back(0xE9);  // jmp rel32
  for (int i = 0; i < 4; ++i) code.push_back(static_cast<uint8_t>(rel >> (8 * i)));
  RETURN_IF_ERROR(mem.Write(kCodeA, code));
  RETURN_IF_ERROR(mem.Write(target, kUnslotted));
  RETURN_IF_ERROR(mem.Write(kPageC, kReport));
  const uint64_t operand[2] = {1, 2};
  RETURN_IF_ERROR(
      mem.Write(kData, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(operand), 16)));
  return Vm{std::move(kvm), std::move(vm), std::move(mem), std::move(vcpu)};
}

#define REQUIRE_KVM_VM(vm)                                                    \
  auto vm = MakeVm();                                                         \
  if (!vm && access("/dev/kvm", R_OK | W_OK) != 0)                            \
    GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)"; \
  ASSERT_TRUE(vm.has_value()) << vm.error().ToString()

TEST(PvmCompatKvm, CompletesWhatKvmCannotEmulateAndFiltersLstar) {
  REQUIRE_KVM_VM(vm);
  auto compat = PvmCompat::Enable(vm->vm, 1);
  ASSERT_TRUE(compat.has_value()) << compat.error().ToString();
  const GuestRam& ram = vm->mem.ram();

  int failures = 0, msr_exits = 0;
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i) {
    auto run = vm->vcpu.Run();
    ASSERT_TRUE(run.has_value()) << run.error().ToString();
    kvm_run& r = *vm->vcpu.run_page();
    switch (r.exit_reason) {
      case KVM_EXIT_INTERNAL_ERROR: {
        ++failures;
        auto c = (*compat)->CompleteEmulationFailure(vm->vcpu, ram);
        ASSERT_TRUE(c.has_value()) << c.error().ToString();
        break;
      }
      case KVM_EXIT_X86_RDMSR:
      case KVM_EXIT_X86_WRMSR: {
        ++msr_exits;
        auto m = (*compat)->HandleMsrExit(vm->vcpu, ram);
        ASSERT_TRUE(m.has_value()) << m.error().ToString();
        break;
      }
      case KVM_EXIT_IO:
        ASSERT_EQ(r.io.port, kDonePort);
        done = true;
        break;
      default:
        FAIL() << "unexpected exit " << r.exit_reason << ": " << kvm::DescribeRegisters(vm->vcpu);
    }
  }
  ASSERT_TRUE(done) << (*compat)->Summary();
  EXPECT_EQ(failures, 5) << "one exit per instruction of page B";
  EXPECT_EQ(msr_exits, 2) << "wrmsr and rdmsr of IA32_LSTAR";

  auto regs = vm->vcpu.GetRegs();
  ASSERT_TRUE(regs.has_value());
  EXPECT_EQ(regs->r8, 8u) << "popcnt 0xf0f0";
  EXPECT_EQ(regs->r12, kGuestLstar) << "rdmsr returns what the guest wrote";
  EXPECT_TRUE(regs->rflags & (1u << 6)) << "cmpxchg16b swapped: ZF";
  EXPECT_FALSE(regs->rflags & (1u << 18)) << "clac after stac: AC clear";
  uint64_t operand[2];
  ASSERT_TRUE(
      vm->mem.Read(kData, std::span<uint8_t>(reinterpret_cast<uint8_t*>(operand), 16)).has_value());
  EXPECT_EQ(operand[0], 3u);
  EXPECT_EQ(operand[1], 4u);
  EXPECT_NE((*compat)->Summary().find("5 instructions completed"), std::string::npos)
      << (*compat)->Summary();
}

TEST(PvmCompatKvm, WithTheModuleOffTheFirstFailureIsNamed) {
  REQUIRE_KVM_VM(vm);
  const GuestRam& ram = vm->mem.ram();
  for (int i = 0; i < 10; ++i) {
    auto run = vm->vcpu.Run();
    ASSERT_TRUE(run.has_value()) << run.error().ToString();
    if (vm->vcpu.run_page()->exit_reason == KVM_EXIT_INTERNAL_ERROR) break;
  }
  ASSERT_EQ(vm->vcpu.run_page()->exit_reason, static_cast<uint32_t>(KVM_EXIT_INTERNAL_ERROR));
  std::string what = DescribeFailedInstruction(vm->vcpu, ram);
  EXPECT_EQ(what, "popcnt [f3 4c 0f b8 c6] at rip 0x200fef");
}

// The whole module inside `vmm run`, every process confined: the test guest's compat check
// (tests/guest/checks/compat.c) runs each instruction the module completes from the
// emulation window and makes SYSCALL round trips from ring 3, real ones and kvm_pvm-style
// landings at CPL 3. A filter that forbade an ioctl the module makes would kill the VM
// process with SIGSYS (and the manager says so).
std::string TestGuest() {
  std::string path = testing::BinDir() + "/testguest.elf";
  return access(path.c_str(), R_OK) == 0 ? path : "";
}

#define REQUIRE_KVM_AND_GUEST(guest)                                                    \
  if (!testing::HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible)"; \
  const std::string guest = TestGuest();                                                \
  ASSERT_FALSE(guest.empty()) << "testguest.elf was not built"

TEST(PvmCompatKvm, ExerciseModeCompletesEveryHandledInstructionConfined) {
  REQUIRE_KVM_AND_GUEST(guest);
  testing::ProcessResult r = testing::RunVmm(
      {"--kernel", guest, "--kvm-compat", "on", "--cmdline", "compat=exercise"}, 180);
  EXPECT_EQ(r.exit_code, 0) << r.err << "\n--- serial ---\n" << r.out;
  EXPECT_EQ(r.err.find("SIGSYS"), std::string::npos) << r.err;
  // The #BP goes through KVM's own event injection, which differs by host
  // (tests/guest/checks/compat.c), so the window line is matched up to int3.
  EXPECT_NE(r.out.find("check compat: ok window: popcnt cmpxchg16b stac clac fwait ldmxcsr "
                       "stmxcsr int3"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("; ring 3: 4 syscall/sysret + 4 CPL-3 landings at LSTAR, registers and "
                       "flags ok"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("testguest: result PASS"), std::string::npos) << r.out;
  if (kvm::DetectFlavor() == kvm::KvmFlavor::kPvm) {
    // kvm_pvm: the exceptions check's int3 and the check's own ldmxcsr/stmxcsr in ring 0
    // need the module too (10 completed, 2 #BP), and every SYSCALL, real or simulated,
    // lands at CPL 3.
    EXPECT_NE(
        r.err.find(
            "kvm_pvm compatibility: 10 instructions completed, 2 exceptions "
            "injected, 1 LSTAR writes, 9 SYSCALL landings (0 completed by the "
            "CPU, 9 fixed up, 0 of them caught at the page-fault entry), 0 guest #DB passed on"),
        std::string::npos)
        << r.err;
  } else {
    // VMX/SVM: 7 completed (popcnt, cmpxchg16b, stac, clac, fwait, ldmxcsr, stmxcsr), int3
    // injected as #BP; the 4 real SYSCALLs and the one that returns to ring 0 completed by
    // the CPU, the 4 CPL-3 landings fixed up.
    EXPECT_NE(
        r.err.find(
            "kvm_pvm compatibility: 7 instructions completed, 1 exceptions "
            "injected, 1 LSTAR writes, 9 SYSCALL landings (5 completed by the "
            "CPU, 4 fixed up, 0 of them caught at the page-fault entry), 0 guest #DB passed on"),
        std::string::npos)
        << r.err;
  }
}

// Code fetched from the MMIO hole fails any KVM's emulator: the error report (registers,
// the instruction at CS:RIP) runs under the VM process's filter, module on or off. Without
// the #BP probe, which kvm_pvm cannot run with the module off.
TEST(PvmCompatKvm, AnEmulationFailureIsReportedUnderEitherFilterNotBySigsys) {
  REQUIRE_KVM_AND_GUEST(guest);
  for (const char* mode : {"off", "on"}) {
    SCOPED_TRACE(std::string("--kvm-compat ") + mode);
    testing::ProcessResult r = testing::RunVmm(
        {"--kernel", guest, "--kvm-compat", mode, "--cmdline", "crash=fetch exceptions=no-int3"},
        120);
    EXPECT_EQ(r.exit_code, 1) << r.err << "\n--- serial ---\n" << r.out;
    EXPECT_EQ(r.err.find("SIGSYS"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("0xc0000000"), std::string::npos) << "the address: " << r.err;
    EXPECT_NE(r.err.find("rip=0xc0000000"), std::string::npos) << "registers: " << r.err;
  }
}

TEST(PvmCompatKvm, AnInstructionTheModuleCannotCompleteStopsTheVmWithItsName) {
  REQUIRE_KVM_AND_GUEST(guest);
  testing::ProcessResult r = testing::RunVmm(
      {"--kernel", guest, "--kvm-compat", "on", "--cmdline", "compat=unsupported"}, 120);
  EXPECT_EQ(r.exit_code, 1) << r.err << "\n--- serial ---\n" << r.out;
  EXPECT_EQ(r.err.find("SIGSYS"), std::string::npos) << r.err;
  ExpectContainsAll(r.err, {"kvm_pvm compatibility: cannot complete", "at rip 0xd0ffe"});
  EXPECT_NE(r.err.find("rip="), std::string::npos) << "registers in the report: " << r.err;
}

}  // namespace
}  // namespace vmm::compat::pvm
