// CheckLaunch refuses each rule by its name; RoleFor; PolicyForRequest admits exactly its VM.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "policy/launch_policy.h"

namespace vmm::policy {
namespace {

const std::string kKernel(64, 'a');
const std::string kInitramfs(64, 'b');

// A strict policy and a request it admits; each test breaks one rule.
LaunchPolicy Strict() {
  auto p = ParseLaunchPolicy(R"({
    "format": "vmm-launch-policy/1",
    "kernels": [{"sha256": ")" +
                             kKernel + R"("}],
    "initramfs": {"allow_none": false, "images": [{"sha256": ")" +
                             kInitramfs + R"("}]},
    "cmdline": {"allow_any": false, "params": ["console=ttyS0", "quiet", "loglevel=*",
                                               "init_on_free=1"]},
    "limits": {"max_cpus": 2, "max_memory": "1G"},
    "require": {"tpm": "required-measured-boot", "selinux": "enforcing",
                "landlock_abi_min": 3, "kvm_compat": "forbidden"},
    "devices": {"rng": false, "disks": {"max_count": 2, "images": [
      {"path": "/img/root.img", "read_only": true},
      {"path": "/scratch/", "read_only": false}]}},
    "roles": [{"uid": 0, "role": "admin"}, {"uid": 1000, "role": "auditor"},
              {"gid": 10, "role": "operator"}, {"gid": 20, "role": "tenant"}]
  })");
  EXPECT_TRUE(p.has_value()) << p.error().message();
  return *p;
}

LaunchRequest Admitted() {
  LaunchRequest r;
  r.kernel_sha256 = kKernel;
  r.initramfs_sha256 = kInitramfs;
  r.cmdline = "console=ttyS0 quiet loglevel=7";
  r.cpus = 2;
  r.memory = 1ull << 30;
  r.tpm = LaunchRequest::Tpm::kEphemeral;
  r.disks = {{"/img/root.img", true}, {"/scratch/a/b.img", false}};
  r.selinux_enforcing = true;
  r.landlock_abi = 4;
  return r;
}

std::vector<std::string> Rules(const LaunchPolicy& p, const LaunchRequest& r) {
  std::vector<std::string> rules;
  for (const Refusal& x : CheckLaunch(p, r)) {
    EXPECT_FALSE(x.message.empty()) << x.rule;
    rules.push_back(x.rule);
  }
  return rules;
}

using Rule = std::vector<std::string>;

TEST(CheckLaunch, AdmitsWhatThePolicyAllows) { EXPECT_EQ(Rules(Strict(), Admitted()), Rule{}); }

TEST(CheckLaunch, RefusesEachRuleByName) {
  struct Case {
    const char* rule;
    std::function<void(LaunchRequest&)> edit;
  };
  const std::vector<Case> cases = {
      {"kernels", [](LaunchRequest& r) { r.kernel_sha256 = std::string(64, 'c'); }},
      {"initramfs.allow_none", [](LaunchRequest& r) { r.initramfs_sha256.clear(); }},
      {"initramfs.images", [](LaunchRequest& r) { r.initramfs_sha256 = kKernel; }},
      {"cmdline.params", [](LaunchRequest& r) { r.cmdline += " init=/bin/sh"; }},
      {"cmdline.params", [](LaunchRequest& r) { r.cmdline = "console=ttyS1"; }},
      {"cmdline.params", [](LaunchRequest& r) { r.cmdline = "quiet=1"; }},   // bare only
      {"cmdline.params", [](LaunchRequest& r) { r.cmdline = "loglevel"; }},  // needs a value
      {"limits.max_cpus", [](LaunchRequest& r) { r.cpus = 3; }},
      {"limits.max_memory", [](LaunchRequest& r) { r.memory = (1ull << 30) + 4096; }},
      {"require.tpm", [](LaunchRequest& r) { r.tpm = LaunchRequest::Tpm::kOff; }},
      {"require.selinux", [](LaunchRequest& r) { r.selinux_enforcing = false; }},
      {"require.landlock_abi_min", [](LaunchRequest& r) { r.landlock_abi = 2; }},
      {"require.landlock_abi_min", [](LaunchRequest& r) { r.landlock_abi = 0; }},
      {"require.kvm_compat", [](LaunchRequest& r) { r.kvm_compat_on = true; }},
      {"devices.rng", [](LaunchRequest& r) { r.rng = true; }},
      {"devices.vsock", [](LaunchRequest& r) { r.vsock = true; }},
      {"devices.disks.images", [](LaunchRequest& r) { r.disks[0].path = "/img/other.img"; }},
      {"devices.disks.images", [](LaunchRequest& r) { r.disks[1].path = "/scratch"; }},
      {"devices.disks.images.read_only", [](LaunchRequest& r) { r.disks[0].read_only = false; }},
  };
  for (const Case& c : cases) {
    LaunchRequest r = Admitted();
    c.edit(r);
    EXPECT_EQ(Rules(Strict(), r), Rule{c.rule}) << c.rule;
  }
  LaunchRequest three = Admitted();
  three.disks.push_back({"/scratch/c.img", false});
  EXPECT_EQ(Rules(Strict(), three), Rule{"devices.disks.max_count"});
}

TEST(CheckLaunch, ReportsEveryBrokenRuleInOrder) {
  LaunchRequest r = Admitted();
  r.kernel_sha256 = std::string(64, 'c');
  r.cpus = 8;
  r.rng = true;
  EXPECT_EQ(Rules(Strict(), r), (Rule{"kernels", "limits.max_cpus", "devices.rng"}));
}

TEST(CheckLaunch, CommandLineIsSplitAsTheKernelSplitsIt) {
  LaunchRequest r = Admitted();
  r.cmdline = "  console=ttyS0\tquiet  loglevel=\"3 4\" init-on-free=1 ";  // '-' is '_'
  EXPECT_EQ(Rules(Strict(), r), Rule{});
  auto tokens = SplitCmdline("a=\"x y\" \"b=c d\" e= f -- g");
  ASSERT_EQ(tokens.size(), 6u);
  EXPECT_EQ(tokens[0].key, "a");
  EXPECT_EQ(tokens[0].value, "x y");
  EXPECT_EQ(tokens[1].key, "b");
  EXPECT_EQ(tokens[1].value, "c d");
  EXPECT_EQ(tokens[2].value, "");
  EXPECT_FALSE(tokens[3].value.has_value());
  EXPECT_EQ(tokens[4].key, "--");  // init's arguments are checked too
  // The refusal names the parameters it does not allow.
  r.cmdline = "quiet rdinit=/bin/sh";
  auto refusals = CheckLaunch(Strict(), r);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_NE(refusals[0].message.find("\"rdinit=/bin/sh\""), std::string::npos);
  EXPECT_EQ(refusals[0].message.find("quiet"), std::string::npos);
}

TEST(CheckLaunch, AllowAnyAdmitsAnyCommandLine) {
  LaunchPolicy p = Strict();
  p.cmdline_allow_any = true;
  LaunchRequest r = Admitted();
  r.cmdline = "init=/bin/sh anything=at all";
  EXPECT_EQ(Rules(p, r), Rule{});
}

TEST(RoleFor, UidWinsThenTheMostPrivilegedGroup) {
  const LaunchPolicy p = Strict();
  EXPECT_EQ(RoleFor(p, 0, 0, {}), ApiRole::kAdmin);
  const std::vector<uint32_t> groups = {20, 10};
  // uid 1000 is bound to auditor: its operator group does not raise it.
  EXPECT_EQ(RoleFor(p, 1000, 10, groups), ApiRole::kAuditor);
  EXPECT_EQ(RoleFor(p, 1001, 20, groups), ApiRole::kOperator);
  const std::vector<uint32_t> tenant_only = {20};
  EXPECT_EQ(RoleFor(p, 1001, 5, tenant_only), ApiRole::kTenant);
  EXPECT_EQ(RoleFor(p, 1001, 20, {}), ApiRole::kTenant);
  EXPECT_EQ(RoleFor(p, 1001, 5, {}), ApiRole::kNone);
  EXPECT_EQ(RoleName(ApiRole::kOperator), "operator");
  EXPECT_EQ(RoleName(ApiRole::kNone), "none");
}

// A tenant bound to one VM (by name or UUID) has no role on any other VM of the host.
TEST(RoleFor, ATenantBoundToAVmHasNoRoleOnAnother) {
  auto p = ParseLaunchPolicy(
      R"({"format": "vmm-launch-policy/1",
    "kernels": [{"sha256": "0000000000000000000000000000000000000000000000000000000000000000"}], "initramfs": {"allow_none": true, "images": []},
    "cmdline": {"allow_any": true, "params": []}, "limits": {"max_cpus": 1, "max_memory": "1G"},
    "require": {"tpm": "optional", "selinux": "any", "landlock_abi_min": 0, "kvm_compat": "allowed"},
    "devices": {"rng": true, "disks": {"max_count": 0, "images": []}},
    "roles": [{"uid": 0, "role": "admin"},
              {"uid": 1001, "role": "tenant", "vm": "web-1"},
              {"uid": 1001, "role": "auditor", "vm": "5b0c6f4e-8f2a-4c1d-9e3b-7a6d5c4b3a29"},
              {"gid": 50, "role": "operator", "vm": "db-1"}]})");
  ASSERT_TRUE(p) << p.error().ToString();
  EXPECT_EQ(RoleFor(*p, 1001, 100, {}, "web-1", "0b4e61b2-0000-4000-8000-5f0c1a2b3c4d"),
            ApiRole::kTenant);
  EXPECT_EQ(RoleFor(*p, 1001, 100, {}, "web-2", "0b4e61b2-0000-4000-8000-5f0c1a2b3c4d"),
            ApiRole::kNone);
  EXPECT_EQ(RoleFor(*p, 1001, 100, {}, "other", "5b0c6f4e-8f2a-4c1d-9e3b-7a6d5c4b3a29"),
            ApiRole::kAuditor);
  const std::vector<uint32_t> groups = {50};
  EXPECT_EQ(RoleFor(*p, 2000, 100, groups, "db-1", ""), ApiRole::kOperator);
  EXPECT_EQ(RoleFor(*p, 2000, 100, groups, "web-1", ""), ApiRole::kNone);
  EXPECT_EQ(RoleFor(*p, 0, 0, {}, "anything", ""), ApiRole::kAdmin);
  // The same uid twice on one VM is refused; an empty VM name too.
  for (const char* roles :
       {R"([{"uid": 7, "role": "tenant", "vm": "a"}, {"uid": 7, "role": "admin", "vm": "a"}])",
        R"([{"uid": 7, "role": "tenant", "vm": ""}])",
        R"([{"uid": 7, "role": "tenant", "vm": 5}])"}) {
    auto bad = ParseLaunchPolicy(std::string(R"({"format": "vmm-launch-policy/1",
    "kernels": [{"sha256": "0000000000000000000000000000000000000000000000000000000000000000"}],
    "initramfs": {"allow_none": true, "images": []},
    "cmdline": {"allow_any": true, "params": []}, "limits": {"max_cpus": 1, "max_memory": "1G"},
    "require": {"tpm": "optional", "selinux": "any", "landlock_abi_min": 0, "kvm_compat": "allowed"},
    "devices": {"rng": true, "disks": {"max_count": 0, "images": []}}, "roles": )") +
                                 roles + "}");
    ASSERT_FALSE(bad) << roles;
    EXPECT_NE(bad.error().ToString().find("roles["), std::string::npos) << bad.error().ToString();
  }
}

