// `vmm measure`: the measured boot of a VM given as to `vmm run`, with no KVM and no process
// started; a one-byte change in an input moves exactly its PCR in the printed values.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

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

TEST(VmmMeasure, WithoutATpmThereIsNothingToMeasure) {
  const std::string kernel = WriteTempFile("measure-kernel3.elf", MakePvhElf());
  ProcessResult r = Measure({"--kernel", kernel});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no vTPM"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vmm::testing
