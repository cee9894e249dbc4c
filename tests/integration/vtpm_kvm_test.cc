// The VM's TPM as the guest sees it: `vmm run --tpm ...` starts a confined vmm-vtpm, sends
// TPM2_Startup before the guest runs, and the test guest's CRB check (tests/guest/checks/
// tpm.c: TPM2 table, CRB registers, GetRandom, PCR_Read, PCR_Extend) passes through the VM
// process's CRB front end and the vTPM's locality-0 channel. Needs /dev/kvm (scripts/test.sh
// runs these under nested KVM where it is missing).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"
#include "tests/unit/common/expect_text.h"

namespace vmm::testing {
namespace {

using ::vmm::testing_util::ExpectContainsAll;

#define REQUIRE_KVM() \
  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)"

std::string TempDir(const std::string& name) {
  std::string dir = WriteTempFile(name + ".marker", {});
  dir = dir.substr(0, dir.rfind('/')) + "/" + name;
  mkdir(dir.c_str(), 0700);
  return dir;
}

std::string Pcr16(const std::string& out) {
  std::smatch m;
  static const std::regex re("tpm: pcr16 sha256 ([0-9a-f]{64})");
  return std::regex_search(out, m, re) ? m[1].str() : "";
}

TEST(VtpmKvm, TestGuestCrbChecksPassWithTheVtpmInItsOwnProcess) {
  REQUIRE_KVM();
  ProcessResult r = RunVmm({"--kernel", BinDir() + "/testguest.elf", "--tpm", "ephemeral",
                            "--cmdline", "expect_tpm=crb"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("check tpm: ok"), std::string::npos) << r.out;
  // The measured boot's log, replayed by the guest against this vTPM (measured_boot_test.cc
  // holds it against vmm measure).
  ExpectContainsAll(r.out, {"check measured-boot: ok", "testguest: result PASS"});
  EXPECT_EQ(Pcr16(r.out).size(), 64u) << r.out;
}

// The state is sealed in the directory and reloaded: a second boot of the same VM finds the
// TPM it left (same endorsement seed: the guest's PCR 16 after the same extend is the same
// either way, so the check here is that the second run loads the state without error and
// writes a newer generation), and a state file that fails its check stops the VM before it
// runs, with the reason.
TEST(VtpmKvm, PersistentStateLoadsOnTheNextRunAndATamperedOneIsRefused) {
  REQUIRE_KVM();
  std::string dir = TempDir("vtpm-kvm-state");
  std::string key = dir + ".key";
  std::vector<std::string> args = {"--kernel",  BinDir() + "/testguest.elf",
                                   "--tpm",     "state=" + dir + ",key=" + key,
                                   "--cmdline", "expect_tpm=crb"};
  ProcessResult first = RunVmm(args);
  ASSERT_EQ(first.exit_code, 0) << first.err << first.out;
  struct stat st {};
  ASSERT_EQ(stat((dir + "/tpm-permanent.state").c_str(), &st), 0)
      << "no permanent state written; files:\n"
      << first.err;
  ProcessResult second = RunVmm(args);
  EXPECT_EQ(second.exit_code, 0) << second.err << second.out;
  EXPECT_NE(second.out.find("check tpm: ok"), std::string::npos) << second.out;
  // A persistent TPM is measured afresh at each boot (PCRs reset at TPM2_Startup).
  EXPECT_NE(second.out.find("check measured-boot: ok"), std::string::npos) << second.out;

  {  // flip one byte in the sealed body
    std::fstream f(dir + "/tpm-permanent.state", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(st.st_size - 20);
    char c = 0;
    f.read(&c, 1);
    f.seekp(st.st_size - 20);
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  ProcessResult third = RunVmm(args);
  EXPECT_EQ(third.exit_code, 1) << third.err;
  EXPECT_EQ(third.out.find("testguest: hello"), std::string::npos)
      << "the guest ran on a TPM whose state failed its check";
  EXPECT_NE(third.err.find("vTPM"), std::string::npos) << third.err;
}

std::string HaltingGuest() {
  ElfSpec spec;
  spec.code = {0xFA, 0xF4, 0xEB, 0xFD};  // cli; hlt; jmp back
  return WriteTempFile("halt-vtpm.elf", MakePvhElf(spec));
}

TEST(VtpmKvm, AVtpmProcessThatDiesStopsTheVmNamingIt) {
  REQUIRE_KVM();
  std::vector<pid_t> killed;
  ProcessResult r =
      RunProcess({BinDir() + "/vmm", "run", "--kernel", HaltingGuest(), "--tpm", "ephemeral"}, 60,
                 0, 2500, [&killed](pid_t vmm) {
                   std::ifstream f("/proc/" + std::to_string(vmm) + "/task/" + std::to_string(vmm) +
                                   "/children");
                   pid_t c;
                   while (f >> c) {
                     std::ifstream comm("/proc/" + std::to_string(c) + "/comm");
                     std::string name;
                     comm >> name;
                     if (name == "vmm-vtpm" && kill(c, SIGKILL) == 0) killed.push_back(c);
                   }
                 });
  ASSERT_EQ(killed.size(), 1u) << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  ExpectContainsAll(r.err, {"vTPM process", "killed by SIGKILL"});
}

}  // namespace
}  // namespace vmm::testing
