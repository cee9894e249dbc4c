// ParseLaunchPolicy: the examples parse; every malformed input is refused naming its key.
#include "policy/launch_policy.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "base/hex.h"

namespace vmm::policy {
namespace {

using nlohmann::json;

const std::string kDigestA(64, 'a');
const std::string kDigestB(64, 'b');

json ValidPolicy() {
  return json::parse(R"({
    "format": "vmm-launch-policy/1",
    "kernels": [{"sha256": ")" +
                     kDigestA + R"(", "name": "k"}],
    "initramfs": {"allow_none": true, "images": []},
    "cmdline": {"allow_any": false, "params": ["console=ttyS0", "quiet", "loglevel=*"]},
    "limits": {"max_cpus": 2, "max_memory": "1G"},
    "require": {"tpm": "optional", "selinux": "any", "landlock_abi_min": 0,
                "kvm_compat": "allowed"},
    "devices": {"rng": false, "disks": {"max_count": 1, "images": []}},
    "roles": [{"uid": 0, "role": "admin"}]
  })");
}

// The error of parsing `doc`, or "" when it parses.
std::string ErrorOf(const std::string& text) {
  auto r = ParseLaunchPolicy(text);
  if (r) return "";
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  return r.error().message();
}
std::string ErrorOf(const json& doc) { return ErrorOf(doc.dump()); }
std::string ErrorOf(const char* text) { return ErrorOf(std::string(text)); }

TEST(LaunchPolicy, EveryExampleParses) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(VMM_POLICY_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto p = ParseLaunchPolicy(text);
    EXPECT_TRUE(p.has_value()) << entry.path() << ": " << p.error().message();
    ++count;
  }
  EXPECT_GE(count, 2) << "the strict and the permissive example";
}

TEST(LaunchPolicy, ParsesEveryField) {
  json doc = ValidPolicy();
  doc["initramfs"]["images"] = json::array({{{"sha256", kDigestB}}});
  doc["devices"]["disks"]["images"] = json::array({{{"path", "/img/root.img"}, {"read_only", true}},
                                                   {{"path", "/scratch/"}, {"read_only", false}}});
  doc["roles"].push_back({{"gid", 100}, {"role", "auditor"}});
  auto p = ParseLaunchPolicy(doc.dump());
  ASSERT_TRUE(p.has_value()) << p.error().message();
  ASSERT_EQ(p->kernels.size(), 1u);
  EXPECT_EQ(p->kernels[0].sha256, kDigestA);
  EXPECT_EQ(p->kernels[0].name, "k");
  EXPECT_TRUE(p->initramfs_allow_none);
  ASSERT_EQ(p->initramfs.size(), 1u);
  ASSERT_EQ(p->cmdline_params.size(), 3u);
  EXPECT_EQ(p->cmdline_params[0].kind, CmdlinePattern::Kind::kExact);
  EXPECT_EQ(p->cmdline_params[1].kind, CmdlinePattern::Kind::kBare);
  EXPECT_EQ(p->cmdline_params[2].kind, CmdlinePattern::Kind::kAnyValue);
  EXPECT_EQ(p->max_cpus, 2u);
  EXPECT_EQ(p->max_memory, 1ull << 30);
  EXPECT_EQ(p->tpm, TpmRequirement::kOptional);
  EXPECT_FALSE(p->selinux_enforcing);
  EXPECT_TRUE(p->kvm_compat_allowed);
  ASSERT_EQ(p->disk_images.size(), 2u);
  EXPECT_EQ(p->disk_images[0].match, DiskRule::Match::kExact);
  EXPECT_EQ(p->disk_images[1].match, DiskRule::Match::kUnder);
  ASSERT_EQ(p->roles.size(), 2u);
  EXPECT_EQ(p->roles[1].gid, 100u);
  EXPECT_EQ(p->roles[1].role, ApiRole::kAuditor);
}

