// ParseLaunchPolicy: the "vmm-launch-policy/1" file, strictly (launch_policy.h has the format).
#include <cmath>
#include <initializer_list>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "base/enum_names.h"
#include "base/hex.h"
#include "base/sha256.h"
#include "base/strict_json.h"
#include "policy/launch_policy.h"

namespace vmm::policy {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 6;  // root > devices > disks > images > [i] > entry
constexpr size_t kMaxListEntries = 4096;
constexpr size_t kMaxTextBytes = 4096;

Error Bad(const std::string& where, const std::string& what) {
  return InvalidArgument("launch policy: " + where + ": " + what);
}

std::string At(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

const char* TypeName(const json& j) {
  if (j.is_object()) return "an object";
  if (j.is_array()) return "an array";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number()) return "a number";
  return "null";
}

// `j` must be an object with every key of `required`, and no key outside required + optional.
Result<void> CheckObject(const json& j, const std::string& path,
                         std::initializer_list<const char*> required,
                         std::initializer_list<const char*> optional = {}) {
  const std::string where = path.empty() ? "the file" : path;
  if (!j.is_object()) return Bad(where, std::string("must be an object, not ") + TypeName(j));
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* k : required) known = known || key == k;
    for (const char* k : optional) known = known || key == k;
    if (!known) return Bad(At(path, key), "unknown key");
  }
  for (const char* k : required) {
    if (!j.contains(k)) return Bad(where, std::string("the key \"") + k + "\" is missing");
  }
  return Ok();
}

Result<bool> GetBool(const json& j, const std::string& path) {
  if (!j.is_boolean()) return Bad(path, std::string("must be true or false, not ") + TypeName(j));
  return j.get<bool>();
}

Result<uint64_t> GetUint(const json& j, const std::string& path, uint64_t min, uint64_t max) {
  if (!j.is_number_integer()) {
    return Bad(path, std::string("must be a whole number, not ") + TypeName(j));
  }
  if (!j.is_number_unsigned()) return Bad(path, "must not be negative");
  const uint64_t v = j.get<uint64_t>();
  if (v < min || v > max) {
    return Bad(path, std::to_string(v) + " is outside " + std::to_string(min) + ".." +
                         std::to_string(max));
  }
  return v;
}

// A string of at most kMaxTextBytes with no control characters (it is shown in messages).
Result<std::string> GetText(const json& j, const std::string& path) {
  if (!j.is_string()) return Bad(path, std::string("must be a string, not ") + TypeName(j));
  std::string s = j.get<std::string>();
  if (s.size() > kMaxTextBytes) {
    return Bad(path, "longer than " + std::to_string(kMaxTextBytes) + " bytes");
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return Bad(path, "contains a control character");
  }
  return s;
}

Result<std::string> GetChoice(const json& j, const std::string& path,
                              std::initializer_list<const char*> choices) {
  ASSIGN_OR_RETURN(std::string s, GetText(j, path));
  std::string list;
  for (const char* c : choices) {
    if (s == c) return s;
    list += (list.empty() ? "\"" : ", \"") + std::string(c) + "\"";
  }
  return Bad(path, "\"" + s + "\" is not one of " + list);
}

Result<const json*> GetArray(const json& j, const std::string& path) {
  if (!j.is_array()) return Bad(path, std::string("must be an array, not ") + TypeName(j));
  if (j.size() > kMaxListEntries) {
    return Bad(path, "more than " + std::to_string(kMaxListEntries) + " entries");
  }
  return &j;
}

std::string Index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

Result<std::vector<ImageDigest>> ParseImages(const json& j, const std::string& path) {
  ASSIGN_OR_RETURN(const json* list, GetArray(j, path));
  std::vector<ImageDigest> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string at = Index(path, i);
    const json& e = (*list)[i];
    RETURN_IF_ERROR(CheckObject(e, at, {"sha256"}, {"name"}));
    ImageDigest d;
    ASSIGN_OR_RETURN(d.sha256, GetText(e["sha256"], at + ".sha256"));
    bool hex = d.sha256.size() == 64;
    for (char c : d.sha256) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    if (!hex) return Bad(at + ".sha256", "must be a SHA-256 digest: 64 lowercase hex digits");
    if (!seen.insert(d.sha256).second) return Bad(at + ".sha256", "listed twice");
    if (e.contains("name")) {
      ASSIGN_OR_RETURN(d.name, GetText(e["name"], at + ".name"));
    }
    out.push_back(std::move(d));
  }
  return out;
}

