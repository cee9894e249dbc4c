// The manager -> VM process contract (vmm/contract/vm_spec.h): what the manager writes parses
// back to the same spec, and every kind of bad document is refused with a message that says
// what is wrong.
#include "vmm/contract/vm_spec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "vmm/contract/device_table.h"

namespace vmm {
namespace {

using Json = nlohmann::json;

VmSpec Full() {
  VmSpec s;
  s.kernel = "/proc/self/fd/5";
  s.initramfs = "/proc/self/fd/6";
  s.cmdline = "console=ttyS0 quiet";
  s.cpus = 4;
  s.memory = 1ull << 30;
  s.serial = SerialMode::kFile;
  s.serial_path = "/proc/self/fd/7";
  s.kvm_compat = KvmCompat::kOn;
  s.kvm_fd = 4;
  s.devices = {{"blk", "blk0", 2, 60, 9}, {"blk", "blk1", 2, 60, 11}, {"rng", "rng0", 4, 0, 13}};
  s.tpm_fd = 15;
  s.diagnostics = {true, true, "/proc/self/fd/8"};
  return s;
}

VmSpec Minimal() {
  VmSpec s;
  s.kernel = "/proc/self/fd/5";
  s.kvm_fd = 4;
  return s;
}

// The JSON of Full(), for tests that break one field of it.
Json FullJson() { return Json::parse(VmSpecToJson(Full())); }

// The full spec with the value at JSON pointer `where` (RFC 6901, "/devices/0/name") set.
Json FullJsonWith(const char* where, Json value) {
  Json doc = FullJson();
  doc[Json::json_pointer(where)] = std::move(value);
  return doc;
}

void ExpectRefused(const std::string& text, const std::string& fragment) {
  auto r = ParseVmSpec(text);
  ASSERT_FALSE(r.has_value()) << text;
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(r.error().message().rfind("vm spec: ", 0), 0u) << r.error().message();
  EXPECT_NE(r.error().message().find(fragment), std::string::npos)
      << "wanted '" << fragment << "' in: " << r.error().message();
}

void ExpectRefused(const Json& doc, const std::string& fragment) {
  ExpectRefused(doc.dump(), fragment);
}

TEST(VmSpec, FullSpecRoundTrips) {
  const VmSpec spec = Full();
  ASSERT_TRUE(ValidateVmSpec(spec).has_value()) << ValidateVmSpec(spec).error().message();
  auto back = ParseVmSpec(VmSpecToJson(spec));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, spec);
}

TEST(VmSpec, MinimalSpecRoundTripsWithNoTpmAsNull) {
  const std::string text = VmSpecToJson(Minimal());
  EXPECT_NE(text.find("\"tpm_fd\":null"), std::string::npos) << text;
  EXPECT_NE(text.find("\"version\":1"), std::string::npos) << text;
  auto back = ParseVmSpec(text);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, Minimal());
  EXPECT_EQ(back->tpm_fd, -1);
}

TEST(VmSpec, EverySerialAndCompatModeRoundTrips) {
  for (SerialMode m : {SerialMode::kTty, SerialMode::kNull, SerialMode::kOff}) {
    for (KvmCompat c : {KvmCompat::kAuto, KvmCompat::kOn, KvmCompat::kOff}) {
      VmSpec s = Minimal();
      s.serial = m;
      s.kvm_compat = c;
      auto back = ParseVmSpec(VmSpecToJson(s));
      ASSERT_TRUE(back.has_value()) << back.error().message();
      EXPECT_EQ(*back, s);
    }
  }
}

TEST(VmSpec, UnicodeInTheCommandLineRoundTrips) {
  VmSpec s = Minimal();
  s.cmdline = "root=/dev/vda label=\xc3\xa9t\xc3\xa9 \"quoted\" back\\slash";
  auto back = ParseVmSpec(VmSpecToJson(s));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->cmdline, s.cmdline);
}

TEST(VmSpec, RefusesAnotherVersion) {
  ExpectRefused(FullJsonWith("/version", 2),
                "version 2 is not the version this vmm-vcpu reads (1)");
  ExpectRefused(FullJsonWith("/version", 0), "version 0");
  ExpectRefused(FullJsonWith("/version", "1"), "version \"1\"");
  Json doc = FullJson();
  doc.erase("version");
  ExpectRefused(doc, "no 'version'");
  // Another version is reported as such even when its keys are not this version's.
  Json future = {{"version", 2}, {"vm", {{"kernel", "x"}}}};
  ExpectRefused(future, "version 2 is not");
}

