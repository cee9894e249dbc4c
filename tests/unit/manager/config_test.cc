#include "vmm/manager/config.h"

#include <gtest/gtest.h>

namespace vmm {
namespace {

const HostLimits kHost{8ull << 30, kMaxVcpus};

VmConfig Valid() {
  VmConfig cfg;
  cfg.kernel = "/boot/vmlinux";
  return cfg;
}

void ExpectInvalid(const Result<void>& r, const std::string& fragment) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(r.error().message().find(fragment), std::string::npos) << r.error().message();
}

TEST(ParseSize, AcceptsSuffixesAndCloudHypervisorForm) {
  EXPECT_EQ(ParseSize("512M").value(), 512ull << 20);
  EXPECT_EQ(ParseSize("size=2G").value(), 2ull << 30);
  EXPECT_EQ(ParseSize("4096").value(), 4096u);
  EXPECT_EQ(ParseSize("1k").value(), 1024u);
}

TEST(ParseSize, RejectsGarbageAndOverflow) {
  EXPECT_FALSE(ParseSize("").has_value());
  EXPECT_FALSE(ParseSize("12X").has_value());
  EXPECT_FALSE(ParseSize("-1M").has_value());
  EXPECT_FALSE(ParseSize("99999999999999999999").has_value());
  EXPECT_FALSE(ParseSize("18446744073709551615T").has_value());
  EXPECT_FALSE(ParseSize("M").has_value());
}

TEST(ApplyFlag, CpusAcceptsPlainAndBootForms) {
  VmConfig cfg;
  ASSERT_TRUE(ApplyFlag(cfg, "cpus", "boot=3").has_value());
  EXPECT_EQ(cfg.cpus, 3u);
  ASSERT_TRUE(ApplyFlag(cfg, "cpus", "2").has_value());
  EXPECT_EQ(cfg.cpus, 2u);
  ExpectInvalid(ApplyFlag(cfg, "cpus", "boot=2,max=4"), "only 'boot=N'");
  ExpectInvalid(ApplyFlag(cfg, "cpus", "two"), "not a whole number");
}

TEST(ApplyFlag, SerialModes) {
  VmConfig cfg;
  ASSERT_TRUE(ApplyFlag(cfg, "serial", "file=/tmp/x").has_value());
  EXPECT_EQ(cfg.serial, SerialMode::kFile);
  EXPECT_EQ(cfg.serial_path, "/tmp/x");
  ASSERT_TRUE(ApplyFlag(cfg, "serial", "null").has_value());
  EXPECT_EQ(cfg.serial, SerialMode::kNull);
  ExpectInvalid(ApplyFlag(cfg, "serial", "pty"), "expected tty");
  ExpectInvalid(ApplyFlag(cfg, "serial", "file="), "expected tty");
}

TEST(ApplyFlag, KvmCompatModes) {
  VmConfig cfg;
  EXPECT_EQ(cfg.kvm_compat, KvmCompat::kAuto);
  ASSERT_TRUE(ApplyFlag(cfg, "kvm-compat", "on").has_value());
  EXPECT_EQ(cfg.kvm_compat, KvmCompat::kOn);
  ASSERT_TRUE(ApplyFlag(cfg, "kvm-compat", "off").has_value());
  EXPECT_EQ(cfg.kvm_compat, KvmCompat::kOff);
  ExpectInvalid(ApplyFlag(cfg, "kvm-compat", "yes"), "not one of auto, on, off");
  EXPECT_FALSE(ParseConfigJson(R"({"kvm-compat": true})").has_value());
}

TEST(ValidateConfig, ZeroCpusIsRejected) {
  VmConfig cfg = Valid();
  cfg.cpus = 0;
  ExpectInvalid(ValidateConfig(cfg, kHost), "at least one vCPU");
}

TEST(ValidateConfig, TooManyCpusIsRejected) {
  VmConfig cfg = Valid();
  cfg.cpus = 255;
  ExpectInvalid(ValidateConfig(cfg, kHost), "more than the 254 supported");
  cfg.cpus = 5;
  ExpectInvalid(ValidateConfig(cfg, HostLimits{8ull << 30, 4}), "more than the 4 supported");
}

TEST(ValidateConfig, MemoryBoundsAreEnforced) {
  VmConfig cfg = Valid();
  cfg.memory = 1 << 20;
  ExpectInvalid(ValidateConfig(cfg, kHost), "below the minimum");
  cfg.memory = 16ull << 30;
  ExpectInvalid(ValidateConfig(cfg, kHost), "more than this host has");
  cfg.memory = (64ull << 20) + 1;
  ExpectInvalid(ValidateConfig(cfg, kHost), "multiple of 4 KiB");
  cfg.memory = 64ull << 20;
  EXPECT_TRUE(ValidateConfig(cfg, kHost).has_value());
}

TEST(ValidateConfig, KernelIsRequired) {
  VmConfig cfg;
  ExpectInvalid(ValidateConfig(cfg, kHost), "no kernel");
}

TEST(ParseConfigJson, ReadsEveryField) {
  auto cfg = ParseConfigJson(R"({"kernel": "k", "initramfs": "i", "cmdline": "c",
                                 "cpus": 2, "memory": "1G", "serial": "null"})");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().message();
  EXPECT_EQ(cfg->kernel, "k");
  EXPECT_EQ(cfg->initramfs, "i");
  EXPECT_EQ(cfg->cmdline, "c");
  EXPECT_EQ(cfg->cpus, 2u);
  EXPECT_EQ(cfg->memory, 1ull << 30);
  EXPECT_EQ(cfg->serial, SerialMode::kNull);
}