TEST(LaunchPolicy, ParsesCgroupLimits) {
  json doc = ValidPolicy();  // 2 CPUs, 1 GiB, 1 disk
  doc["limits"]["cgroup"] = {{"cpu_max", 1.5}, {"memory_max", "1088M"}, {"pids_max", 11}};
  auto p = ParseLaunchPolicy(doc.dump());
  ASSERT_TRUE(p.has_value()) << p.error().message();
  ASSERT_TRUE(p->cgroup.has_value());
  ASSERT_TRUE(p->cgroup->cpu.has_value());
  EXPECT_EQ(CpuMaxText(*p->cgroup->cpu), "150000 100000");
  EXPECT_EQ(p->cgroup->memory_max, (1ull << 30) + kCgroupMemoryOverhead);
  EXPECT_EQ(p->cgroup->pids_max, 2 + 1 + kCgroupPidsBase);

  doc["limits"]["cgroup"] = {{"cpu_max", "50000 250000"}};
  p = ParseLaunchPolicy(doc.dump());
  ASSERT_TRUE(p.has_value()) << p.error().message();
  EXPECT_EQ(CpuMaxText(*p->cgroup->cpu), "50000 250000");
  EXPECT_FALSE(p->cgroup->memory_max.has_value());
  EXPECT_FALSE(p->cgroup->pids_max.has_value());

  doc["limits"].erase("cgroup");
  p = ParseLaunchPolicy(doc.dump());
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->cgroup.has_value());
}

TEST(LaunchPolicy, DigestIsSha256OfTheExactBytes) {
  const std::string text = ValidPolicy().dump();
  auto p = ParseLaunchPolicy(text);
  ASSERT_TRUE(p.has_value());
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr), 1);
  EXPECT_EQ(p->digest, HexBytes(std::span<const uint8_t>(md, len)));
  // The same policy with other white space is another file, so another digest.
  auto spaced = ParseLaunchPolicy(text + "\n");
  ASSERT_TRUE(spaced.has_value());
  EXPECT_NE(spaced->digest, p->digest);
}

TEST(LaunchPolicy, RefusesWhatIsNotAPolicy) {
  EXPECT_NE(ErrorOf("").find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf("[]").find("must be an object"), std::string::npos);
  std::string deep = "{\"id\":" + std::string(20, '[') + std::string(20, ']') + "}";
  EXPECT_NE(ErrorOf(deep).find("nested deeper"), std::string::npos);
  json doc = ValidPolicy();
  doc["format"] = "vmm-launch-policy/2";
  EXPECT_NE(ErrorOf(doc).find("format: \"vmm-launch-policy/2\" is not"), std::string::npos);
}

TEST(LaunchPolicy, RefusesAFileOverOneMebibyte) {
  std::string text = ValidPolicy().dump();
  text.insert(text.size() - 1, std::string(kMaxLaunchPolicyBytes, ' '));
  EXPECT_NE(ErrorOf(text).find("more than the 1048576 allowed"), std::string::npos);
}

TEST(LaunchPolicy, RefusesARepeatedKey) {
  std::string text = ValidPolicy().dump();
  text.insert(1, R"("id":"a","id":"b",)");
  EXPECT_NE(ErrorOf(text).find("the key \"id\" is repeated"), std::string::npos);
}

struct BadCase {
  const char* name;
  std::function<void(json&)> edit;
  const char* error;  // a part of the message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class LaunchPolicyBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(LaunchPolicyBad, IsRefusedNamingTheKey) {
  json doc = ValidPolicy();
  GetParam().edit(doc);
  const std::string error = ErrorOf(doc);
  EXPECT_NE(error.find(GetParam().error), std::string::npos) << "got: " << error;
}

