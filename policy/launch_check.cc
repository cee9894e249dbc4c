// CheckLaunch, RoleFor and PolicyForRequest (launch_policy.h).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>

#include "policy/launch_policy.h"

namespace vmm::policy {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The kernel treats '-' and '_' in a parameter's name as the same character.
std::string NormalKey(std::string_view key) {
  std::string k(key);
  std::replace(k.begin(), k.end(), '-', '_');
  return k;
}

bool Matches(const CmdlinePattern& p, const CmdlineToken& t) {
  if (NormalKey(p.key) != NormalKey(t.key)) return false;
  switch (p.kind) {
    case CmdlinePattern::Kind::kBare:
      return !t.value.has_value();
    case CmdlinePattern::Kind::kExact:
      return t.value.has_value() && *t.value == p.value;
    case CmdlinePattern::Kind::kAnyValue:
      return t.value.has_value();
  }
  return false;
}

std::string TokenText(const CmdlineToken& t) { return t.value ? t.key + "=" + *t.value : t.key; }

std::string Bytes(uint64_t n) {
  if (n != 0 && n % (1ull << 30) == 0) return std::to_string(n >> 30) + " GiB";
  if (n != 0 && n % (1ull << 20) == 0) return std::to_string(n >> 20) + " MiB";
  return std::to_string(n) + " bytes";
}

const DiskRule* RuleFor(const LaunchPolicy& p, const std::string& path) {
  for (const DiskRule& r : p.disk_images) {
    switch (r.match) {
      case DiskRule::Match::kAny:
        return &r;
      case DiskRule::Match::kExact:
        if (path == r.path) return &r;
        break;
      case DiskRule::Match::kUnder:
        if (path.size() > r.path.size() && path.starts_with(r.path)) return &r;
        break;
    }
  }
  return nullptr;
}

int Rank(ApiRole r) {
  switch (r) {
    case ApiRole::kAdmin:
      return 4;
    case ApiRole::kOperator:
      return 3;
    case ApiRole::kTenant:
      return 2;
    case ApiRole::kAuditor:
      return 1;
    case ApiRole::kNone:
      break;
  }
  return 0;
}

}  // namespace