TEST(VmSpec, RefusesUnknownKeysAtEveryLevel) {
  ExpectRefused(FullJsonWith("/disk", "path=/etc/shadow"), "unknown key 'disk'");
  ExpectRefused(FullJsonWith("/serial/append", true), "unknown key 'serial.append'");
  ExpectRefused(FullJsonWith("/devices/1/readonly", false), "unknown key 'devices[1].readonly'");
  ExpectRefused(FullJsonWith("/diagnostics/gdb", 1234), "unknown key 'diagnostics.gdb'");
}

TEST(VmSpec, RefusesMissingAndRepeatedKeys) {
  Json doc = FullJson();
  doc.erase("kvm_fd");
  ExpectRefused(doc, "no 'kvm_fd'");
  doc = FullJson();
  doc["devices"][0].erase("fd");
  ExpectRefused(doc, "no 'devices[0].fd'");
  // nlohmann keeps the last of repeated keys; the parser refuses the document instead.
  std::string text = VmSpecToJson(Minimal());
  text.insert(1, "\"cpus\":200,");
  ExpectRefused(text, "the key \"cpus\" is repeated");
}

TEST(VmSpec, RefusesBadTypes) {
  ExpectRefused(FullJsonWith("/cpus", "4"), "'cpus' must be a whole number, not string");
  ExpectRefused(FullJsonWith("/cpus", 1.5), "'cpus' must be a whole number, not a fraction");
  ExpectRefused(FullJsonWith("/memory", true), "'memory' must be a whole number, not boolean");
  ExpectRefused(FullJsonWith("/kernel", 5), "'kernel' must be a string, not number");
  ExpectRefused(FullJsonWith("/serial", "tty"), "'serial' must be an object, not string");
  ExpectRefused(FullJsonWith("/devices", Json::object()), "'devices' must be an array, not object");
  ExpectRefused(FullJsonWith("/kvm_fd", nullptr), "'kvm_fd' must be a whole number, not null");
  ExpectRefused(FullJsonWith("/tpm_fd", "15"), "'tpm_fd' must be a whole number, not string");
  ExpectRefused(FullJsonWith("/devices/0", "blk0:2:60:9"),
                "'devices[0]' must be an object, not string");
  ExpectRefused(FullJsonWith("/diagnostics/profile", 1),
                "'diagnostics.profile' must be true or false, not number");
  ExpectRefused(std::string("[1, 2]"), "the top level must be an object, not array");
  ExpectRefused(std::string("{\"version\": 1,"), "not valid JSON");
  ExpectRefused(std::string(""), "not valid JSON");
}

TEST(VmSpec, RefusesValuesOutOfRange) {
  ExpectRefused(FullJsonWith("/cpus", 0), "'cpus': 0 is out of range (1..254)");
  ExpectRefused(FullJsonWith("/cpus", 255), "'cpus': 255 is out of range (1..254)");
  ExpectRefused(FullJsonWith("/cpus", -1), "'cpus': -1 is out of range");
  ExpectRefused(FullJsonWith("/cpus", 4294967297ull), "'cpus': 4294967297 is out of range");
  ExpectRefused(FullJsonWith("/memory", 1ull << 20), "'memory': 1048576 is out of range");
  ExpectRefused(FullJsonWith("/memory", (2ull << 40)), "is out of range");
  ExpectRefused(FullJsonWith("/memory", (64ull << 20) + 1), "not a multiple of 4 KiB");
  ExpectRefused(FullJsonWith("/kernel", ""), "'kernel' is empty");
  ExpectRefused(FullJsonWith("/kernel", std::string(5000, 'k')),
                "'kernel' is 5000 bytes, more than the 4095");
  ExpectRefused(FullJsonWith("/cmdline", std::string("a\0b", 3)), "'cmdline' contains a NUL byte");
  ExpectRefused(FullJsonWith("/kvm_compat", "maybe"),
                "'kvm_compat' 'maybe' is not auto, on or off");
  ExpectRefused(FullJsonWith("/serial/mode", "pty"),
                "'serial.mode' 'pty' is not tty, file, null or off");
  ExpectRefused(FullJsonWith("/serial/path", ""),
                "'serial.path' must be given with mode file, and only then");
  ExpectRefused(FullJsonWith("/serial/mode", "tty"),
                "'serial.path' must be given with mode file, and only then");
}