// Split as SplitCmdline splits a token: the key ends at the first '=' after its first
// character.
Result<CmdlinePattern> ParsePattern(const std::string& text, const std::string& at) {
  if (text.empty()) return Bad(at, "an empty pattern");
  CmdlinePattern p;
  p.text = text;
  const size_t eq = text.find('=', 1);
  if (eq == std::string::npos) {
    p.kind = CmdlinePattern::Kind::kBare;
    p.key = text;
    return p;
  }
  p.key = text.substr(0, eq);
  p.value = text.substr(eq + 1);
  p.kind = p.value == "*" ? CmdlinePattern::Kind::kAnyValue : CmdlinePattern::Kind::kExact;
  if (p.kind == CmdlinePattern::Kind::kAnyValue) p.value.clear();
  return p;
}

// "4G", "512M", "1048576" (bytes), with K, M, G, T as powers of 1024.
Result<uint64_t> ParseMemory(const json& j, const std::string& path) {
  if (j.is_number()) return GetUint(j, path, 1, std::numeric_limits<uint64_t>::max());
  if (!j.is_string()) {
    return Bad(path, std::string("must be bytes or a size such as \"4G\", not ") + TypeName(j));
  }
  const std::string s = j.get<std::string>();
  uint64_t v = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > (std::numeric_limits<uint64_t>::max() - 9) / 10) return Bad(path, "too large");
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  int shift = 0;
  if (i + 1 == s.size()) {
    switch (s[i]) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        shift = -1;
    }
    ++i;
  }
  if (i == 0 || i != s.size() || shift < 0) {
    return Bad(path, "\"" + s + "\" is not a size: digits and one of K, M, G, T (or bytes)");
  }
  if (shift > 0 && v > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return Bad(path, "too large");
  }
  v <<= shift;
  if (v == 0) return Bad(path, "must be more than 0");
  return v;
}

std::string Mib(uint64_t n) {
  return n % (1ull << 20) == 0 ? std::to_string(n >> 20) + " MiB" : std::to_string(n) + " bytes";
}

// "QUOTA PERIOD": two decimal numbers of at most 12 digits, one space between.
Result<CgroupLimits::Cpu> ParseCpuMaxText(const std::string& s, const std::string& path) {
  const auto bad = [&] {
    return Bad(path, "\"" + s +
                         "\" is not cpu.max text \"QUOTA PERIOD\" (microseconds, e.g. "
                         "\"200000 100000\") or a number of CPUs");
  };
  const size_t space = s.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 >= s.size()) return bad();
  uint64_t parts[2] = {0, 0};
  const std::string_view texts[2] = {std::string_view(s).substr(0, space),
                                     std::string_view(s).substr(space + 1)};
  for (int i = 0; i < 2; ++i) {
    if (texts[i].empty() || texts[i].size() > 12) return bad();
    for (char c : texts[i]) {
      if (c < '0' || c > '9') return bad();
      parts[i] = parts[i] * 10 + static_cast<uint64_t>(c - '0');
    }
  }
  CgroupLimits::Cpu cpu{parts[0], parts[1]};
  if (cpu.period_us < 1000 || cpu.period_us > 1000000) {
    return Bad(path, "the period " + std::to_string(cpu.period_us) + " is outside 1000..1000000");
  }
  if (cpu.quota_us < 1000 || cpu.quota_us > 65535 * cpu.period_us) {
    return Bad(path, "the quota " + std::to_string(cpu.quota_us) + " is outside 1000.." +
                         std::to_string(65535 * cpu.period_us) + " (65535 CPUs)");
  }
  return cpu;
}

