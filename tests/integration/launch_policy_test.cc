// The launch policy end to end (ARCHITECTURE.md §9): `vmm run --policy` refuses a VM before
// anything starts, naming the rule; `vmm policy init` writes a policy that `vmm policy check`
// and `vmm run` admit for the same VM; the policy's digest is in PCR 1's configuration event,
// the same for `vmm measure` and `vmm run`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "base/sha256.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"

namespace vmm::testing {
namespace {

ProcessResult Vmm(const std::vector<std::string>& args, int timeout = 60) {
  std::vector<std::string> argv = {BinDir() + "/vmm"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, timeout);
}

std::string FreshPath(const std::string& name) {
  std::string path = WriteTempFile(name, {});
  unlink(path.c_str());
  return path;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> Vm(const std::string& kernel, const std::string& cmdline) {
  return {"--kernel", kernel, "--cmdline", cmdline, "--tpm", "ephemeral", "--memory", "256M"};
}

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A policy written by `vmm policy init` for one VM.
std::string InitPolicy(const std::vector<std::string>& vm) {
  const std::string policy = FreshPath("launch-policy.json");
  ProcessResult init = Vmm(With(With({"policy", "init"}, vm), {"--out", policy}));
  EXPECT_EQ(init.exit_code, 0) << init.err;
  return policy;
}

TEST(LaunchPolicyCli, InitThenCheckAdmitsTheSameVm) {
  const std::string kernel = WriteTempFile("lp-kernel.elf", MakePvhElf());
  const std::vector<std::string> vm = Vm(kernel, "console=ttyS0 quiet");
  const std::string policy = InitPolicy(vm);
  const std::string text = ReadText(policy);
  EXPECT_NE(text.find("\"vmm-launch-policy/1\""), std::string::npos) << text;

  ProcessResult valid = Vmm({"policy", "check", "--policy", policy});
  EXPECT_EQ(valid.exit_code, 0) << valid.err;
  EXPECT_NE(valid.out.find("is valid"), std::string::npos) << valid.out;
  EXPECT_NE(valid.out.find(Sha256Hex(text)), std::string::npos) << valid.out;

  ProcessResult admitted = Vmm(With({"policy", "check", "--policy", policy}, vm));
  EXPECT_EQ(admitted.exit_code, 0) << admitted.err;
  EXPECT_NE(admitted.out.find("admits this VM"), std::string::npos) << admitted.out;
  ProcessResult dry = Vmm(With({"run", "--dry-run", "--policy", policy}, vm));
  EXPECT_EQ(dry.exit_code, 0) << dry.err;

  // Another command line and more vCPUs: refused, each rule named, exit 2.
  ProcessResult refused =
      Vmm(With({"policy", "check", "--policy", policy},
               With(Vm(kernel, "console=ttyS0 init=/bin/sh"), {"--cpus", "2"})));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("refuses this VM: cmdline.params: "), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("\"init=/bin/sh\""), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("refuses this VM: limits.max_cpus: "), std::string::npos)
      << refused.err;

  // init never replaces a file.
  ProcessResult again = Vmm(With(With({"policy", "init"}, vm), {"--out", policy}));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("File exists"), std::string::npos) << again.err;
  EXPECT_EQ(ReadText(policy), text);
}

TEST(LaunchPolicyCli, RunRefusesAKernelNotInThePolicyBeforeDryRunPrints) {
  const std::string kernel = WriteTempFile("lp-kernel2.elf", MakePvhElf());
  const std::string policy = InitPolicy(Vm(kernel, "console=ttyS0"));
  std::vector<uint8_t> other_image = MakePvhElf();
  other_image.push_back(0);  // another image: another digest
  const std::string other = WriteTempFile("lp-other.elf", other_image);
  ProcessResult r = Vmm(With({"run", "--dry-run", "--policy", policy}, Vm(other, "console=ttyS0")));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.find("vmm: error: launch policy '" + policy + "' refuses this VM: kernels: "), 0u)
      << r.err;
  EXPECT_NE(r.err.find(Sha256Hex(std::string(other_image.begin(), other_image.end()))),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty()) << "--dry-run printed before the policy decided: " << r.out;
  // vmm measure decides as vmm run does.
  ProcessResult m = Vmm(With({"measure", "--policy", policy}, Vm(other, "console=ttyS0")));
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_NE(m.err.find("refuses this VM: kernels: "), std::string::npos) << m.err;
}

