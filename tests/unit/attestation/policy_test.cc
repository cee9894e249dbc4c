// attestation/appraisal.h: the vmm-policy/1 parser (every malformed case refused with a clear
// message), its serializer (stable round trips), policies made from logs of measured boot's
// scheme, and appraisal: every component passes against its own policy, and each change of
// one component fails that component's check, naming the PCR and the event.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/event_log.h"
#include "tests/unit/attestation/expect_evidence.h"

namespace vmm::attestation {
namespace {

using Bytes = std::vector<uint8_t>;

std::span<const uint8_t> S(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The inputs of one boot, measured as vmm/manager/measured_boot.cc does.
struct Boot {
  std::string version = "vmm 0.9.0";
  std::string configuration = R"({"cpus":1,"memory":134217728,"tpm":"ephemeral"})";
  std::vector<std::pair<std::string, std::string>> acpi = {{"DSDT", "dsdt bytes"},
                                                           {"FACP", "fadt bytes"}};
  std::string kernel = "kernel image";
  std::string cmdline = "console=ttyS0";
  std::string initramfs;  // none when empty
  int kernel_events = 1;
  bool relabel_acpi_as_config = false;
};

Bytes BuildLog(const Boot& b) {
  EventLogBuilder log;
  EXPECT_TRUE(log.AddStartupLocality(3));
  EXPECT_TRUE(log.AddSCrtmVersion(S(b.version)));
  EXPECT_TRUE(log.AddPlatformConfigFlags(S(b.configuration)));
  for (const auto& [sig, table] : b.acpi) {
    const std::string what = b.relabel_acpi_as_config ? sig : "ACPI " + sig;
    EXPECT_TRUE(log.Measure(1, kEvPlatformConfigFlags, S(what), S(table)));
  }
  for (int i = 0; i < b.kernel_events; ++i) {
    EXPECT_TRUE(log.Measure(4, kEvIpl, S("kernel"), S(b.kernel)));
  }
  EXPECT_TRUE(log.AddIpl(8, b.cmdline));
  if (!b.initramfs.empty()) {
    EXPECT_TRUE(log.Measure(9, kEvIpl, S("initramfs"), S(b.initramfs)));
  }
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) EXPECT_TRUE(log.AddSeparator(pcr));
  return log.bytes();
}

struct Parsed {
  EventLog log;
  std::vector<PcrBank> replay;
};

Parsed Parse(const Boot& b) {
  Bytes bytes = BuildLog(b);
  auto log = ParseEventLog(bytes);
  EXPECT_TRUE(log) << log.error().message();
  auto replay = ReplayEventLog(*log);
  EXPECT_TRUE(replay);
  return {*log, *replay};
}

Policy PolicyOf(const Boot& b, std::string id = "test") {
  auto p = PolicyFromEventLog(Parse(b).log, std::move(id));
  EXPECT_TRUE(p) << p.error().message();
  return *p;
}

std::vector<Check> Appraise(const Policy& p, const Boot& b) {
  Parsed parsed = Parse(b);
  return AppraiseEventLog(p, parsed.log, parsed.replay);
}

// A copy: callers often pass the temporary result of Appraise.
Check Find(const std::vector<Check>& checks, std::string_view name) {
  return FindCheck(checks, name);
}

// The check `name` failed, at `pcr`, saying `why`.
void ExpectFails(const std::vector<Check>& checks, std::string_view name, uint32_t pcr,
                 std::string_view why) {
  const Check& c = FindCheck(checks, name);
  EXPECT_EQ(c.status, CheckStatus::kFail) << name;
  EXPECT_EQ(c.pcr, pcr) << name;
  EXPECT_NE(c.reason.find(why), std::string::npos) << c.reason;
}

// The names of the checks that did not pass.
std::vector<std::string> Failed(const std::vector<Check>& checks) {
  std::vector<std::string> out;
  for (const Check& c : checks) {
    if (c.status == CheckStatus::kFail) out.push_back(c.name);
  }
  return out;
}

Result<Policy> ParseText(std::string_view text) { return ParsePolicy(S(text)); }

// ---------------------------------------------------------------- appraisal
TEST(Appraisal, ALogPassesItsOwnPolicyInEveryCheck) {
  Boot boot;
  boot.initramfs = "initramfs bytes";
  std::vector<Check> checks = Appraise(PolicyOf(boot), boot);
  ASSERT_EQ(checks.size(), 7u);
  const char* names[] = {"policy-crtm",      "policy-configuration", "policy-acpi", "policy-kernel",
                         "policy-initramfs", "policy-cmdline",       "policy-pcrs"};
  for (size_t i = 0; i < checks.size(); ++i) {
    EXPECT_EQ(checks[i].name, names[i]);
    EXPECT_EQ(checks[i].status, CheckStatus::kPass) << checks[i].name << ": " << checks[i].reason;
  }
  EXPECT_EQ(Find(checks, "policy-kernel").claim, Claim::kExecutables);
  EXPECT_EQ(Find(checks, "policy-configuration").claim, Claim::kConfiguration);
  EXPECT_EQ(Find(checks, "policy-acpi").claim, Claim::kConfiguration);
  EXPECT_EQ(Find(checks, "policy-crtm").claim, Claim::kHardware);
}

TEST(Appraisal, AnotherKernelFailsNamingPcr4AndTheEvent) {
  Boot boot;
  Policy policy = PolicyOf(boot);
  boot.kernel[0] ^= 1;
  std::vector<Check> checks = Appraise(policy, boot);
  EXPECT_EQ(Failed(checks), (std::vector<std::string>{"policy-kernel", "policy-pcrs"}));
  const Check k = Find(checks, "policy-kernel");
  // Events: header, StartupLocality, CRTM, configuration, 2 ACPI, kernel = index 6.
  EXPECT_EQ(k.pcr, 4u);
  EXPECT_EQ(k.event_index, 6u);
  EXPECT_NE(k.reason.find("PCR 4 event 6 (EV_IPL \"kernel\"): sha256 "), std::string::npos)
      << k.reason;
  EXPECT_NE(k.reason.find("is not an allowed kernel"), std::string::npos) << k.reason;
  EXPECT_EQ(Find(checks, "policy-pcrs").pcr, 4u);
}

TEST(Appraisal, SeveralAllowedKernelsForUpgrades) {
  Boot old_boot, new_boot;
  new_boot.kernel = "kernel image v2";
  Policy policy = PolicyOf(old_boot);
  Policy upgrade = PolicyOf(new_boot);
  for (auto& [bank, list] : upgrade.kernel) {
    policy.kernel[bank].push_back(list[0]);
  }
  policy.pcrs.clear();  // exact PCR 4 would pin one kernel
  EXPECT_TRUE(Failed(Appraise(policy, old_boot)).empty());
  EXPECT_TRUE(Failed(Appraise(policy, new_boot)).empty());
  EXPECT_EQ(Find(Appraise(policy, new_boot), "policy-pcrs").status, CheckStatus::kSkip);
}

TEST(Appraisal, AMissingOrSecondKernelEventFails) {
  Boot boot;
  Policy policy = PolicyOf(boot);
  boot.kernel_events = 0;
  const Check none = Find(Appraise(policy, boot), "policy-kernel");
  EXPECT_EQ(none.status, CheckStatus::kFail);
  EXPECT_NE(none.reason.find("PCR 4: no kernel event"), std::string::npos) << none.reason;
  boot.kernel_events = 2;
  std::vector<Check> checks = Appraise(policy, boot);
  const Check two = Find(checks, "policy-kernel");
  EXPECT_EQ(two.status, CheckStatus::kFail);
  EXPECT_EQ(two.event_index, 7u);
  EXPECT_NE(two.reason.find("a second kernel event"), std::string::npos) << two.reason;
}

TEST(Appraisal, CommandLineInitramfsAndCrtm) {
  Boot boot;
  Policy policy = PolicyOf(boot);  // no initramfs: "initramfs": null
  ASSERT_TRUE(policy.initramfs_present);
  ASSERT_FALSE(policy.initramfs);
  policy.pcrs.clear();

  Boot cmdline = boot;
  cmdline.cmdline = "console=ttyS0 init=/bin/sh";
  ExpectFails(Appraise(policy, cmdline), "policy-cmdline", 8, "is not an allowed command line");

  Boot with_initramfs = boot;
  with_initramfs.initramfs = "an initramfs";
  std::vector<Check> checks = Appraise(policy, with_initramfs);
  EXPECT_EQ(Failed(checks), std::vector<std::string>{"policy-initramfs"});
  EXPECT_EQ(Find(checks, "policy-initramfs").pcr, 9u);
  policy.initramfs_present = false;  // key absent: not appraised
  EXPECT_EQ(Find(Appraise(policy, with_initramfs), "policy-initramfs").status, CheckStatus::kSkip);

  Boot crtm = boot;
  crtm.version = "vmm 0.9.1";
  ExpectFails(Appraise(policy, crtm), "policy-crtm", 0, "not an allowed CRTM version");
  policy.crtm_versions.push_back("vmm 0.9.1");
  EXPECT_EQ(Find(Appraise(policy, crtm), "policy-crtm").status, CheckStatus::kPass);
}

TEST(Appraisal, ConfigurationAndAcpi) {
  Boot boot;
  Policy policy = PolicyOf(boot);
  policy.pcrs.clear();
  Boot bigger = boot;
  bigger.configuration = R"({"cpus":2,"memory":134217728,"tpm":"ephemeral"})";
  const Check c = Find(Appraise(policy, bigger), "policy-configuration");
  EXPECT_EQ(c.status, CheckStatus::kFail);
  EXPECT_EQ(c.pcr, 1u);
  EXPECT_EQ(c.event_index, 3u);
  // Several allowed shapes: the policy's JSON object, any key order, is hashed canonically.
  auto two = ParseText(SerializePolicy(policy));
  ASSERT_TRUE(two);
  two->configurations.push_back(R"({"cpus":2,"memory":134217728,"tpm":"ephemeral"})");
  EXPECT_EQ(Find(Appraise(*two, bigger), "policy-configuration").status, CheckStatus::kPass);

  Boot acpi = boot;
  acpi.acpi[1].second = "another fadt";
  const Check a = Find(Appraise(policy, acpi), "policy-acpi");
  EXPECT_EQ(a.status, CheckStatus::kFail);
  EXPECT_EQ(a.event_index, 5u);
  EXPECT_NE(a.reason.find("is not an allowed FACP table"), std::string::npos) << a.reason;
  Boot fewer = boot;
  fewer.acpi.pop_back();
  EXPECT_EQ(Find(Appraise(policy, fewer), "policy-acpi").status, CheckStatus::kFail);
  // An ACPI event whose data no longer names a table counts as a second configuration event.
  Boot relabelled = boot;
  relabelled.relabel_acpi_as_config = true;
  EXPECT_EQ(Find(Appraise(policy, relabelled), "policy-configuration").status, CheckStatus::kFail);
  policy.acpi.reset();
  EXPECT_EQ(Find(Appraise(policy, acpi), "policy-acpi").status, CheckStatus::kSkip);
}

TEST(Appraisal, AKernelDigestOfAnotherBankOnlyIsNotAppraisable) {
  Boot boot;
  Policy policy = PolicyOf(boot);
  policy.kernel = {{kAlgSha512, {Bytes(64, 1)}}};
  const Check k = Find(Appraise(policy, boot), "policy-kernel");
  EXPECT_EQ(k.status, CheckStatus::kFail);
  EXPECT_NE(k.reason.find("no bank the log has"), std::string::npos) << k.reason;
}

TEST(Appraisal, PolicyFromALogOfAnotherSchemeIsRefused) {
  Boot boot;
  boot.kernel_events = 0;
  auto p = PolicyFromEventLog(Parse(boot).log, "x");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("expected one kernel"), std::string::npos);
  // Configuration data that is not what was hashed.
  EventLogBuilder b;
  ASSERT_TRUE(b.AddSCrtmVersion(S("vmm 1")));
  ASSERT_TRUE(b.Measure(1, kEvPlatformConfigFlags, S("{}"), S("{\"cpus\":1}")));
  ASSERT_TRUE(b.Measure(4, kEvIpl, S("kernel"), S("k")));
  ASSERT_TRUE(b.AddIpl(8, "c"));
  auto log = ParseEventLog(b.bytes());
  ASSERT_TRUE(log);
  auto q = PolicyFromEventLog(*log, "x");
  ASSERT_FALSE(q);
  EXPECT_NE(q.error().message().find("does not match the digest"), std::string::npos)
      << q.error().message();
}

// ---------------------------------------------------------------- the document
TEST(PolicyDocument, SerializesStablyAndRoundTrips) {
  Boot boot;
  boot.initramfs = "initrd";
  Policy p = PolicyOf(boot, "tenant-a/v1");
  const std::string text = SerializePolicy(p);
  EXPECT_EQ(text.rfind("{\n  \"format\": \"vmm-policy/1\",\n  \"id\": \"tenant-a/v1\",", 0), 0u)
      << text;
  auto back = ParseText(text);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(SerializePolicy(*back), text);
  EXPECT_EQ(back->kernel, p.kernel);
  EXPECT_EQ(back->initramfs, p.initramfs);
  EXPECT_EQ(back->configurations, p.configurations);
  EXPECT_EQ(back->acpi, p.acpi);
  EXPECT_EQ(back->pcrs, p.pcrs);
  EXPECT_EQ(back->pcrs.at(kAlgSha384).size(), 10u);  // PCRs 0-9 in every bank
  EXPECT_TRUE(Failed(Appraise(*back, boot)).empty());
}

constexpr std::string_view kMinimal = R"({"format": "vmm-policy/1", "id": "m",
  "kernel": {"sha256": ["%K"]}, "cmdline": {"sha256": ["%K"]}, "configuration": {"cpus": 1}%X})";