Result<CgroupLimits::Cpu> ParseCpuMax(const json& j, const std::string& path) {
  if (j.is_string()) return ParseCpuMaxText(j.get<std::string>(), path);
  if (!j.is_number()) {
    return Bad(path,
               std::string("must be a number of CPUs or \"QUOTA PERIOD\", not ") + TypeName(j));
  }
  const double cpus = j.get<double>();
  if (!std::isfinite(cpus) || cpus < 0.01 || cpus > 65535) {
    return Bad(path, "CPUs must be 0.01 to 65535");
  }
  CgroupLimits::Cpu cpu;
  cpu.quota_us = static_cast<uint64_t>(std::llround(cpus * kCgroupCpuPeriodDefault));
  return cpu;
}

Result<CgroupLimits> ParseCgroup(const json& j, const LaunchPolicy& p, uint64_t disks) {
  const std::string path = "limits.cgroup";
  RETURN_IF_ERROR(CheckObject(j, path, {}, {"cpu_max", "memory_max", "pids_max"}));
  if (j.empty()) return Bad(path, "names no limit: give cpu_max, memory_max or pids_max");
  CgroupLimits c;
  if (j.contains("cpu_max")) {
    ASSIGN_OR_RETURN(c.cpu, ParseCpuMax(j["cpu_max"], path + ".cpu_max"));
  }
  if (j.contains("memory_max")) {
    ASSIGN_OR_RETURN(uint64_t m, ParseMemory(j["memory_max"], path + ".memory_max"));
    if (p.max_memory > std::numeric_limits<uint64_t>::max() - kCgroupMemoryOverhead ||
        m < p.max_memory + kCgroupMemoryOverhead) {
      return Bad(path + ".memory_max",
                 Mib(m) + " is less than limits.max_memory (" + Mib(p.max_memory) + ") + " +
                     Mib(kCgroupMemoryOverhead) +
                     ": guest RAM is charged to the VM's cgroup, with its processes' memory");
    }
    c.memory_max = m;
  }
  if (j.contains("pids_max")) {
    const uint64_t floor = p.max_cpus + disks + kCgroupPidsBase;
    ASSIGN_OR_RETURN(c.pids_max, GetUint(j["pids_max"], path + ".pids_max", 1, kCgroupPidsLimit));
    if (*c.pids_max < floor) {
      return Bad(path + ".pids_max",
                 std::to_string(*c.pids_max) + " is less than limits.max_cpus + " +
                     "devices.disks.max_count + " + std::to_string(kCgroupPidsBase) + " = " +
                     std::to_string(floor) + ": a VM's tasks are its vCPU threads and processes");
    }
  }
  return c;
}

Result<DiskRule> ParseDiskRule(const json& e, const std::string& at) {
  RETURN_IF_ERROR(CheckObject(e, at, {"path", "read_only"}));
  DiskRule r;
  ASSIGN_OR_RETURN(r.path, GetText(e["path"], at + ".path"));
  ASSIGN_OR_RETURN(r.read_only, GetBool(e["read_only"], at + ".read_only"));
  if (r.path == "*") {
    r.match = DiskRule::Match::kAny;
    return r;
  }
  if (r.path.empty() || r.path[0] != '/') {
    return Bad(at + ".path", "must be an absolute path, a directory ending in '/', or \"*\"");
  }
  const std::string with_slash = r.path + "/";
  for (std::string_view part : {"/./", "/../"}) {
    if (with_slash.find(part) != std::string::npos || r.path.find("//") != std::string::npos) {
      return Bad(at + ".path", "must be a plain path (no \".\", \"..\" or \"//\")");
    }
  }
  r.match = r.path.back() == '/' ? DiskRule::Match::kUnder : DiskRule::Match::kExact;
  return r;
}

constexpr NamedValue<ApiRole> kRoleNames[] = {{ApiRole::kAdmin, "admin"},
                                              {ApiRole::kOperator, "operator"},
                                              {ApiRole::kTenant, "tenant"},
                                              {ApiRole::kAuditor, "auditor"}};