const BadCase kBadCases[] = {
    {"UnknownTopKey", [](json& d) { d["extra"] = 1; }, "extra: unknown key"},
    {"UnknownNestedKey", [](json& d) { d["limits"]["max_disk"] = 1; },
     "limits.max_disk: unknown key"},
    {"MissingSection", [](json& d) { d.erase("require"); }, "the key \"require\" is missing"},
    {"MissingNestedKey", [](json& d) { d["require"].erase("tpm"); },
     "require: the key \"tpm\" is missing"},
    {"FormatNotString", [](json& d) { d["format"] = 1; }, "format: must be a string, not a number"},
    {"KernelsNotArray", [](json& d) { d["kernels"] = json::object(); },
     "kernels: must be an array, not an object"},
    {"NoKernels", [](json& d) { d["kernels"] = json::array(); }, "at least one kernel"},
    {"ShortDigest", [](json& d) { d["kernels"][0]["sha256"] = "abcd"; },
     "kernels[0].sha256: must be a SHA-256 digest"},
    {"UppercaseDigest", [](json& d) { d["kernels"][0]["sha256"] = std::string(64, 'A'); },
     "kernels[0].sha256: must be a SHA-256 digest"},
    {"NonHexDigest", [](json& d) { d["kernels"][0]["sha256"] = std::string(64, 'g'); },
     "must be a SHA-256 digest"},
    {"DigestTwice",
     [](json& d) {
       d["kernels"].push_back({{"sha256", kDigestA}});
     },
     "kernels[1].sha256: listed twice"},
    {"UnknownImageKey", [](json& d) { d["kernels"][0]["path"] = "/boot/vmlinuz"; },
     "kernels[0].path: unknown key"},
    {"NameWithControl", [](json& d) { d["kernels"][0]["name"] = "a\nb"; },
     "kernels[0].name: contains a control character"},
    {"BadInitramfsDigest",
     [](json& d) {
       d["initramfs"]["images"] = json::array({{{"sha256", "x"}}});
     },
     "initramfs.images[0].sha256"},
    {"AllowNoneNotBool", [](json& d) { d["initramfs"]["allow_none"] = "yes"; },
     "initramfs.allow_none: must be true or false, not a string"},
    {"EmptyPattern", [](json& d) { d["cmdline"]["params"].push_back(""); },
     "cmdline.params[3]: an empty pattern"},
    {"PatternTwice", [](json& d) { d["cmdline"]["params"].push_back("quiet"); },
     "cmdline.params[3]: \"quiet\" is listed twice"},
    {"PatternNotString", [](json& d) { d["cmdline"]["params"].push_back(7); },
     "cmdline.params[3]: must be a string"},
    {"ZeroCpus", [](json& d) { d["limits"]["max_cpus"] = 0; }, "limits.max_cpus: 0 is outside"},
    {"NegativeCpus", [](json& d) { d["limits"]["max_cpus"] = -1; },
     "limits.max_cpus: must not be negative"},
    {"FractionalCpus", [](json& d) { d["limits"]["max_cpus"] = 1.5; },
     "limits.max_cpus: must be a whole number"},
    {"BadSize", [](json& d) { d["limits"]["max_memory"] = "4X"; },
     "limits.max_memory: \"4X\" is not a size"},
    {"SizeOverflow", [](json& d) { d["limits"]["max_memory"] = "99999999999999T"; },
     "limits.max_memory: too large"},
    {"ZeroMemory", [](json& d) { d["limits"]["max_memory"] = "0G"; }, "must be more than 0"},
    {"MemoryBool", [](json& d) { d["limits"]["max_memory"] = true; },
     "limits.max_memory: must be bytes or a size"},
    {"CgroupUnknownKey",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_weight", 100}};
     },
     "limits.cgroup.cpu_weight: unknown key"},
    {"CgroupEmpty", [](json& d) { d["limits"]["cgroup"] = json::object(); },
     "limits.cgroup: names no limit"},
    {"CgroupNotObject", [](json& d) { d["limits"]["cgroup"] = 2; },
     "limits.cgroup: must be an object"},
    {"CgroupCpuZero",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_max", 0}};
     },
     "limits.cgroup.cpu_max: CPUs must be 0.01 to 65535"},
    {"CgroupCpuBool",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_max", true}};
     },
     "limits.cgroup.cpu_max: must be a number of CPUs"},
    {"CgroupCpuMaxWord",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_max", "max 100000"}};
     },
     "limits.cgroup.cpu_max: \"max 100000\" is not cpu.max text"},
    {"CgroupCpuTwoSpaces",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_max", "1000  1000"}};
     },
     "is not cpu.max text"},
    {"CgroupCpuLongNumber",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_max", "99999999999999999999 100000"}};
     },
     "is not cpu.max text"},
    {"CgroupCpuShortPeriod",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_max", "1000 999"}};
     },
     "limits.cgroup.cpu_max: the period 999 is outside 1000..1000000"},
    {"CgroupCpuSmallQuota",
     [](json& d) {
       d["limits"]["cgroup"] = {{"cpu_max", "999 100000"}};
     },
     "limits.cgroup.cpu_max: the quota 999 is outside"},
    {"CgroupMemoryBelowGuest",
     [](json& d) {
       d["limits"]["cgroup"] = {{"memory_max", "1G"}};
     },
     "limits.cgroup.memory_max: 1024 MiB is less than limits.max_memory (1024 MiB) + 64 MiB"},
    {"CgroupMemoryBadSize",
     [](json& d) {
       d["limits"]["cgroup"] = {{"memory_max", "2Gi"}};
     },
     "limits.cgroup.memory_max: \"2Gi\" is not a size"},
    {"CgroupPidsTooFew",
     [](json& d) {
       d["limits"]["cgroup"] = {{"pids_max", 10}};
     },
     "limits.cgroup.pids_max: 10 is less than limits.max_cpus + devices.disks.max_count + 8 = 11"},
    {"CgroupPidsHuge",
     [](json& d) {
       d["limits"]["cgroup"] = {{"pids_max", 5000000}};
     },
     "limits.cgroup.pids_max: 5000000 is outside 1..4194304"},
    {"CgroupPidsString",
     [](json& d) {
       d["limits"]["cgroup"] = {{"pids_max", "64"}};
     },
     "limits.cgroup.pids_max: must be a whole number"},
    {"UnknownTpm", [](json& d) { d["require"]["tpm"] = "required"; },
     "require.tpm: \"required\" is not one of \"required-measured-boot\", \"optional\""},
    {"UnknownSelinux", [](json& d) { d["require"]["selinux"] = "permissive"; },
     "require.selinux: \"permissive\" is not one of"},
    {"LandlockString", [](json& d) { d["require"]["landlock_abi_min"] = "3"; },
     "require.landlock_abi_min: must be a whole number, not a string"},
    {"KvmCompatBool", [](json& d) { d["require"]["kvm_compat"] = true; },
     "require.kvm_compat: must be a string"},
    {"RngString", [](json& d) { d["devices"]["rng"] = "on"; },
     "devices.rng: must be true or false"},
    {"DiskCountHuge", [](json& d) { d["devices"]["disks"]["max_count"] = 5000; },
     "devices.disks.max_count: 5000 is outside"},
    {"RelativeDisk",
     [](json& d) {
       d["devices"]["disks"]["images"] = json::array({{{"path", "img"}, {"read_only", true}}});
     },
     "devices.disks.images[0].path: must be an absolute path"},
    {"DotDotDisk",
     [](json& d) {
       d["devices"]["disks"]["images"] =
           json::array({{{"path", "/a/../etc/x"}, {"read_only", true}}});
     },
     "devices.disks.images[0].path: must be a plain path"},
    {"DiskWithoutReadOnly",
     [](json& d) {
       d["devices"]["disks"]["images"] = json::array({{{"path", "/a"}}});
     },
     "devices.disks.images[0]: the key \"read_only\" is missing"},
    {"DiskTwice",
     [](json& d) {
       d["devices"]["disks"]["images"] = json::array(
           {{{"path", "/a"}, {"read_only", true}}, {{"path", "/a"}, {"read_only", false}}});
     },
     "devices.disks.images[1].path: listed twice"},
    {"RoleBothIds", [](json& d) { d["roles"][0]["gid"] = 0; },
     "roles[0]: needs exactly one of \"uid\" and \"gid\""},
    {"RoleNoId", [](json& d) { d["roles"][0].erase("uid"); }, "roles[0]: needs exactly one of"},
    {"UnknownRole", [](json& d) { d["roles"][0]["role"] = "root"; },
     "roles[0].role: \"root\" is not one of \"admin\", \"operator\", \"tenant\", \"auditor\""},
    {"RoleUidMinusOne", [](json& d) { d["roles"][0]["uid"] = 4294967295u; },
     "roles[0].uid: 4294967295 is outside"},
    {"RoleUidTwice",
     [](json& d) {
       d["roles"].push_back({{"uid", 0}, {"role", "auditor"}});
     },
     "roles[1]: uid 0 already has a role"},
    {"RoleUnknownKey", [](json& d) { d["roles"][0]["context"] = "x"; },
     "roles[0].context: unknown key"},
    {"RolesNotArray", [](json& d) { d["roles"] = json::object(); }, "roles: must be an array"},
};

INSTANTIATE_TEST_SUITE_P(All, LaunchPolicyBad, ::testing::ValuesIn(kBadCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace vmm::policy