TEST(LaunchPolicyCli, ABadPolicyIsAnErrorNeverNoPolicy) {
  const std::string kernel = WriteTempFile("lp-kernel3.elf", MakePvhElf());
  const std::string text = ReadText(InitPolicy(Vm(kernel, "")));
  std::string broken = text;
  broken.insert(broken.find("\"limits\""), "\"unknown\": 1, ");
  const std::string path = WriteTempFile("lp-broken.json", {broken.begin(), broken.end()});
  ProcessResult check = Vmm({"policy", "check", "--policy", path});
  EXPECT_EQ(check.exit_code, 2);
  EXPECT_NE(check.err.find("unknown: unknown key"), std::string::npos) << check.err;
  ProcessResult run = Vmm(With({"run", "--dry-run", "--policy", path}, Vm(kernel, "")));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("unknown: unknown key"), std::string::npos) << run.err;
  ProcessResult missing =
      Vmm(With({"run", "--dry-run", "--policy", path + ".absent"}, Vm(kernel, "")));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(missing.out.empty());
}

// PCR 1's configuration names the policy by its digest; measure and run agree byte for byte.
TEST(LaunchPolicyMeasured, ThePolicyDigestIsInPcr1AsVmmRunMeasuresIt) {
  const std::string kernel = BinDir() + "/testguest.elf";
  const std::vector<std::string> vm = Vm(kernel, "expect_tpm=crb");
  const std::string policy = InitPolicy(vm);
  const std::string digest = Sha256Hex(ReadText(policy));
  const std::string with_log = FreshPath("lp-measure.log");
  const std::string reference = FreshPath("lp-reference.json");
  ProcessResult m = Vmm(With(With({"measure", "--policy", policy}, vm),
                             {"--log-out", with_log, "--policy-out", reference}));
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const std::string log = ReadText(with_log);
  EXPECT_NE(log.find("\"launch_policy\":\"" + digest + "\""), std::string::npos);
  // A tenant's reference values (vmm-policy/1) carry it too, and parse as vmm-verify reads them.
  const std::string ref_text = ReadText(reference);
  EXPECT_NE(ref_text.find(digest), std::string::npos) << ref_text;
  auto ref = attestation::ParsePolicy(
      std::span(reinterpret_cast<const uint8_t*>(ref_text.data()), ref_text.size()));
  EXPECT_TRUE(ref.has_value()) << ref.error().message();
  const std::string without_log = FreshPath("lp-measure-none.log");
  ProcessResult none = Vmm(With(With({"measure"}, vm), {"--log-out", without_log}));
  ASSERT_EQ(none.exit_code, 0) << none.err;
  const std::string none_text = ReadText(without_log);
  // With no policy at all (neither --policy nor the host default) the key is null.
  if (access("/etc/vmm/launch-policy.json", F_OK) != 0) {
    EXPECT_NE(none_text.find("\"launch_policy\":null"), std::string::npos);
    EXPECT_NE(none.err.find("no launch policy"), std::string::npos) << none.err;
  }

  if (!HaveKvm()) GTEST_SKIP() << "needs /dev/kvm (absent or not accessible on this host)";
  const std::string kept = FreshPath("lp-run.log");
  ProcessResult run =
      Vmm(With(With({"run", "--policy", policy}, vm), {"--event-log-out", kept}), 120);
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  EXPECT_NE(run.out.find("testguest: result PASS"), std::string::npos) << run.out;
  EXPECT_EQ(ReadText(kept), log) << "vmm run --policy measured another log than vmm measure";
}

}  // namespace
}  // namespace vmm::testing