TEST(VmSpec, RefusesInputThatIsTooBig) {
  ExpectRefused(std::string(kMaxVmSpecBytes + 1, ' '), "bytes, more than the 98304 allowed");
  Json doc = FullJson();
  doc["cmdline"] = std::string(kMaxSpecCmdlineBytes + 1, 'x');
  ExpectRefused(doc, "bytes, more than the");  // the document, or the command line
  doc = FullJson();
  doc["devices"] = Json::array();
  for (int i = 0; i < 9; ++i) doc["devices"].push_back(FullJson()["devices"][0]);
  ExpectRefused(doc, "'devices': 9 devices, more than the 8 virtio-mmio slots");
  // Deep nesting is refused before it is walked.
  std::string deep =
      "{\"version\":1,\"kernel\":" + std::string(1000, '[') + std::string(1000, ']') + "}";
  ExpectRefused(deep, "nested deeper than 3 levels");
}

TEST(VmSpec, RefusesBadFdNumbers) {
  for (int stdio : {0, 1, 2}) {
    ExpectRefused(
        FullJsonWith("/kvm_fd", stdio),
        "'kvm_fd': " + std::to_string(stdio) + " is not an fd number the VM process can be given");
  }
  ExpectRefused(FullJsonWith("/kvm_fd", -1), "'kvm_fd': -1 is not an fd number");
  ExpectRefused(FullJsonWith("/tpm_fd", -1), "'tpm_fd': -1 is not an fd number");
  ExpectRefused(FullJsonWith("/kvm_fd", 1 << 20),
                "'kvm_fd': 1048576 is not an fd number the VM process can be given (3..1048575)");
  ExpectRefused(FullJsonWith("/kvm_fd", 18446744073709551615ull),
                "'kvm_fd': 18446744073709551615 is not an fd number");
  // One fd for two things: the second is refused.
  ExpectRefused(FullJsonWith("/tpm_fd", 4), "'tpm_fd': fd 4 is given twice");
  ExpectRefused(FullJsonWith("/devices/2/fd", 9), "'devices[2].fd': fd 9 is given twice");
  ExpectRefused(FullJsonWith("/devices/0/fd", 2), "'devices[0].fd': 2 is not an fd number");
}

TEST(VmSpec, RefusesDuplicateDeviceNames) {
  ExpectRefused(FullJsonWith("/devices/1/name", "blk0"),
                "'devices[1].name': two devices are named 'blk0'");
}

TEST(VmSpec, RefusesDevicesTheTableDoesNotDescribe) {
  ExpectRefused(FullJsonWith("/devices/0/kind", "net"),
                "'devices[0].kind' 'net' is not a device kind (blk, rng, vsock)");
  ExpectRefused(FullJsonWith("/devices/0/virtio_id", 4),
                "a blk device has virtio id 2 and 60 bytes of config space, not 4 and 60");
  ExpectRefused(FullJsonWith("/devices/2/config_size", 8),
                "a rng device has virtio id 4 and 0 bytes of config space, not 4 and 8");
  ExpectRefused(FullJsonWith("/devices/0/name", "rng0"),
                "'devices[0].name' 'rng0' is not blkN with N below 7");
  ExpectRefused(FullJsonWith("/devices/0/name", "blk7"), "is not blkN");
  ExpectRefused(FullJsonWith("/devices/2/name", "rng1"), "'rng1' is not rngN with N below 1");
  ExpectRefused(FullJsonWith("/devices/0/name", "blk00"), "is not blkN");
}

TEST(VmSpec, ValidateAcceptsWhatTheManagerBuildsAndRefusesTheRest) {
  EXPECT_TRUE(ValidateVmSpec(Minimal()).has_value());
  VmSpec s = Minimal();
  s.version = 7;
  EXPECT_FALSE(ValidateVmSpec(s).has_value());
  s = Minimal();
  s.cmdline = "\xff\xfe";
  auto r = ValidateVmSpec(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("'cmdline' is not valid UTF-8"), std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace vmm
