// `vmm measure`: the measured boot of a VM given as to `vmm run`, with no KVM and no process
// started; a one-byte change in an input moves exactly its PCR in the printed values.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/event_log.h"
#include "tests/integration/vmm_process.h"
#include "tests/unit/boot/test_images.h"

namespace vmm::testing {
namespace {

ProcessResult Measure(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinDir() + "/vmm", "measure"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, 60);
}

// "sha256:8" -> value, from the text's "expected PCR values" lines.
std::map<std::string, std::string> Pcrs(const std::string& out) {
  std::map<std::string, std::string> pcrs;
  std::istringstream in(out.substr(out.find("expected PCR values:")));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string name, value;
    if (l >> name >> value) pcrs[name] = value;
  }
  return pcrs;
}

TEST(VmmMeasure, PrintsTheLogAndThePcrs) {
  const std::string kernel = WriteTempFile("measure-kernel.elf", MakePvhElf());
  ProcessResult r =
      Measure({"--kernel", kernel, "--cmdline", "console=ttyS0", "--tpm", "ephemeral"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"EV_S_CRTM_VERSION", "EV_PLATFORM_CONFIG_FLAGS", "EV_IPL", "EV_SEPARATOR",
                        "StartupLocality"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " in " << r.out;
  }
  auto pcrs = Pcrs(r.out);
  for (const char* p : {"sha256:0", "sha256:1", "sha256:4", "sha256:8", "sha384:8"}) {
    EXPECT_EQ(pcrs.count(p), 1u) << p;
  }
  EXPECT_EQ(pcrs.count("sha256:9"), 0u);  // no initramfs
  EXPECT_EQ(pcrs["sha256:8"].size(), 64u);
  EXPECT_EQ(pcrs["sha384:8"].size(), 96u);

  // The same command gives the same values; a changed command line moves PCR 8 only.
  ProcessResult same =
      Measure({"--kernel", kernel, "--cmdline", "console=ttyS0", "--tpm", "ephemeral"});
  EXPECT_EQ(Pcrs(same.out), pcrs);
  ProcessResult other =
      Measure({"--kernel", kernel, "--cmdline", "console=ttyS1", "--tpm", "ephemeral"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  auto moved = Pcrs(other.out);
  for (const auto& [name, value] : pcrs) {
    const bool pcr8 = name.ends_with(":8");
    EXPECT_EQ(moved[name] != value, pcr8) << name;
  }
  // More memory is configuration: PCR 1 only.
  ProcessResult mem = Measure(
      {"--kernel", kernel, "--cmdline", "console=ttyS0", "--tpm", "ephemeral", "--memory", "256M"});
  ASSERT_EQ(mem.exit_code, 0) << mem.err;
  auto mem_pcrs = Pcrs(mem.out);
  for (const auto& [name, value] : pcrs)
    EXPECT_EQ(mem_pcrs[name] != value, name.ends_with(":1")) << name;
}

TEST(VmmMeasure, WritesTheBinaryLogAndJson) {
  const std::string kernel = WriteTempFile("measure-kernel2.elf", MakePvhElf());
  const std::string log = WriteTempFile("unused", {}) + ".log";
  ProcessResult r = Measure({"--kernel", kernel, "--tpm", "ephemeral", "--json", "--log-out", log});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.front(), '{') << r.out;
  std::ifstream f(log, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  EXPECT_EQ(std::string(bytes.data() + 32, 15), "Spec ID Event03");
  // An existing --log-out file is not overwritten.
  ProcessResult again = Measure({"--kernel", kernel, "--tpm", "ephemeral", "--log-out", log});
  EXPECT_EQ(again.exit_code, 2) << again.err;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// --policy-out: the boot's policy, which the boot's own log passes and a one-byte kernel change
// fails at PCR 4's kernel event.
TEST(VmmMeasure, WritesAPolicyThatItsBootPassesAndAnotherKernelFails) {
  std::vector<uint8_t> image = MakePvhElf();
  const std::string kernel = WriteTempFile("measure-kernel4.elf", image);
  image.push_back(0);
  const std::string other_kernel = WriteTempFile("measure-kernel5.elf", image);
  const std::string base = WriteTempFile("unused", {});
  const std::string policy_path = base + ".policy.json", log_path = base + ".a.log",
                    other_log = base + ".b.log";
  ProcessResult r =
      Measure({"--kernel", kernel, "--cmdline", "console=ttyS0", "--tpm", "ephemeral",
               "--policy-out", policy_path, "--policy-id", "tenant/web-1", "--log-out", log_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ProcessResult other = Measure({"--kernel", other_kernel, "--cmdline", "console=ttyS0", "--tpm",
                                 "ephemeral", "--log-out", other_log});
  ASSERT_EQ(other.exit_code, 0) << other.err;

  auto policy = attestation::ParsePolicy(ReadFile(policy_path));
  ASSERT_TRUE(policy) << policy.error().message();
  EXPECT_EQ(policy->id, "tenant/web-1");
  EXPECT_EQ(policy->crtm_versions.size(), 1u);
  EXPECT_TRUE(policy->initramfs_present);
  EXPECT_FALSE(policy->initramfs);  // none given: none allowed
  ASSERT_TRUE(policy->acpi);

  const auto appraise = [&](const std::string& path) {
    auto log = attestation::ParseEventLog(ReadFile(path));
    EXPECT_TRUE(log);
    auto replay = attestation::ReplayEventLog(*log);
    EXPECT_TRUE(replay);
    return attestation::AppraiseEventLog(*policy, *log, *replay);
  };
  for (const attestation::Check& c : appraise(log_path)) {
    EXPECT_EQ(c.status, attestation::CheckStatus::kPass) << c.name << ": " << c.reason;
  }
  bool kernel_failed = false;
  for (const attestation::Check& c : appraise(other_log)) {
    if (c.name == "policy-kernel") {
      kernel_failed = c.status == attestation::CheckStatus::kFail;
      EXPECT_EQ(c.pcr, 4u);
      // The event named is the other log's kernel event.
      ASSERT_TRUE(c.event_index.has_value());
      auto log = attestation::ParseEventLog(ReadFile(other_log));
      ASSERT_TRUE(log && *c.event_index < log->events.size());
      EXPECT_EQ(log->events[*c.event_index].pcr, 4u);
      EXPECT_EQ(log->events[*c.event_index].type, attestation::kEvIpl);
      const std::string where =
          "PCR 4 event " + std::to_string(*c.event_index) + " (EV_IPL \"kernel\"): sha256 ";
      EXPECT_EQ(c.reason.rfind(where, 0), 0u) << c.reason;
      EXPECT_NE(c.reason.find("is not an allowed kernel"), std::string::npos) << c.reason;
    } else if (c.name != "policy-pcrs") {
      EXPECT_EQ(c.status, attestation::CheckStatus::kPass) << c.name << ": " << c.reason;
    }
  }
  EXPECT_TRUE(kernel_failed);

  // An existing --policy-out file is not overwritten; a control character is no id.
  ProcessResult again =
      Measure({"--kernel", kernel, "--tpm", "ephemeral", "--policy-out", policy_path});
  EXPECT_EQ(again.exit_code, 2) << again.err;
  ProcessResult bad_id = Measure({"--kernel", kernel, "--tpm", "ephemeral", "--policy-out",
                                  base + ".c.json", "--policy-id", "a\nb"});
  EXPECT_EQ(bad_id.exit_code, 2) << bad_id.err;
  EXPECT_NE(bad_id.err.find("policy id"), std::string::npos) << bad_id.err;
}

TEST(VmmMeasure, WithoutATpmThereIsNothingToMeasure) {
  const std::string kernel = WriteTempFile("measure-kernel3.elf", MakePvhElf());
  ProcessResult r = Measure({"--kernel", kernel});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no vTPM"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vmm::testing
