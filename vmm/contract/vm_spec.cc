#include "vmm/contract/vm_spec.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "base/enum_names.h"
#include "base/strict_json.h"
#include "vmm/contract/device_table.h"

namespace vmm {
namespace {

using Json = nlohmann::json;

constexpr int kMaxDepth = 3;  // spec object, devices array, device object

Error Bad(const std::string& message) { return InvalidArgument("vm spec: " + message); }

std::string Quoted(std::string_view where) { return "'" + std::string(where) + "'"; }

constexpr NamedValue<SerialMode> kSerialModes[] = {
    {SerialMode::kTty, "tty"},
    {SerialMode::kFile, "file"},
    {SerialMode::kNull, "null"},
    {SerialMode::kOff, "off"},
};
constexpr NamedValue<KvmCompat> kKvmCompatNames[] = {
    {KvmCompat::kAuto, "auto"},
    {KvmCompat::kOn, "on"},
    {KvmCompat::kOff, "off"},
};

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<uint8_t>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

Result<void> CheckText(std::string_view where, const std::string& s, size_t max) {
  if (s.size() > max) {
    return Bad(Quoted(where) + " is " + std::to_string(s.size()) + " bytes, more than the " +
               std::to_string(max) + " allowed");
  }
  if (s.find('\0') != std::string::npos) return Bad(Quoted(where) + " contains a NUL byte");
  if (!ValidUtf8(s)) return Bad(Quoted(where) + " is not valid UTF-8");
  return Ok();
}

Error NotAnFd(std::string_view where, const std::string& number) {
  return Bad(Quoted(where) + ": " + number +
             " is not an fd number the VM process can be given (3.." + std::to_string(kMaxSpecFd) +
             ")");
}

Result<void> CheckFd(std::string_view where, int fd) {
  if (fd < 3 || fd > kMaxSpecFd) return NotAnFd(where, std::to_string(fd));
  return Ok();
}

// "blk0".."blk6" for a kind with 7 instances: the kind, then its index without leading zeros.
bool NameFitsKind(const std::string& name, const DeviceKind& kind) {
  if (name.size() <= kind.name.size() || name.compare(0, kind.name.size(), kind.name) != 0) {
    return false;
  }
  std::string_view digits = std::string_view(name).substr(kind.name.size());
  if (digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return false;
  size_t index = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    index = index * 10 + static_cast<size_t>(c - '0');
  }
  return index < kind.max_count;
}

// The keys of one JSON object, each taken once by type; Finish() reports the ones nobody took.
class ObjectReader {
 public:
  ObjectReader(const Json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  std::string Name(std::string_view key) const {
    return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
  }

  Result<const Json*> Take(std::string_view key) {
    auto it = obj_.find(std::string(key));
    if (it == obj_.end()) return Bad("no " + Quoted(Name(key)));
    taken_.insert(std::string(key));
    return &*it;
  }

  Result<uint64_t> Uint(std::string_view key, uint64_t min, uint64_t max) {
    ASSIGN_OR_RETURN(const Json* v, Take(key));
    return AsUint(*v, Name(key), min, max);
  }

  Result<int> Fd(std::string_view key, bool nullable) {
    ASSIGN_OR_RETURN(const Json* v, Take(key));
    if (nullable && v->is_null()) return -1;
    const std::string number = v->is_number_integer() ? v->dump() : "";
    if (v->is_number_integer() && !v->is_number_unsigned()) return NotAnFd(Name(key), number);
    ASSIGN_OR_RETURN(uint64_t fd, AsUint(*v, Name(key), 0, UINT64_MAX));
    if (fd < 3 || fd > static_cast<uint64_t>(kMaxSpecFd)) return NotAnFd(Name(key), number);
    return static_cast<int>(fd);
  }

  Result<bool> Bool(std::string_view key) {
    ASSIGN_OR_RETURN(const Json* v, Take(key));
    if (!v->is_boolean()) return TypeError(key, *v, "true or false");
    return v->get<bool>();
  }

  Result<std::string> String(std::string_view key, size_t max) {
    ASSIGN_OR_RETURN(const Json* v, Take(key));
    if (!v->is_string()) return TypeError(key, *v, "a string");
    std::string s = v->get<std::string>();
    RETURN_IF_ERROR(CheckText(Name(key), s, max));
    return s;
  }

  Result<ObjectReader> Object(std::string_view key) {
    ASSIGN_OR_RETURN(const Json* v, Take(key));
    if (!v->is_object()) return TypeError(key, *v, "an object");
    return ObjectReader(*v, Name(key));
  }

  Result<void> Finish() const {
    for (const auto& [key, value] : obj_.items()) {
      if (!taken_.count(key)) return Bad("unknown key " + Quoted(Name(key)));
    }
    return Ok();
  }

  Error TypeError(std::string_view key, const Json& v, const char* want) const {
    return Bad(Quoted(Name(key)) + " must be " + want + ", not " + v.type_name());
  }

  static Result<uint64_t> AsUint(const Json& v, const std::string& name, uint64_t min,
                                 uint64_t max) {
    if (v.is_number_unsigned()) {
      const uint64_t n = v.get<uint64_t>();
      if (n < min || n > max) {
        return Bad(Quoted(name) + ": " + std::to_string(n) + " is out of range (" +
                   std::to_string(min) + ".." + std::to_string(max) + ")");
      }
      return n;
    }
    if (v.is_number_integer()) {
      return Bad(Quoted(name) + ": " + std::to_string(v.get<int64_t>()) + " is out of range (" +
                 std::to_string(min) + ".." + std::to_string(max) + ")");
    }
    return Bad(Quoted(name) + " must be a whole number, not " +
               (v.is_number_float() ? std::string("a fraction or a number too large")
                                    : std::string(v.type_name())));
  }

 private:
  const Json& obj_;
  std::string where_;
  std::set<std::string> taken_;
};

Result<DeviceSpec> ReadDevice(const Json& v, const std::string& where) {
  if (!v.is_object()) return Bad(Quoted(where) + " must be an object, not " + v.type_name());
  ObjectReader r(v, where);
  DeviceSpec d;
  ASSIGN_OR_RETURN(d.kind, r.String("kind", 16));
  ASSIGN_OR_RETURN(d.name, r.String("name", 16));
  ASSIGN_OR_RETURN(uint64_t id, r.Uint("virtio_id", 0, UINT32_MAX));
  ASSIGN_OR_RETURN(uint64_t config_size, r.Uint("config_size", 0, 4096));
  d.virtio_id = static_cast<uint32_t>(id);
  d.config_size = static_cast<uint32_t>(config_size);
  ASSIGN_OR_RETURN(d.fd, r.Fd("fd", /*nullable=*/false));
  RETURN_IF_ERROR(r.Finish());
  return d;
}

Result<VmSpec> ReadSpec(const Json& doc) {
  if (!doc.is_object())
    return Bad(std::string("the top level must be an object, not ") + doc.type_name());
  ObjectReader r(doc, "");
  VmSpec spec;
  // The version first: a document of another version is reported as that, not as the
  // unknown keys it may have.
  ASSIGN_OR_RETURN(const Json* version, r.Take("version"));
  if (!version->is_number_unsigned() || version->get<uint64_t>() != kVmSpecVersion) {
    return Bad("version " + version->dump() + " is not the version this vmm-vcpu reads (" +
               std::to_string(kVmSpecVersion) +
               "): the manager and vmm-vcpu are from "
               "different builds");
  }
  ASSIGN_OR_RETURN(spec.kernel, r.String("kernel", kMaxSpecPathBytes));
  ASSIGN_OR_RETURN(spec.initramfs, r.String("initramfs", kMaxSpecPathBytes));
  ASSIGN_OR_RETURN(spec.event_log, r.String("event_log", kMaxSpecPathBytes));
  ASSIGN_OR_RETURN(spec.cmdline, r.String("cmdline", kMaxSpecCmdlineBytes));
  ASSIGN_OR_RETURN(uint64_t cpus, r.Uint("cpus", 1, kMaxVcpus));
  spec.cpus = static_cast<uint32_t>(cpus);
  ASSIGN_OR_RETURN(spec.memory, r.Uint("memory", kMinSpecMemory, kMaxSpecMemory));

  ASSIGN_OR_RETURN(ObjectReader serial, r.Object("serial"));
  ASSIGN_OR_RETURN(std::string mode, serial.String("mode", 8));
  const std::optional<SerialMode> serial_mode = ValueNamed(kSerialModes, mode);
  if (!serial_mode) return Bad("'serial.mode' " + Quoted(mode) + " is not tty, file, null or off");
  spec.serial = *serial_mode;
  ASSIGN_OR_RETURN(spec.serial_path, serial.String("path", kMaxSpecPathBytes));
  RETURN_IF_ERROR(serial.Finish());

  ASSIGN_OR_RETURN(std::string compat, r.String("kvm_compat", 8));
  const std::optional<KvmCompat> kvm_compat = ValueNamed(kKvmCompatNames, compat);
  if (!kvm_compat) return Bad("'kvm_compat' " + Quoted(compat) + " is not auto, on or off");
  spec.kvm_compat = *kvm_compat;

  ASSIGN_OR_RETURN(spec.kvm_fd, r.Fd("kvm_fd", /*nullable=*/false));
  ASSIGN_OR_RETURN(const Json* devices, r.Take("devices"));
  if (!devices->is_array()) return r.TypeError("devices", *devices, "an array");
  if (devices->size() > kMaxVirtioDevices) {
    return Bad("'devices': " + std::to_string(devices->size()) + " devices, more than the " +
               std::to_string(kMaxVirtioDevices) + " virtio-mmio slots");
  }
  for (size_t i = 0; i < devices->size(); ++i) {
    ASSIGN_OR_RETURN(DeviceSpec d, ReadDevice((*devices)[i], "devices[" + std::to_string(i) + "]"));
    spec.devices.push_back(std::move(d));
  }
  ASSIGN_OR_RETURN(spec.tpm_fd, r.Fd("tpm_fd", /*nullable=*/true));

  ASSIGN_OR_RETURN(ObjectReader diag, r.Object("diagnostics"));
  ASSIGN_OR_RETURN(spec.diagnostics.profile, diag.Bool("profile"));
  ASSIGN_OR_RETURN(spec.diagnostics.exit_stats, diag.Bool("exit_stats"));
  ASSIGN_OR_RETURN(spec.diagnostics.profile_symbols,
                   diag.String("profile_symbols", kMaxSpecPathBytes));
  RETURN_IF_ERROR(diag.Finish());
  RETURN_IF_ERROR(r.Finish());
  return spec;
}

}  // namespace

std::string_view SerialModeName(SerialMode mode) { return NameOf(kSerialModes, mode, "tty"); }

const char* KvmCompatName(KvmCompat mode) { return NameOf(kKvmCompatNames, mode, "auto"); }

Result<void> ValidateVmSpec(const VmSpec& spec) {
  if (spec.version != kVmSpecVersion) {
    return Bad("version " + std::to_string(spec.version) + " is not " +
               std::to_string(kVmSpecVersion));
  }
  RETURN_IF_ERROR(CheckText("kernel", spec.kernel, kMaxSpecPathBytes));
  if (spec.kernel.empty()) return Bad("'kernel' is empty");
  RETURN_IF_ERROR(CheckText("initramfs", spec.initramfs, kMaxSpecPathBytes));
  RETURN_IF_ERROR(CheckText("event_log", spec.event_log, kMaxSpecPathBytes));
  if (!spec.event_log.empty() && spec.tpm_fd == -1) return Bad("'event_log' without a TPM");
  RETURN_IF_ERROR(CheckText("cmdline", spec.cmdline, kMaxSpecCmdlineBytes));
  if (spec.cpus < 1 || spec.cpus > kMaxVcpus) {
    return Bad("'cpus': " + std::to_string(spec.cpus) + " is out of range (1.." +
               std::to_string(kMaxVcpus) + ")");
  }
  if (spec.memory < kMinSpecMemory || spec.memory > kMaxSpecMemory) {
    return Bad("'memory': " + std::to_string(spec.memory) + " is out of range (" +
               std::to_string(kMinSpecMemory) + ".." + std::to_string(kMaxSpecMemory) + ")");
  }
  if (spec.memory % 4096 != 0) return Bad("'memory': not a multiple of 4 KiB");
  RETURN_IF_ERROR(CheckText("serial.path", spec.serial_path, kMaxSpecPathBytes));
  if ((spec.serial == SerialMode::kFile) == spec.serial_path.empty()) {
    return Bad("'serial.path' must be given with mode file, and only then");
  }
  RETURN_IF_ERROR(CheckText("diagnostics.profile_symbols", spec.diagnostics.profile_symbols,
                            kMaxSpecPathBytes));

  std::set<int> fds;
  auto unique_fd = [&fds](const std::string& where, int fd) -> Result<void> {
    RETURN_IF_ERROR(CheckFd(where, fd));
    if (!fds.insert(fd).second)
      return Bad(Quoted(where) + ": fd " + std::to_string(fd) + " is given twice");
    return Ok();
  };
  RETURN_IF_ERROR(unique_fd("kvm_fd", spec.kvm_fd));
  if (spec.tpm_fd != -1) RETURN_IF_ERROR(unique_fd("tpm_fd", spec.tpm_fd));
  if (spec.devices.size() > kMaxVirtioDevices) {
    return Bad("'devices': " + std::to_string(spec.devices.size()) + " devices, more than the " +
               std::to_string(kMaxVirtioDevices) + " virtio-mmio slots");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < spec.devices.size(); ++i) {
    const DeviceSpec& d = spec.devices[i];
    const std::string where = "devices[" + std::to_string(i) + "]";
    RETURN_IF_ERROR(CheckText(where + ".kind", d.kind, 16));
    RETURN_IF_ERROR(CheckText(where + ".name", d.name, 16));
    const DeviceKind* kind = FindDeviceKind(d.kind);
    if (kind == nullptr) {
      std::string known;
      for (const DeviceKind& k : kDeviceKinds)
        known += (known.empty() ? "" : ", ") + std::string(k.name);
      return Bad(Quoted(where + ".kind") + " " + Quoted(d.kind) + " is not a device kind (" +
                 known + ")");
    }
    if (d.virtio_id != kind->virtio_id || d.config_size != kind->config_size) {
      return Bad(Quoted(where) + ": a " + d.kind + " device has virtio id " +
                 std::to_string(kind->virtio_id) + " and " + std::to_string(kind->config_size) +
                 " bytes of config space, not " + std::to_string(d.virtio_id) + " and " +
                 std::to_string(d.config_size));
    }
    if (!NameFitsKind(d.name, *kind)) {
      return Bad(Quoted(where + ".name") + " " + Quoted(d.name) + " is not " + d.kind +
                 "N with N below " + std::to_string(kind->max_count));
    }
    if (!names.insert(d.name).second) {
      return Bad(Quoted(where + ".name") + ": two devices are named " + Quoted(d.name));
    }
    RETURN_IF_ERROR(unique_fd(where + ".fd", d.fd));
  }
  return Ok();
}

Result<VmSpec> ParseVmSpec(std::string_view text) {
  if (text.size() > kMaxVmSpecBytes) {
    return Bad(std::to_string(text.size()) + " bytes, more than the " +
               std::to_string(kMaxVmSpecBytes) + " allowed");
  }
  // nlohmann keeps the last of repeated keys; the spec refuses them. A deep document is no spec.
  StrictJson parsed = ParseStrictJson(text, kMaxDepth);
  if (parsed.problem != StrictJson::Problem::kNone)
    return Bad(StrictJsonProblem(parsed, kMaxDepth));
  Json doc = std::move(parsed.doc);
  ASSIGN_OR_RETURN(VmSpec spec, ReadSpec(doc));
  RETURN_IF_ERROR(ValidateVmSpec(spec));
  return spec;
}

std::string VmSpecToJson(const VmSpec& spec) {
  using Ordered = nlohmann::ordered_json;
  Ordered devices = Ordered::array();
  for (const DeviceSpec& d : spec.devices) {
    devices.push_back({{"kind", d.kind},
                       {"name", d.name},
                       {"virtio_id", d.virtio_id},
                       {"config_size", d.config_size},
                       {"fd", d.fd}});
  }
  Ordered doc = {
      {"version", spec.version},
      {"kernel", spec.kernel},
      {"initramfs", spec.initramfs},
      {"event_log", spec.event_log},
      {"cmdline", spec.cmdline},
      {"cpus", spec.cpus},
      {"memory", spec.memory},
      {"serial", {{"mode", std::string(SerialModeName(spec.serial))}, {"path", spec.serial_path}}},
      {"kvm_compat", KvmCompatName(spec.kvm_compat)},
      {"kvm_fd", spec.kvm_fd},
      {"devices", devices},
      {"tpm_fd", spec.tpm_fd == -1 ? Ordered(nullptr) : Ordered(spec.tpm_fd)},
      {"diagnostics",
       {{"profile", spec.diagnostics.profile},
        {"exit_stats", spec.diagnostics.exit_stats},
        {"profile_symbols", spec.diagnostics.profile_symbols}}},
  };
  // Strings that are not UTF-8 (ValidateVmSpec refuses them) come out replaced, not thrown.
  return doc.dump(-1, ' ', false, Ordered::error_handler_t::replace);
}

}  // namespace vmm
