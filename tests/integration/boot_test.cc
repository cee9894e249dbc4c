// Boots real guests under KVM: tiny hand-assembled ones that each exercise one way a VM
// ends, and the project's test guest (tests/guest) on both boot paths. Skipped, with the
// reason, where /dev/kvm is missing; scripts/test.sh then runs them under nested KVM.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"
#include "tests/unit/common/expect_text.h"

namespace vmm::testing {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

#define REQUIRE_KVM() \
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)"

// 32-bit protected-mode code at the PVH entry.
const std::vector<uint8_t> kSerialThenPowerOff = {
    0x66, 0xBA, 0xF8, 0x03,  // mov dx, 0x3F8
    0xB0, 'o',  0xEE,        // mov al, 'o'; out dx, al
    0xB0, 'k',  0xEE,        // mov al, 'k'; out dx, al
    0xB0, '\n', 0xEE,        // mov al, '\n'; out dx, al
    0x66, 0xBA, 0x04, 0x06,  // mov dx, 0x604 (PM1a_CNT)
    0x66, 0xB8, 0x00, 0x34,  // mov ax, SLP_TYP 5 << 10 | SLP_EN
    0x66, 0xEF,              // out dx, ax
    0xF4, 0xEB, 0xFD,        // hlt; jmp back
};
const std::vector<uint8_t> kTripleFault = {0x0F, 0x0B};  // ud2 with no IDT
const std::vector<uint8_t> kI8042Reset = {0xB0, 0xFE, 0xE6, 0x64, 0xF4, 0xEB, 0xFD};
const std::vector<uint8_t> kHaltForever = {0xFA, 0xF4, 0xEB, 0xFD};  // cli; hlt; jmp

std::string TinyGuest(const std::string& name, const std::vector<uint8_t>& code) {
  ElfSpec spec;
  spec.code = code;
  return WriteTempFile(name, MakePvhElf(spec));
}