Result<RoleBinding> ParseRole(const json& e, const std::string& at) {
  RETURN_IF_ERROR(CheckObject(e, at, {"role"}, {"uid", "gid", "vm"}));
  if (e.contains("uid") == e.contains("gid")) {
    return Bad(at, "needs exactly one of \"uid\" and \"gid\"");
  }
  RoleBinding b;
  constexpr uint64_t kMaxId = std::numeric_limits<uint32_t>::max() - 1;  // (uid_t)-1 is no one
  if (e.contains("uid")) {
    ASSIGN_OR_RETURN(uint64_t uid, GetUint(e["uid"], at + ".uid", 0, kMaxId));
    b.uid = static_cast<uint32_t>(uid);
  } else {
    ASSIGN_OR_RETURN(uint64_t gid, GetUint(e["gid"], at + ".gid", 0, kMaxId));
    b.gid = static_cast<uint32_t>(gid);
  }
  ASSIGN_OR_RETURN(std::string role,
                   GetChoice(e["role"], at + ".role", {"admin", "operator", "tenant", "auditor"}));
  b.role = ValueNamed(kRoleNames, role).value_or(ApiRole::kNone);
  if (e.contains("vm")) {
    ASSIGN_OR_RETURN(std::string vm, GetText(e["vm"], at + ".vm"));
    if (vm.empty() || vm.size() > 64) return Bad(at + ".vm", "a VM name or UUID, 1 to 64 bytes");
    b.vm = std::move(vm);
  }
  return b;
}

}  // namespace

std::string_view RoleName(ApiRole role) { return NameOf(kRoleNames, role, "none"); }

std::string CpuMaxText(const CgroupLimits::Cpu& cpu) {
  return std::to_string(cpu.quota_us) + " " + std::to_string(cpu.period_us);
}