TEST(PolicyForRequest, AdmitsExactlyThatVm) {
  LaunchRequest r = Admitted();
  r.cmdline = "console=ttyS0 root=\"/dev/vda 1\" ro ro";
  r.rng = true;
  r.kvm_compat_on = true;
  r.selinux_enforcing = false;
  r.landlock_abi = 3;
  const std::string text = PolicyForRequest(r);
  auto p = ParseLaunchPolicy(text);
  ASSERT_TRUE(p.has_value()) << p.error().message() << "\n" << text;
  EXPECT_EQ(Rules(*p, r), Rule{});
  EXPECT_EQ(RoleFor(*p, 0, 0, {}), ApiRole::kAdmin);
  EXPECT_EQ(RoleFor(*p, 1000, 1000, {}), ApiRole::kNone);
  // Cgroup limits sized for the VM: its vCPUs' time, room beside its RAM, its tasks.
  ASSERT_TRUE(p->cgroup.has_value());
  ASSERT_TRUE(p->cgroup->cpu.has_value());
  EXPECT_EQ(p->cgroup->cpu->quota_us, r.cpus * kCgroupCpuPeriodDefault);
  EXPECT_EQ(p->cgroup->memory_max, r.memory + (256ull << 20));
  EXPECT_EQ(p->cgroup->pids_max, r.cpus + r.disks.size() + 2 * kCgroupPidsBase);

  // Any change to the VM is refused by its rule.
  auto changed = [&](std::function<void(LaunchRequest&)> edit) {
    LaunchRequest other = r;
    edit(other);
    return Rules(*p, other);
  };
  EXPECT_EQ(changed([](LaunchRequest& o) { o.kernel_sha256 = std::string(64, 'd'); }),
            Rule{"kernels"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.initramfs_sha256.clear(); }),
            Rule{"initramfs.allow_none"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.cmdline += " single"; }), Rule{"cmdline.params"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.cmdline = "root=/dev/vda"; }), Rule{"cmdline.params"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.cpus = 3; }), Rule{"limits.max_cpus"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.memory *= 2; }), Rule{"limits.max_memory"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.tpm = LaunchRequest::Tpm::kOff; }),
            Rule{"require.tpm"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.landlock_abi = 2; }),
            Rule{"require.landlock_abi_min"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.disks[0].read_only = false; }),
            Rule{"devices.disks.images.read_only"});
  EXPECT_EQ(changed([](LaunchRequest& o) { o.disks[1].path = "/scratch/a/c.img"; }),
            Rule{"devices.disks.images"});

  // A VM without TPM, compat, rng or disks gets a policy that forbids them.
  LaunchRequest bare;
  bare.kernel_sha256 = kKernel;
  bare.memory = 256ull << 20;
  auto q = ParseLaunchPolicy(PolicyForRequest(bare));
  ASSERT_TRUE(q.has_value()) << q.error().message();
  EXPECT_EQ(Rules(*q, bare), Rule{});
  LaunchRequest more = bare;
  more.rng = true;
  more.vsock = true;
  more.kvm_compat_on = true;
  more.initramfs_sha256 = kInitramfs;
  more.disks = {{"/x.img", true}};
  EXPECT_EQ(Rules(*q, more),
            (Rule{"initramfs.images", "require.kvm_compat", "devices.rng", "devices.vsock",
                  "devices.disks.max_count", "devices.disks.images"}));
  // A VM with a vsock device gets a policy that allows one.
  LaunchRequest with_vsock = bare;
  with_vsock.vsock = true;
  auto v = ParseLaunchPolicy(PolicyForRequest(with_vsock));
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_TRUE(v->vsock_allowed);
  EXPECT_EQ(Rules(*v, with_vsock), Rule{});
}

}  // namespace
}  // namespace vmm::policy
