// Measured boot's scheme (vmm/manager/measured_boot.h): the log and the extends agree, every
// input moves exactly the PCR the scheme names, and the configuration measured is canonical.
#include "vmm/manager/measured_boot.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace vmm {
namespace {

struct Inputs {
  std::vector<uint8_t> kernel = std::vector<uint8_t>(3 << 20, 0x90);
  std::vector<uint8_t> initramfs = std::vector<uint8_t>(1 << 20, 0x07);
  std::string cmdline = "console=ttyS0 quiet";
  std::string configuration = R"({"cpus":1})";
  acpi::AcpiTables tables;

  Inputs() {
    auto t = BuildPlatformAcpi(2, true, 1, true);
    EXPECT_TRUE(t);
    tables = std::move(*t);
  }
  Result<MeasuredBoot> Measure() const {
    MeasuredBootInputs in{kernel, initramfs, cmdline, configuration, &tables};
    return MeasureBoot(in);
  }
};

// The PCRs (of either bank) whose expected values differ between a and b.
std::set<uint32_t> Moved(const MeasuredBoot& a, const MeasuredBoot& b) {
  std::set<uint32_t> out;
  for (size_t bank = 0; bank < a.expected.size(); ++bank) {
    for (uint32_t pcr = 0; pcr < attestation::kNumPcrs; ++pcr) {
      if (a.expected[bank].pcrs[pcr] != b.expected[bank].pcrs[pcr]) out.insert(pcr);
    }
  }
  return out;
}

TEST(MeasuredBoot, LogExtendsAndReplayAgree) {
  Inputs in;
  auto boot = in.Measure();
  ASSERT_TRUE(boot) << boot.error().message();
  ASSERT_LE(boot->log.size(), x86::kTpmEventLogSize);
  auto log = attestation::ParseEventLog(boot->log);
  ASSERT_TRUE(log) << log.error().message();
  ASSERT_TRUE(log->startup_locality.has_value());
  EXPECT_EQ(*log->startup_locality, 3);
  // Every extend is an event of the log, in order; EV_NO_ACTION events are not extended.
  size_t i = 0;
  for (const attestation::Event& e : log->events) {
    if (e.type == attestation::kEvNoAction) continue;
    ASSERT_LT(i, boot->extends.size());
    EXPECT_EQ(boot->extends[i].pcr, e.pcr);
    ASSERT_EQ(boot->extends[i].digests.size(), 2u);
    EXPECT_EQ(boot->extends[i].digests[0].alg, vtpm::kTpmAlgSha256);
    EXPECT_EQ(boot->extends[i].digests[1].alg, vtpm::kTpmAlgSha384);
    ++i;
  }
  EXPECT_EQ(i, boot->extends.size());
  // The scheme's PCRs: 0 (version, separator), 1 (config, ACPI), 2-7 (separators), 4, 8, 9.
  std::set<uint32_t> pcrs;
  for (const PcrExtend& x : boot->extends) pcrs.insert(x.pcr);
  EXPECT_EQ(pcrs, (std::set<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  // One ACPI event per table, named by signature.
  size_t acpi_events = 0;
  for (const attestation::Event& e : log->events) {
    std::string data(e.data.begin(), e.data.end());
    if (e.pcr == 1 && data.rfind("ACPI ", 0) == 0) ++acpi_events;
  }
  EXPECT_EQ(acpi_events, in.tables.tables.size());
  // The same inputs give the same bytes.
  auto again = in.Measure();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->log, boot->log);
}

TEST(MeasuredBoot, EachInputMovesItsPcrAndNoOther) {
  Inputs base;
  auto before = base.Measure();
  ASSERT_TRUE(before);
  struct Case {
    const char* what;
    void (*change)(Inputs&);
    std::set<uint32_t> moves;
  } cases[] = {
      {"kernel", [](Inputs& i) { i.kernel[(2 << 20) + 5] ^= 1; }, {4}},
      {"initramfs", [](Inputs& i) { i.initramfs.back() ^= 1; }, {9}},
      {"cmdline", [](Inputs& i) { i.cmdline.back() = 'r'; }, {8}},
      {"configuration", [](Inputs& i) { i.configuration = R"({"cpus":2})"; }, {1}},
      {"an ACPI table",
       [](Inputs& i) { i.tables.bytes[i.tables.tables.back().offset + 40] ^= 1; },
       {1}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Inputs changed;
    c.change(changed);
    auto after = changed.Measure();
    ASSERT_TRUE(after);
    EXPECT_EQ(Moved(*before, *after), c.moves);
  }
}

TEST(MeasuredBoot, NoInitramfsNoPcr9Event) {
  Inputs in;
  in.initramfs.clear();
  auto boot = in.Measure();
  ASSERT_TRUE(boot);
  for (const PcrExtend& x : boot->extends) EXPECT_NE(x.pcr, 9u);
}

TEST(MeasuredBoot, CanonicalConfigurationNamesWhatTheGuestCanTellApart) {
  VmConfig cfg;
  cfg.kernel = "/a/vmlinux";
  cfg.tpm.mode = TpmConfig::Mode::kEphemeral;
  BootPlan plan;
  const std::string base = CanonicalConfiguration(cfg, plan, "");
  EXPECT_EQ(
      base,
      R"({"cpus":1,"devices":[],"kvm_compat":{"on":false,"parameters":[]},)"
      R"("launch_policy":null,"memory":536870912,"schema":"vmm-config/1","serial":"tty","tpm":"ephemeral"})");
  VmConfig moved = cfg;
  moved.kernel = "/elsewhere/vmlinux";  // paths are not configuration: the images are measured
  EXPECT_EQ(CanonicalConfiguration(moved, plan, ""), base);
  moved = cfg;
  moved.memory += 4096;
  EXPECT_NE(CanonicalConfiguration(moved, plan, ""), base);
  moved = cfg;
  moved.disks.push_back({"/img", true});
  const std::string ro = CanonicalConfiguration(moved, plan, "");
  moved.disks.back().readonly = false;
  EXPECT_NE(CanonicalConfiguration(moved, plan, ""), ro);
  BootPlan compat;
  compat.kvm_compat = true;
  compat.kvm_compat_added = {"nopti"};
  EXPECT_NE(CanonicalConfiguration(cfg, compat, ""), base);
  // The launch policy that admitted the VM, by its digest (ARCHITECTURE.md §9).
  const std::string digest(64, 'e');
  const std::string with_policy = CanonicalConfiguration(cfg, plan, digest);
  EXPECT_NE(with_policy.find(R"("launch_policy":")" + digest + "\""), std::string::npos);
  EXPECT_NE(with_policy, base);
  EXPECT_NE(CanonicalConfiguration(cfg, plan, std::string(64, 'f')), with_policy);
}

}  // namespace
}  // namespace vmm