Result<LaunchPolicy> ParseLaunchPolicy(std::string_view text) {
  if (text.size() > kMaxLaunchPolicyBytes) {
    return Bad("the file", std::to_string(text.size()) + " bytes, more than the " +
                               std::to_string(kMaxLaunchPolicyBytes) + " allowed");
  }
  StrictJson parsed = ParseStrictJson(text, kMaxDepth);
  if (parsed.problem != StrictJson::Problem::kNone) {
    return Bad("the file", StrictJsonProblem(parsed, kMaxDepth));
  }
  const json& doc = parsed.doc;
  RETURN_IF_ERROR(CheckObject(
      doc, "", {"format", "kernels", "initramfs", "cmdline", "limits", "require", "devices"},
      {"id", "roles"}));
  ASSIGN_OR_RETURN(std::string format, GetText(doc["format"], "format"));
  if (format != kLaunchPolicyFormat) {
    return Bad("format", "\"" + format + "\" is not \"" + std::string(kLaunchPolicyFormat) + "\"");
  }
  LaunchPolicy p;
  p.digest = Sha256Hex(text);
  if (p.digest.empty())
    return Error(ErrorKind::kInternal, "launch policy: SHA-256 failed (OpenSSL)");
  if (doc.contains("id")) {
    ASSIGN_OR_RETURN(p.id, GetText(doc["id"], "id"));
  }

  ASSIGN_OR_RETURN(p.kernels, ParseImages(doc["kernels"], "kernels"));
  if (p.kernels.empty()) return Bad("kernels", "must list at least one kernel");

  const json& initramfs = doc["initramfs"];
  RETURN_IF_ERROR(CheckObject(initramfs, "initramfs", {"allow_none", "images"}));
  ASSIGN_OR_RETURN(p.initramfs_allow_none,
                   GetBool(initramfs["allow_none"], "initramfs.allow_none"));
  ASSIGN_OR_RETURN(p.initramfs, ParseImages(initramfs["images"], "initramfs.images"));

  const json& cmdline = doc["cmdline"];
  RETURN_IF_ERROR(CheckObject(cmdline, "cmdline", {"allow_any", "params"}));
  ASSIGN_OR_RETURN(p.cmdline_allow_any, GetBool(cmdline["allow_any"], "cmdline.allow_any"));
  ASSIGN_OR_RETURN(const json* params, GetArray(cmdline["params"], "cmdline.params"));
  std::set<std::string> seen_patterns;
  for (size_t i = 0; i < params->size(); ++i) {
    const std::string at = Index("cmdline.params", i);
    ASSIGN_OR_RETURN(std::string text, GetText((*params)[i], at));
    if (!seen_patterns.insert(text).second) return Bad(at, "\"" + text + "\" is listed twice");
    ASSIGN_OR_RETURN(CmdlinePattern pattern, ParsePattern(text, at));
    p.cmdline_params.push_back(std::move(pattern));
  }

  const json& limits = doc["limits"];
  RETURN_IF_ERROR(CheckObject(limits, "limits", {"max_cpus", "max_memory"}, {"cgroup"}));
  ASSIGN_OR_RETURN(uint64_t max_cpus, GetUint(limits["max_cpus"], "limits.max_cpus", 1, 65535));
  p.max_cpus = static_cast<uint32_t>(max_cpus);
  ASSIGN_OR_RETURN(p.max_memory, ParseMemory(limits["max_memory"], "limits.max_memory"));

  const json& require = doc["require"];
  RETURN_IF_ERROR(
      CheckObject(require, "require", {"tpm", "selinux", "landlock_abi_min", "kvm_compat"}));
  ASSIGN_OR_RETURN(std::string tpm, GetChoice(require["tpm"], "require.tpm",
                                              {"required-measured-boot", "optional"}));
  p.tpm = tpm == "optional" ? TpmRequirement::kOptional : TpmRequirement::kRequiredMeasuredBoot;
  ASSIGN_OR_RETURN(std::string selinux,
                   GetChoice(require["selinux"], "require.selinux", {"enforcing", "any"}));
  p.selinux_enforcing = selinux == "enforcing";
  ASSIGN_OR_RETURN(uint64_t abi,
                   GetUint(require["landlock_abi_min"], "require.landlock_abi_min", 0, 1000));
  p.landlock_abi_min = static_cast<int>(abi);
  ASSIGN_OR_RETURN(std::string compat, GetChoice(require["kvm_compat"], "require.kvm_compat",
                                                 {"allowed", "forbidden"}));
  p.kvm_compat_allowed = compat == "allowed";

  const json& devices = doc["devices"];
  RETURN_IF_ERROR(CheckObject(devices, "devices", {"rng", "disks"}, {"vsock"}));
  ASSIGN_OR_RETURN(p.rng_allowed, GetBool(devices["rng"], "devices.rng"));
  if (devices.contains("vsock")) {  // optional: a policy that does not name it allows none
    ASSIGN_OR_RETURN(p.vsock_allowed, GetBool(devices["vsock"], "devices.vsock"));
  }
  const json& disks = devices["disks"];
  RETURN_IF_ERROR(CheckObject(disks, "devices.disks", {"max_count", "images"}));
  ASSIGN_OR_RETURN(uint64_t max_disks,
                   GetUint(disks["max_count"], "devices.disks.max_count", 0, 1024));
  p.max_disks = static_cast<uint32_t>(max_disks);
  ASSIGN_OR_RETURN(const json* images, GetArray(disks["images"], "devices.disks.images"));
  std::set<std::string> seen_paths;
  for (size_t i = 0; i < images->size(); ++i) {
    const std::string at = Index("devices.disks.images", i);
    ASSIGN_OR_RETURN(DiskRule rule, ParseDiskRule((*images)[i], at));
    if (!seen_paths.insert(rule.path).second) return Bad(at + ".path", "listed twice");
    p.disk_images.push_back(std::move(rule));
  }

  if (limits.contains("cgroup")) {
    ASSIGN_OR_RETURN(p.cgroup, ParseCgroup(limits["cgroup"], p, p.max_disks));
  }

  if (doc.contains("roles")) {
    ASSIGN_OR_RETURN(const json* roles, GetArray(doc["roles"], "roles"));
    std::set<std::tuple<bool, uint32_t, std::string>> bound;  // (is uid, id, vm)
    for (size_t i = 0; i < roles->size(); ++i) {
      const std::string at = Index("roles", i);
      ASSIGN_OR_RETURN(RoleBinding b, ParseRole((*roles)[i], at));
      const bool is_uid = b.uid.has_value();
      const uint32_t id = is_uid ? *b.uid : *b.gid;
      if (!bound.insert({is_uid, id, b.vm.value_or("")}).second) {
        return Bad(at, std::string(is_uid ? "uid " : "gid ") + std::to_string(id) +
                           " already has a role" + (b.vm ? " on VM '" + *b.vm + "'" : ""));
      }
      p.roles.push_back(b);
    }
  }
  return p;
}

}  // namespace vmm::policy
