// Launch policies (policy/launch_policy.h) as the manager meets them: an operator's policy file
// and a VM described by a user's flags.
//
// Input: u16 n (little endian), n bytes of policy JSON, the rest a LaunchRequest (fuzz_reader).
// Checked: no crash; a parsed policy has a 64-digit digest and each refusal a known rule and a
// message; the policy PolicyForRequest writes for a request parses and admits exactly it; the
// command-line split never yields an empty bare token; RoleFor answers a role of the enum.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/launch_policy.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"

namespace {

using namespace vmm::policy;

const std::set<std::string> kRules = {"kernels",
                                      "initramfs.allow_none",
                                      "initramfs.images",
                                      "cmdline.params",
                                      "limits.max_cpus",
                                      "limits.max_memory",
                                      "require.tpm",
                                      "require.selinux",
                                      "require.landlock_abi_min",
                                      "require.kvm_compat",
                                      "devices.rng",
                                      "devices.disks.max_count",
                                      "devices.disks.images",
                                      "devices.disks.images.read_only"};

std::string Text(FuzzReader& in, size_t max) {
  std::vector<uint8_t> b = in.Bytes(in.U8() % (max + 1));
  return std::string(b.begin(), b.end());
}

// Printable ASCII: what a policy can name (JSON text without control characters).
bool Printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

std::string Digest(FuzzReader& in) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string d;
  for (int i = 0; i < 64; ++i) d += kDigits[in.U8() & 0xf];
  return d;
}

LaunchRequest RequestFrom(FuzzReader& in) {
  LaunchRequest r;
  r.kernel_sha256 = Digest(in);
  if (in.U8() & 1) r.initramfs_sha256 = Digest(in);
  r.cmdline = Text(in, 200);
  r.cpus = 1 + in.U8();
  r.memory = in.U64();
  r.tpm = static_cast<LaunchRequest::Tpm>(in.U8() % 3);
  const uint8_t bits = in.U8();
  r.kvm_compat_on = bits & 1;
  r.rng = bits & 2;
  r.selinux_enforcing = bits & 4;
  r.landlock_abi = in.U8() % 8;
  const int disks = in.U8() % 4;
  for (int i = 0; i < disks; ++i) r.disks.push_back({"/" + Text(in, 20), (in.U8() & 1) != 0});
  return r;
}

// A request PolicyForRequest can state exactly: printable text, plain absolute disk paths.
bool Expressible(const LaunchRequest& r) {
  if (!Printable(r.cmdline)) return false;
  for (const CmdlineToken& t : SplitCmdline(r.cmdline)) {
    if (t.value && *t.value == "*") return false;  // "key=*" is the any-value pattern
  }
  for (const LaunchRequest::Disk& d : r.disks) {
    const std::string p = d.path + "/";
    if (!Printable(d.path) || d.path == "/" || d.path.back() == '/' ||
        p.find("//") != std::string::npos || p.find("/./") != std::string::npos ||
        p.find("/../") != std::string::npos) {
      return false;
    }
  }
  return r.memory > 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t n = std::min<size_t>(data[0] | data[1] << 8, size - 2);
  std::string_view text(reinterpret_cast<const char*>(data + 2), n);
  FuzzReader in{data + 2 + n, size - 2 - n};
  const LaunchRequest request = RequestFrom(in);

  for (const CmdlineToken& t : SplitCmdline(request.cmdline)) {
    CHECK(!t.key.empty() || t.value.has_value());
  }

  auto policy = ParseLaunchPolicy(text);
  if (policy) {
    CHECK(policy->digest.size() == 64);
    CHECK(!policy->kernels.empty());
    for (const Refusal& r : CheckLaunch(*policy, request)) {
      CHECK(kRules.count(r.rule) == 1);
      CHECK(!r.message.empty());
    }
    const uint32_t groups[] = {in.U32(), in.U32()};
    const ApiRole role = RoleFor(*policy, in.U32(), in.U32(), groups);
    CHECK(!RoleName(role).empty());
  }

  if (Expressible(request)) {
    auto own = ParseLaunchPolicy(PolicyForRequest(request));
    CHECK(own.has_value());
    CHECK(CheckLaunch(*own, request).empty());
    CHECK(RoleFor(*own, 0, 0, {}) == ApiRole::kAdmin);
  }
  return 0;
}