// As the kernel's next_arg (kernel/params.c): tokens end at white space outside double
// quotes; the name ends at the first '=' after its first character; quotes around the value,
// or around the whole token, are not part of it.
std::vector<CmdlineToken> SplitCmdline(std::string_view s) {
  std::vector<CmdlineToken> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    if (i == s.size()) break;
    bool quoted = false;
    bool in_quote = false;
    if (s[i] == '"') {
      quoted = in_quote = true;
      ++i;
    }
    const size_t start = i;
    size_t equals = 0;  // offset in the token; 0: none (a '=' first does not count)
    size_t n = 0;
    for (; start + n < s.size(); ++n) {
      const char c = s[start + n];
      if (IsSpace(c) && !in_quote) break;
      if (equals == 0 && c == '=' && n > 0) equals = n;
      if (c == '"') in_quote = !in_quote;
    }
    std::string token(s.substr(start, n));
    i = start + n;
    bool strip_last = quoted && !token.empty() && token.back() == '"';
    CmdlineToken t;
    if (equals == 0) {
      if (strip_last) token.pop_back();
      t.key = token;
    } else {
      t.key = token.substr(0, equals);
      std::string value = token.substr(equals + 1);
      if (!value.empty() && value.front() == '"') {
        value.erase(0, 1);
        strip_last = !value.empty() && value.back() == '"';
      }
      if (strip_last && !value.empty()) value.pop_back();
      t.value = std::move(value);
    }
    if (t.key.empty() && !t.value) continue;  // "": nothing
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<Refusal> CheckLaunch(const LaunchPolicy& p, const LaunchRequest& r) {
  std::vector<Refusal> out;
  auto refuse = [&out](std::string rule, std::string message) {
    out.push_back({std::move(rule), std::move(message)});
  };
  if (std::none_of(p.kernels.begin(), p.kernels.end(),
                   [&](const ImageDigest& d) { return d.sha256 == r.kernel_sha256; })) {
    refuse("kernels", "the kernel (sha256 " + r.kernel_sha256 + ") is not one of the " +
                          std::to_string(p.kernels.size()) + " the policy allows");
  }
  if (r.initramfs_sha256.empty()) {
    if (!p.initramfs_allow_none) {
      refuse("initramfs.allow_none", "the VM has no initramfs and the policy requires one");
    }
  } else if (std::none_of(p.initramfs.begin(), p.initramfs.end(),
                          [&](const ImageDigest& d) { return d.sha256 == r.initramfs_sha256; })) {
    refuse("initramfs.images", "the initramfs (sha256 " + r.initramfs_sha256 +
                                   ") is not one of the " + std::to_string(p.initramfs.size()) +
                                   " the policy allows");
  }
  if (!p.cmdline_allow_any) {
    std::string bad;
    size_t count = 0;
    for (const CmdlineToken& t : SplitCmdline(r.cmdline)) {
      if (std::any_of(p.cmdline_params.begin(), p.cmdline_params.end(),
                      [&](const CmdlinePattern& pat) { return Matches(pat, t); })) {
        continue;
      }
      if (++count <= 8) bad += (bad.empty() ? "\"" : ", \"") + TokenText(t) + "\"";
    }
    if (count > 8) bad += " and " + std::to_string(count - 8) + " more";
    if (count > 0) {
      refuse("cmdline.params", "the command line has parameters the policy does not allow: " + bad);
    }
  }
  if (r.cpus > p.max_cpus) {
    refuse("limits.max_cpus",
           std::to_string(r.cpus) + " vCPUs, more than the policy's " + std::to_string(p.max_cpus));
  }
  if (r.memory > p.max_memory) {
    refuse("limits.max_memory",
           Bytes(r.memory) + " of memory, more than the policy's " + Bytes(p.max_memory));
  }
  if (p.tpm == TpmRequirement::kRequiredMeasuredBoot && r.tpm == LaunchRequest::Tpm::kOff) {
    refuse("require.tpm",
           "the policy requires a vTPM with measured boot and the VM has none (--tpm off)");
  }
  if (p.selinux_enforcing && !r.selinux_enforcing) {
    refuse("require.selinux", "the policy requires SELinux enforcing and the host's is not");
  }
  if (r.landlock_abi < p.landlock_abi_min) {
    refuse("require.landlock_abi_min",
           "the policy requires Landlock ABI " + std::to_string(p.landlock_abi_min) +
               " or later and the host's kernel has " +
               (r.landlock_abi == 0 ? std::string("none") : std::to_string(r.landlock_abi)));
  }
  if (!p.kvm_compat_allowed && r.kvm_compat_on) {
    refuse("require.kvm_compat",
           "the kvm_pvm compatibility module would run and the policy forbids it");
  }
  if (r.rng && !p.rng_allowed) refuse("devices.rng", "the policy allows no virtio-rng device");
  if (r.vsock && !p.vsock_allowed) {
    refuse("devices.vsock", "the policy allows no virtio-vsock device");
  }
  if (r.disks.size() > p.max_disks) {
    refuse("devices.disks.max_count", std::to_string(r.disks.size()) +
                                          " disks, more than the policy's " +
                                          std::to_string(p.max_disks));
  }
  for (const LaunchRequest::Disk& d : r.disks) {
    const DiskRule* rule = RuleFor(p, d.path);
    if (rule == nullptr) {
      refuse("devices.disks.images", "the disk '" + d.path + "' is not an image the policy allows");
    } else if (rule->read_only && !d.read_only) {
      refuse("devices.disks.images.read_only",
             "the disk '" + d.path + "' must be read-only (readonly=on)");
    }
  }
  return out;
}

ApiRole RoleFor(const LaunchPolicy& p, uint32_t uid, uint32_t gid,
                std::span<const uint32_t> supplementary_gids, std::string_view vm_name,
                std::string_view vm_uuid) {
  auto here = [&](const RoleBinding& b) {
    return !b.vm || (!b.vm->empty() && (*b.vm == vm_name || *b.vm == vm_uuid));
  };
  for (const RoleBinding& b : p.roles) {
    if (b.uid && *b.uid == uid && here(b)) return b.role;
  }
  ApiRole best = ApiRole::kNone;
  for (const RoleBinding& b : p.roles) {
    if (!b.gid || !here(b)) continue;
    const bool member =
        *b.gid == gid || std::find(supplementary_gids.begin(), supplementary_gids.end(), *b.gid) !=
                             supplementary_gids.end();
    if (member && Rank(b.role) > Rank(best)) best = b.role;
  }
  return best;
}

std::string PolicyForRequest(const LaunchRequest& r) {
  using Json = nlohmann::ordered_json;
  Json params = Json::array();
  for (const CmdlineToken& t : SplitCmdline(r.cmdline)) {
    const std::string text = TokenText(t);
    if (std::find(params.begin(), params.end(), text) == params.end()) params.push_back(text);
  }
  Json images = Json::array();
  if (!r.initramfs_sha256.empty()) images.push_back({{"sha256", r.initramfs_sha256}});
  Json disks = Json::array();
  for (const LaunchRequest::Disk& d : r.disks) {
    Json entry = {{"path", d.path}, {"read_only", d.read_only}};
    auto same = [&](const Json& e) { return e["path"] == d.path; };
    auto it = std::find_if(disks.begin(), disks.end(), same);
    if (it == disks.end()) {
      disks.push_back(entry);
    } else if (!d.read_only) {
      (*it)["read_only"] = false;  // one writable use: the entry cannot require read-only
    }
  }
  // The cgroup limits fit this VM: all its vCPUs' time, its memory with room for the VMM's own
  // processes, and twice the floor's margin of tasks.
  constexpr uint64_t kMemoryRoom = 256ull << 20;
  const uint64_t cpus = std::max<uint32_t>(r.cpus, 1);
  const uint64_t memory = std::max<uint64_t>(r.memory, 1);
  Json cgroup = {{"cpu_max", cpus}};
  if (memory <= std::numeric_limits<uint64_t>::max() - kMemoryRoom) {
    cgroup["memory_max"] = memory + kMemoryRoom;
  }
  cgroup["pids_max"] = cpus + r.disks.size() + 2 * kCgroupPidsBase;
  Json limits = {{"max_cpus", cpus}, {"max_memory", memory}, {"cgroup", cgroup}};
  Json doc = {
      {"format", kLaunchPolicyFormat},
      {"id", "vmm policy init"},
      {"kernels", Json::array({{{"sha256", r.kernel_sha256}}})},
      {"initramfs", {{"allow_none", r.initramfs_sha256.empty()}, {"images", images}}},
      {"cmdline", {{"allow_any", false}, {"params", params}}},
      {"limits", limits},
      {"require",
       {{"tpm", r.tpm == LaunchRequest::Tpm::kOff ? "optional" : "required-measured-boot"},
        {"selinux", r.selinux_enforcing ? "enforcing" : "any"},
        {"landlock_abi_min", std::max(r.landlock_abi, 0)},
        {"kvm_compat", r.kvm_compat_on ? "allowed" : "forbidden"}}},
      {"devices",
       {{"rng", r.rng},
        {"vsock", r.vsock},
        {"disks", {{"max_count", r.disks.size()}, {"images", disks}}}}},
      {"roles", Json::array({{{"uid", 0}, {"role", "admin"}}})},
  };
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace vmm::policy
