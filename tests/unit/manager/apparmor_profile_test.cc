// One VM's generated AppArmor profiles (ARCHITECTURE.md "AppArmor"): each process's profile names
// only its own files, and paths that the profile language would misread are refused.
#include "vmm/manager/apparmor_profile.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "vmm/manager/apparmor_vm.h"
#include "vmm/manager/config.h"

namespace vmm {
namespace {

// The text of one profile "profile NAME ... }" within the generated file.
std::string ProfileText(const std::string& all, const std::string& name) {
  size_t at = all.find("profile " + name + " ");
  if (at == std::string::npos) return "";
  return all.substr(at, all.find("\n}\n", at) - at);
}

AppArmorVm TwoDisksAndATpm() {
  AppArmorVm vm;
  vm.id = "0123abcd";
  vm.devices.push_back({.name = "blk0", .role = "device-blk", .image = "/srv/vm a/disk0.img"});
  vm.devices.push_back(
      {.name = "blk1", .role = "device-blk", .image = "/srv/b,c#d.img", .readonly = true});
  vm.devices.push_back({.name = "rng0", .role = "device-rng"});
  vm.vtpm = true;
  vm.tpm_state_dir = "/var/lib/vmm/vm1/tpm";
  return vm;
}

TEST(AppArmorProfile, EachProcessNamesOnlyItsOwnFiles) {
  auto text = VmAppArmorProfiles(TwoDisksAndATpm());
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  std::string blk0 = ProfileText(*text, "vmm-0123abcd-blk0");
  std::string blk1 = ProfileText(*text, "vmm-0123abcd-blk1");
  std::string rng0 = ProfileText(*text, "vmm-0123abcd-rng0");
  std::string vtpm = ProfileText(*text, "vmm-0123abcd-vtpm");
  std::string vcpu = ProfileText(*text, "vmm-0123abcd-vcpu");
  for (const std::string* p : {&blk0, &blk1, &rng0, &vtpm, &vcpu})
    ASSERT_FALSE(p->empty()) << *text;

  EXPECT_NE(blk0.find("\"/srv/vm a/disk0.img\" rwk,"), std::string::npos) << blk0;
  EXPECT_EQ(blk0.find("disk1"), std::string::npos);
  EXPECT_EQ(blk0.find("b,c#d"), std::string::npos);
  EXPECT_NE(blk1.find("\"/srv/b,c#d.img\" rk,"), std::string::npos) << blk1;  // read-only
  EXPECT_EQ(blk1.find("disk0"), std::string::npos);
  for (const std::string* p : {&blk0, &blk1, &rng0}) {
    EXPECT_NE(p->find("include <abstractions/vmm/device>"), std::string::npos);
    EXPECT_EQ(p->find("/var/lib/vmm/vm1/tpm"), std::string::npos);
  }
  EXPECT_NE(vtpm.find("include <abstractions/vmm/vtpm>"), std::string::npos);
  EXPECT_NE(vtpm.find("\"/var/lib/vmm/vm1/tpm/\" r,"), std::string::npos) << vtpm;
  EXPECT_NE(vtpm.find("\"/var/lib/vmm/vm1/tpm/*\" rwk,"), std::string::npos) << vtpm;
  EXPECT_EQ(vtpm.find(".img"), std::string::npos);
  EXPECT_NE(vcpu.find("include <abstractions/vmm/vcpu>"), std::string::npos);
  EXPECT_EQ(vcpu.find(".img"), std::string::npos);
  EXPECT_EQ(vcpu.find("/var/lib/vmm/vm1/tpm"), std::string::npos);
}

TEST(AppArmorProfile, NamesJoinTheVmIdAndTheProcess) {
  EXPECT_EQ(AppArmorProfileName("0123abcd", "blk0"), "vmm-0123abcd-blk0");
  EXPECT_EQ(AppArmorProfileName("ff", "vtpm"), "vmm-ff-vtpm");
}

TEST(AppArmorProfile, NoVtpmProfileWithoutATpm) {
  AppArmorVm vm = TwoDisksAndATpm();
  vm.vtpm = false;
  auto text = VmAppArmorProfiles(vm);
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  EXPECT_EQ(text->find("-vtpm"), std::string::npos);
}

TEST(AppArmorProfile, RefusesPathsTheProfileLanguageWouldMisread) {
  for (const char* bad :
       {"/srv/*.img", "/srv/a?.img", "/srv/[ab].img", "/srv/{a,b}.img", "/srv/a}.img",
        "/srv/^a.img", "/srv/a\".img", "/srv/a\\\".img", "/srv/a\n\"/** rwx,\n\".img",
        "/srv/a\t.img", "/srv/a\x7f.img", "relative.img", "", "/srv//a.img", "/srv/./a.img",
        "/srv/../etc/shadow", "/srv/..", "/srv/."}) {
    AppArmorVm vm;
    vm.id = "ab";
    vm.devices.push_back({.name = "blk0", .role = "device-blk", .image = bad});
    auto text = VmAppArmorProfiles(vm);
    EXPECT_FALSE(text.has_value()) << "accepted '" << bad << "':\n" << *text;
    if (!text) {
      EXPECT_EQ(text.error().kind(), ErrorKind::kInvalidArgument);
    }
  }
}

TEST(AppArmorProfile, QuotesOtherwiseUnusualPaths) {
  for (const char* ok :
       {"/srv/a b.img", "/srv/a,b.img", "/srv/#a.img", "/srv/\xc3\xa9t\xc3\xa9.img", "/srv/a@b.img",
        "/srv/a$b.img", "/srv/...img"}) {
    auto q = AppArmorQuotedPath(ok);
    ASSERT_TRUE(q.has_value()) << ok << ": " << q.error().ToString();
    EXPECT_EQ(*q, "\"" + std::string(ok) + "\"");
  }
}

TEST(AppArmorProfile, AVsockDeviceGetsItsSocketDirectoryOnly) {
  AppArmorVm vm = TwoDisksAndATpm();
  vm.devices.push_back(
      {.name = "vsock0", .role = "device-vsock", .socket_dir = "/run/vmm/vsock/vm 1/"});
  auto text = VmAppArmorProfiles(vm);
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  std::string vsock0 = ProfileText(*text, "vmm-0123abcd-vsock0");
  ASSERT_FALSE(vsock0.empty()) << *text;
  EXPECT_NE(vsock0.find("include <abstractions/vmm/vsock>"), std::string::npos) << vsock0;
  EXPECT_NE(vsock0.find("\"/run/vmm/vsock/vm 1/\" r,"), std::string::npos) << vsock0;
  EXPECT_NE(vsock0.find("\"/run/vmm/vsock/vm 1/*\" rw,"), std::string::npos) << vsock0;
  EXPECT_EQ(vsock0.find(".img"), std::string::npos);
  EXPECT_EQ(vsock0.find("/var/lib/vmm/vm1/tpm"), std::string::npos);
  // No other process of the VM names the socket directory.
  for (const char* other : {"vcpu", "blk0", "blk1", "rng0", "vtpm"}) {
    std::string p = ProfileText(*text, AppArmorProfileName(vm.id, other));
    ASSERT_FALSE(p.empty()) << other;
    EXPECT_EQ(p.find("/run/vmm/vsock"), std::string::npos) << other;
  }
}

TEST(AppArmorProfile, RefusesAVsockDeviceWithoutADirectoryOrABadOne) {
  AppArmorVm vm;
  vm.id = "ab";
  vm.devices = {{.name = "vsock0", .role = "device-vsock"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "vsock0", .role = "device-vsock", .socket_dir = "/run/a*"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "vsock0", .role = "device-vsock", .socket_dir = "run/a"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "rng0", .role = "device-rng", .socket_dir = "/run/a"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "vsock0", .role = "device-vsock", .image = "/a", .socket_dir = "/run/a"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
}

TEST(AppArmorProfile, RefusesBadIdsNamesAndRoles) {
  AppArmorVm vm;
  for (const char* id : {"", "AB", "a-b", "a b", "a/b", "0123456789abcdef0123456789abcdef0"}) {
    vm.id = id;
    EXPECT_FALSE(VmAppArmorProfiles(vm).has_value()) << id;
  }
  vm.id = "ab";
  vm.devices = {{.name = "blk-0", .role = "device-blk", .image = "/a"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "vtpm", .role = "device-rng"}};  // would clash with the vTPM's profile
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "blk0", .role = "vcpu", .image = "/a"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "blk0", .role = "device-blk"}};  // blk without an image
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {{.name = "rng0", .role = "device-rng", .image = "/a"}};
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
  vm.devices = {};
  vm.vcpu_role = "device";
  EXPECT_FALSE(VmAppArmorProfiles(vm).has_value());
}

TEST(AppArmorVm, ResolvesTheConfigurationsPaths) {
  char dir[] = "/tmp/vmm-aa-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string d = dir;
  const std::string image = d + "/disk.img";
  ASSERT_EQ(close(creat(image.c_str(), 0600)), 0);
  ASSERT_EQ(symlink(image.c_str(), (d + "/link.img").c_str()), 0);
  VmConfig cfg;
  cfg.disks.push_back({.path = d + "/./link.img"});
  cfg.rng = true;
  ASSERT_TRUE(ApplyFlag(cfg, "tpm", "state=" + d + "/tpm,key=" + d + "/key").has_value());
  auto vm = AppArmorVmFor(cfg, /*kvm_compat=*/true, "ab");
  ASSERT_TRUE(vm.has_value()) << vm.error().ToString();
  EXPECT_EQ(vm->vcpu_role, "vcpu-kvm-pvm");
  ASSERT_EQ(vm->devices.size(), 2u);
  EXPECT_EQ(vm->devices[0].image, image);  // the symlink's target: what AppArmor checks
  EXPECT_EQ(vm->devices[1].name, "rng0");
  EXPECT_TRUE(vm->vtpm);
  // The state directory does not exist yet (the manager creates it): its parent resolves.
  EXPECT_EQ(vm->tpm_state_dir, d + "/tpm");
  EXPECT_TRUE(VmAppArmorProfiles(*vm).has_value());

  // A vsock device gets the resolved directory of its socket, which it binds.
  ASSERT_EQ(mkdir((d + "/v").c_str(), 0700), 0);
  ASSERT_EQ(symlink((d + "/v").c_str(), (d + "/vlink").c_str()), 0);
  cfg.vsock = VsockConfig{.cid = 5, .socket = d + "/vlink/v.sock"};
  auto with_vsock = AppArmorVmFor(cfg, false, "ab");
  ASSERT_TRUE(with_vsock.has_value()) << with_vsock.error().ToString();
  ASSERT_EQ(with_vsock->devices.size(), 3u);
  EXPECT_EQ(with_vsock->devices[2].role, "device-vsock");
  EXPECT_EQ(with_vsock->devices[2].socket_dir, d + "/v");
  EXPECT_TRUE(VmAppArmorProfiles(*with_vsock).has_value());
  cfg.vsock->socket = d + "/nodir/v.sock";
  EXPECT_FALSE(AppArmorVmFor(cfg, false, "ab").has_value());
  cfg.vsock.reset();
  unlink((d + "/vlink").c_str());
  rmdir((d + "/v").c_str());

  cfg.disks[0].path = d + "/missing.img";
  EXPECT_FALSE(AppArmorVmFor(cfg, false, "ab").has_value());
  unlink((d + "/link.img").c_str());
  unlink(image.c_str());
  rmdir(dir);
}

TEST(AppArmorVm, ModesParse) {
  EXPECT_EQ(*ParseAppArmorMode("auto"), AppArmorMode::kAuto);
  EXPECT_EQ(*ParseAppArmorMode("on"), AppArmorMode::kOn);
  EXPECT_EQ(*ParseAppArmorMode("off"), AppArmorMode::kOff);
  EXPECT_FALSE(ParseAppArmorMode("yes").has_value());
}

}  // namespace
}  // namespace vmm