TEST(ParseConfigJson, UnknownKeyIsRejected) {
  auto cfg = ParseConfigJson(R"({"kernel": "k", "gpus": 1})");
  ASSERT_FALSE(cfg.has_value());
  EXPECT_NE(cfg.error().message().find("unknown setting 'gpus'"), std::string::npos);
}

TEST(ParseConfigJson, MalformedJsonIsRejected) {
  EXPECT_FALSE(ParseConfigJson("{\"kernel\": ").has_value());
  EXPECT_FALSE(ParseConfigJson("[1,2]").has_value());
  EXPECT_FALSE(ParseConfigJson("").has_value());
}

TEST(ParseConfigJson, WrongTypesAreRejected) {
  auto cfg = ParseConfigJson(R"({"cpus": -1})");
  ASSERT_FALSE(cfg.has_value());
  EXPECT_NE(cfg.error().message().find("wrong type"), std::string::npos);
  EXPECT_FALSE(ParseConfigJson(R"({"kernel": 5})").has_value());
  EXPECT_FALSE(ParseConfigJson(R"({"memory": [1]})").has_value());
}

TEST(ConfigToJson, RoundTrips) {
  VmConfig cfg = Valid();
  cfg.cpus = 3;
  cfg.memory = 256ull << 20;
  cfg.serial = SerialMode::kFile;
  cfg.serial_path = "/tmp/s";
  cfg.kvm_compat = KvmCompat::kOff;
  auto back = ParseConfigJson(ConfigToJson(cfg));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->cpus, 3u);
  EXPECT_EQ(back->memory, 256ull << 20);
  EXPECT_EQ(back->serial_path, "/tmp/s");
  EXPECT_EQ(back->kvm_compat, KvmCompat::kOff);
}

TEST(ApplyFlag, VsockTakesCidAndAbsoluteSocket) {
  VmConfig cfg;
  ASSERT_TRUE(ApplyFlag(cfg, "vsock", "cid=4294967294,socket=/run/vm/v.sock").has_value());
  ASSERT_TRUE(cfg.vsock.has_value());
  EXPECT_EQ(cfg.vsock->cid, 4294967294u);
  EXPECT_EQ(cfg.vsock->socket, "/run/vm/v.sock");
  ExpectInvalid(ApplyFlag(cfg, "vsock", "cid=3,socket=/run/vm/w.sock"), "at most one");
}

TEST(ApplyFlag, VsockRefusals) {
  const std::pair<const char*, const char*> cases[] = {
      {"cid=0,socket=/v", "reserved"},
      {"cid=2,socket=/v", "reserved"},
      {"cid=4294967295,socket=/v", "reserved"},
      {"cid=18446744073709551616,socket=/v", "number"},
      {"cid=-3,socket=/v", "number"},
      {"cid=,socket=/v", "number"},
      {"cid=5,socket=v.sock", "not absolute"},
      {"cid=5", "socket=PATH"},
      {"socket=/v", "cid=N"},
      {"cid=5,socket=/v,x=1", "'x=1'"},
      {"", "cid=N"},
  };
  for (const auto& [value, fragment] : cases) {
    VmConfig cfg;
    SCOPED_TRACE(value);
    ExpectInvalid(ApplyFlag(cfg, "vsock", value), fragment);
    EXPECT_FALSE(cfg.vsock.has_value());
  }
}

TEST(ValidateConfig, VsockCountsAgainstTheVirtioSlots) {
  VmConfig cfg = Valid();
  cfg.vsock = VsockConfig{5, "/v"};
  for (size_t i = 0; i < kMaxDisks; ++i) cfg.disks.push_back({"/d" + std::to_string(i), false});
  ASSERT_EQ(cfg.disks.size() + 1, kMaxVirtioDevices);
  EXPECT_TRUE(ValidateConfig(cfg, kHost).has_value());
  cfg.rng = true;
  ExpectInvalid(ValidateConfig(cfg, kHost), "virtio-mmio slots");
}

TEST(ParseConfigJson, VsockRoundTrips) {
  VmConfig cfg = Valid();
  cfg.vsock = VsockConfig{7, "/run/vm/v.sock"};
  auto back = ParseConfigJson(ConfigToJson(cfg));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  ASSERT_TRUE(back->vsock.has_value());
  EXPECT_EQ(back->vsock->cid, 7u);
  EXPECT_EQ(back->vsock->socket, "/run/vm/v.sock");
  EXPECT_FALSE(ParseConfigJson(R"({"vsock": 5})").has_value());
}

}  // namespace
}  // namespace vmm