TEST(TinyGuestKvm, SerialOutputThenAcpiPowerOffExitsZero) {
  REQUIRE_KVM();
  ProcessResult r = RunVmm({"--kernel", TinyGuest("serial.elf", kSerialThenPowerOff)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}

TEST(TinyGuestKvm, Elf32SerialOutputThenAcpiPowerOffExitsZero) {
  REQUIRE_KVM();
  ElfSpec spec;
  spec.code = kSerialThenPowerOff;
  ProcessResult r = RunVmm({"--kernel", WriteTempFile("serial32.elf", MakePvhElf32(spec))});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}

TEST(TinyGuestKvm, SerialToFile) {
  REQUIRE_KVM();
  std::string out = WriteTempFile("serial.txt", {});
  ProcessResult r = RunVmm(
      {"--kernel", TinyGuest("serial2.elf", kSerialThenPowerOff), "--serial", "file=" + out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  ProcessResult cat = RunProcess({"/bin/cat", out}, 5);
  EXPECT_EQ(cat.out, "ok\n");
}

TEST(TinyGuestKvm, TripleFaultExitsNonZeroWithRegisters) {
  REQUIRE_KVM();
  ProcessResult r = RunVmm({"--kernel", TinyGuest("tf.elf", kTripleFault)});
  EXPECT_EQ(r.exit_code, 1);
  ExpectContainsAll(r.err, {"triple-faulted", "rip="});
}

TEST(TinyGuestKvm, I8042ResetStopsTheVm) {
  REQUIRE_KVM();
  ProcessResult r = RunVmm({"--kernel", TinyGuest("reset.elf", kI8042Reset)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("i8042"), std::string::npos) << r.err;
}

TEST(TinyGuestKvm, SigtermStopsAHaltedGuestInOrder) {
  REQUIRE_KVM();
  std::string kernel = TinyGuest("halt.elf", kHaltForever);
  std::string vmm = BinDir() + "/vmm";
  // SIGTERM arrives once vmm had time to start its vCPUs.
  ProcessResult r = RunProcess({vmm, "run", "--kernel", kernel, "--cpus", "2"}, 30, SIGTERM, 1500);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  EXPECT_NE(r.err.find("stopped by SIGTERM"), std::string::npos) << r.err;
}

// The project's test guest, built by tests/guest.
std::string GuestPath(const char* name) {
  std::string path = BinDir() + "/" + name;
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? path : "";
}

void ExpectGuestPasses(const ProcessResult& r, const std::string& boot, int cpus) {
  EXPECT_EQ(r.exit_code, 0) << r.err << "\n--- serial ---\n" << r.out;
  ExpectContainsAll(r.out, {"testguest: hello (boot=" + boot + ")", "testguest: result PASS"});
  EXPECT_EQ(r.out.find(": FAIL"), std::string::npos) << r.out;
  std::string online = std::to_string(cpus) + "/" + std::to_string(cpus) + " cpus online";
  EXPECT_NE(r.out.find(online), std::string::npos) << r.out;
}

// Runs the test guest `image` (skipped without KVM, failed if it was not built) with `args`
// after --kernel.
class TestGuestKvm : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }

  ProcessResult Run(const char* image, std::vector<std::string> args, int timeout_s) {
    const std::string guest = GuestPath(image);
    if (guest.empty()) {
      ADD_FAILURE() << image << " was not built (tests/guest; the 32-bit one needs objcopy)";
      return {};
    }
    args.insert(args.begin(), {"--kernel", guest});
    return RunVmm(args, timeout_s);
  }
};

// One boot of the test guest that must report PASS with every vCPU online.
struct GuestBoot {
  const char* label;
  const char* image;
  std::vector<std::string> args;
  const char* boot;  // what the guest says it was booted by
  int cpus;
  int timeout_s;
};

class TestGuestBoots : public TestGuestKvm, public ::testing::WithParamInterface<GuestBoot> {};

TEST_P(TestGuestBoots, AndPasses) {
  const GuestBoot& b = GetParam();
  ExpectGuestPasses(Run(b.image, b.args, b.timeout_s), b.boot, b.cpus);
}

INSTANTIATE_TEST_SUITE_P(
    TestGuestKvm, TestGuestBoots,
    ::testing::Values(
        GuestBoot{"PvhOneCpu", "testguest.elf", {"--cmdline", "expect_cpus=1"}, "pvh", 1, 120},
        GuestBoot{"PvhTwoCpus",
                  "testguest.elf",
                  {"--cpus", "2", "--cmdline", "expect_cpus=2"},
                  "pvh",
                  2,
                  120},
        GuestBoot{"PvhFourCpusAndLargeMemory",
                  "testguest.elf",
                  {"--cpus", "boot=4", "--memory", "size=3584M", "--cmdline", "expect_cpus=4"},
                  "pvh",
                  4,
                  180},
        GuestBoot{"Elf32PvhTwoCpus",
                  "testguest32.elf",
                  {"--cpus", "2", "--cmdline", "expect_cpus=2"},
                  "pvh",
                  2,
                  120},
        GuestBoot{"BzImageTwoCpus",
                  "testguest.bzImage",
                  {"--cpus", "2", "--cmdline", "expect_cpus=2"},
                  "linux64",
                  2,
                  120}),
    [](const ::testing::TestParamInfo<GuestBoot>& info) { return std::string(info.param.label); });

// bench/boot's kvm_pvm-safe payload: the same guest without its int3 probe, which says so.
TEST_F(TestGuestKvm, PvhWithoutTheInt3ProbeSaysSo) {
  ProcessResult r =
      Run("testguest.elf", {"--cpus", "2", "--cmdline", "expect_cpus=2 exceptions=no-int3"}, 120);
  ExpectGuestPasses(r, "pvh", 2);
  EXPECT_NE(r.out.find("check exceptions: ok caught #UD #PF; #BP not probed (exceptions=no-int3)"),
            std::string::npos)
      << r.out;
}

TEST_F(TestGuestKvm, ProfileNamesGuestFunctions) {
  ProcessResult r = Run("testguest.elf", {"--cpus", "2", "--profile"}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("samples of the guest RIP"), std::string::npos) << r.err;
  // The test guest's ELF has a symbol table, so samples are named, not raw addresses.
  EXPECT_NE(r.err.find("%"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit statistics: "), std::string::npos) << "--profile implies --exit-stats";
}

TEST_F(TestGuestKvm, ExitStatsShowWhereTheExitsWent) {
  ProcessResult r = Run("testguest.elf", {"--cpus", "2", "--exit-stats"}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ExpectContainsAll(r.err, {"exit statistics: ", " exits on 2 vCPUs\n"});
  // The guest writes its report to COM1: port 0x3f8 is among the busiest.
  ExpectContainsAll(r.err, {"KVM_EXIT_IO, top ", "0x3f8 (in "});
}

}  // namespace
}  // namespace vmm::testing