std::string Doc(std::string_view extra, std::string kernel = std::string(64, 'a')) {
  std::string s(kMinimal);
  for (size_t at; (at = s.find("%K")) != std::string::npos;) s.replace(at, 2, kernel);
  s.replace(s.find("%X"), 2, extra);
  return s;
}

TEST(PolicyDocument, AMinimalPolicyAppraisesOnlyWhatItNames) {
  auto p = ParseText(Doc(""));
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_FALSE(p->initramfs_present);
  EXPECT_FALSE(p->acpi);
  EXPECT_TRUE(p->crtm_versions.empty());
  std::vector<Check> checks = Appraise(*p, Boot{});
  for (const char* skipped : {"policy-crtm", "policy-acpi", "policy-initramfs", "policy-pcrs"}) {
    EXPECT_EQ(Find(checks, skipped).status, CheckStatus::kSkip) << skipped;
  }
  EXPECT_EQ(Find(checks, "policy-kernel").status, CheckStatus::kFail);
}

TEST(PolicyDocument, RefusesEveryMalformedDocument) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "not valid JSON"},
      {"[]", "must be an object"},
      {Doc(R"(, "extra": 1)"), "unknown key 'extra'"},
      {R"({"format": "vmm-policy/1", "id": "m", "kernel": {}, "configuration": {}})",
       "missing key 'cmdline'"},
      {Doc(R"(, "id": "again")"), "the key \"id\" is repeated"},
      {Doc(R"(, "pcrs": {"sha256": {"1": "%", "1": "%"}})"), "the key \"1\" is repeated"},
      {Doc("", std::string(63, 'a')), "a sha256 digest is 64 hex digits, not 63"},
      {Doc("", std::string(96, 'a')), "not 96"},
      {Doc("", std::string(63, 'a') + "g"), "is not hex"},
      {Doc(R"(, "acpi": {"md5": {"DSDT": []}})"), "unknown bank 'md5'"},
      {Doc(R"(, "acpi": {"sha256": {"DSDTX": ["00"]}})"), "not a table signature"},
      {Doc(R"(, "pcrs": {"sha256": {"01": "00"}})"), "'01' is not a PCR"},
      {Doc(R"(, "pcrs": {"sha256": {"24": "00"}})"), "'24' is not a PCR"},
      {Doc(R"(, "crtm_versions": [])"), "non-empty array"},
      {Doc(R"(, "crtm_versions": [1])"), "non-empty array of strings"},
      {Doc(R"(, "initramfs": [])"), "initramfs must be an object"},
      {Doc(R"(, "initramfs": {"sha256": []})"), "non-empty array of digests"},
      {R"({"format": "vmm-policy/2", "id": "m", "kernel": {}, "cmdline": {},
          "configuration": {}})",
       "format must be"},
      {Doc(R"(, "id2": 1)"), "unknown key 'id2'"},
      {std::string(40, '[') + std::string(40, ']'), "nested deeper than"},
  };
  for (const auto& [text, want] : cases) {
    std::string doc = text;
    for (size_t at; (at = doc.find('%')) != std::string::npos;) doc.replace(at, 1, "00");
    auto p = ParseText(doc);
    ASSERT_FALSE(p) << doc;
    EXPECT_NE(p.error().message().find(want), std::string::npos)
        << doc << "\n -> " << p.error().message();
  }
  std::string huge = Doc(R"(, "acpi": null)");
  huge.insert(1, kMaxPolicyBytes, ' ');
  auto p = ParseText(huge);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("more than"), std::string::npos) << p.error().message();
  // Wrong types for each required key.
  const std::string k = "{\"sha256\": [\"" + std::string(64, 'a') + "\"]}";
  const std::string wrong_types[] = {
      R"({"format": "vmm-policy/1", "id": 5, "kernel": )" + k + R"(, "cmdline": )" + k +
          R"(, "configuration": {}})",
      R"({"format": "vmm-policy/1", "id": "m", "kernel": 1, "cmdline": )" + k +
          R"(, "configuration": {}})",
      R"({"format": "vmm-policy/1", "id": "m", "kernel": )" + k +
          R"(, "cmdline": [], "configuration": {}})",
      R"({"format": "vmm-policy/1", "id": "m", "kernel": )" + k + R"(, "cmdline": )" + k +
          R"(, "configuration": 3})",
      R"({"format": "vmm-policy/1", "id": "m", "kernel": )" + k + R"(, "cmdline": )" + k +
          R"(, "configuration": []})",
      R"({"format": "vmm-policy/1", "id": "m", "kernel": )" + k + R"(, "cmdline": )" + k +
          R"(, "configuration": {}, "pcrs": {"sha256": {"0": 0}}})",
  };
  for (const std::string& doc : wrong_types) EXPECT_FALSE(ParseText(doc)) << doc;
  const std::string right = R"({"format": "vmm-policy/1", "id": "m", "kernel": )" + k +
                            R"(, "cmdline": )" + k + R"(, "configuration": {}})";
  EXPECT_TRUE(ParseText(right)) << right;
}

}  // namespace
}  // namespace vmm::attestation
