#include "vmm/manager/config.h"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "vmm/contract/layout.h"

namespace vmm {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxMemory = 1ull << 40;  // 1 TiB: beyond any VM this project targets

Result<uint64_t> ParseUint(std::string_view text, const std::string& what) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return InvalidArgument(what + ": '" + std::string(text) + "' is not a whole number");
  }
  return v;
}

// "key=value" -> value when the key matches, else the text unchanged.
std::string_view StripKey(std::string_view text, std::string_view key) {
  if (text.size() > key.size() && text.substr(0, key.size()) == key && text[key.size()] == '=') {
    return text.substr(key.size() + 1);
  }
  return text;
}

Result<uint32_t> ParseCpus(std::string_view text) {
  std::string_view v = StripKey(text, "boot");
  if (v.find('=') != std::string_view::npos || v.find(',') != std::string_view::npos) {
    return InvalidArgument("--cpus: only 'boot=N' is supported, got '" + std::string(text) + "'");
  }
  ASSIGN_OR_RETURN(uint64_t n, ParseUint(v, "--cpus"));
  if (n > UINT32_MAX) return InvalidArgument("--cpus: " + std::to_string(n) + " is too many");
  return static_cast<uint32_t>(n);
}

// The value `text` names in `table`, if it names one.
template <typename T>
std::optional<T> Keyword(std::string_view text,
                         std::initializer_list<std::pair<std::string_view, T>> table) {
  for (const auto& [name, value] : table) {
    if (text == name) return value;
  }
  return std::nullopt;
}

Result<void> ParseSerial(VmConfig& cfg, std::string_view text) {
  if (auto mode = Keyword<SerialMode>(
          text,
          {{"tty", SerialMode::kTty}, {"null", SerialMode::kNull}, {"off", SerialMode::kOff}})) {
    cfg.serial = *mode;
  } else if (text.substr(0, 5) == "file=" && text.size() > 5) {
    cfg.serial = SerialMode::kFile;
    cfg.serial_path = std::string(text.substr(5));
    return Ok();
  } else {
    return InvalidArgument("--serial: expected tty, null, off or file=PATH, got '" +
                           std::string(text) + "'");
  }
  cfg.serial_path.clear();
  return Ok();
}

}  // namespace

HostLimits HostLimits::Probe() {
  HostLimits h{0, kMaxVcpus};
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemTotal:") {
      h.memory_bytes = kib * 1024;
      break;
    }
  }
  if (h.memory_bytes == 0) {
    h.memory_bytes = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                     static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  }
  return h;
}

Result<uint64_t> ParseSize(std::string_view text) {
  text = StripKey(text, "size");
  if (text.empty()) return InvalidArgument("--memory: empty size");
  uint64_t shift = 0;
  switch (text.back()) {
    case 'K':
    case 'k':
      shift = 10;
      break;
    case 'M':
    case 'm':
      shift = 20;
      break;
    case 'G':
    case 'g':
      shift = 30;
      break;
    case 'T':
    case 't':
      shift = 40;
      break;
    default:
      break;
  }
  std::string_view digits = shift ? text.substr(0, text.size() - 1) : text;
  ASSIGN_OR_RETURN(uint64_t n, ParseUint(digits, "--memory"));
  if (shift && n > (UINT64_MAX >> shift)) {
    return InvalidArgument("--memory: '" + std::string(text) + "' is too large");
  }
  return n << shift;
}

namespace {

// One item of a comma-separated option value: "key=value", or a bare word (no key).
struct OptionItem {
  std::string_view item;   // as written
  std::string_view key;    // "" for a bare word
  std::string_view value;  // after '='; "" for a bare word
  bool bare = false;
};

std::vector<OptionItem> SplitOptionItems(std::string_view text) {
  std::vector<OptionItem> items;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    OptionItem o;
    o.item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t eq = o.item.find('=');
    o.bare = eq == std::string_view::npos;
    if (!o.bare) {
      o.key = o.item.substr(0, eq);
      o.value = o.item.substr(eq + 1);
    }
    items.push_back(o);
  }
  return items;
}

}  // namespace

// "path=IMG[,readonly=on|off]" or just "IMG", as Cloud Hypervisor's --disk.
static Result<void> ParseDisk(VmConfig& cfg, std::string_view value) {
  if (cfg.disks.size() >= kMaxDisks) {
    return InvalidArgument("--disk: at most " + std::to_string(kMaxDisks) + " disks");
  }
  DiskConfig d;
  bool any_key = value.find('=') != std::string_view::npos;
  for (const auto& [item, key, value_of_key, bare] : SplitOptionItems(value)) {
    const std::string_view v = bare ? item : value_of_key;
    if (!any_key || key == "path") {
      d.path = std::string(v);
    } else if (key == "readonly" && (v == "on" || v == "off")) {
      d.readonly = v == "on";
    } else {
      return InvalidArgument("--disk: '" + std::string(item) +
                             "' is not path=IMG or readonly=on|off");
    }
  }
  if (d.path.empty()) return InvalidArgument("--disk: no path (path=IMG)");
  cfg.disks.push_back(std::move(d));
  return Ok();
}

// "off", "ephemeral", or "state=DIR,key=FILE".
static Result<void> ParseTpm(VmConfig& cfg, std::string_view value) {
  TpmConfig t;
  if (value == "off") {
    cfg.tpm = t;
    return Ok();
  }
  if (value == "ephemeral" || value.empty()) {
    t.mode = TpmConfig::Mode::kEphemeral;
    cfg.tpm = t;
    return Ok();
  }
  t.mode = TpmConfig::Mode::kPersistent;
  for (const auto& [item, key, v, bare] : SplitOptionItems(value)) {
    if (key == "state" && !v.empty()) {
      t.state_dir = std::string(v);
    } else if (key == "key" && !v.empty()) {
      t.key_file = std::string(v);
    } else {
      return InvalidArgument("--tpm: '" + std::string(item) +
                             "' is not off, ephemeral, state=DIR or key=FILE");
    }
  }
  if (t.state_dir.empty() || t.key_file.empty()) {
    return InvalidArgument("--tpm: a persistent vTPM needs both state=DIR and key=FILE");
  }
  cfg.tpm = t;
  return Ok();
}

// "cid=N,socket=PATH". The path's file system checks are CheckVsockSocket's.
static Result<void> ParseVsock(VmConfig& cfg, std::string_view value) {
  if (cfg.vsock) return InvalidArgument("--vsock: a VM has at most one vsock device");
  VsockConfig v;
  bool have_cid = false;
  for (const auto& [item, key, val, bare] : SplitOptionItems(value)) {
    if (key == "cid" && !bare) {
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(val.data(), val.data() + val.size(), n);
      if (ec != std::errc() || end != val.data() + val.size() || val.empty()) {
        return InvalidArgument("--vsock: cid '" + std::string(val) + "' is not a number");
      }
      if (n < kMinVsockCid || n > kMaxVsockCid) {
        return InvalidArgument("--vsock: cid " + std::string(val) +
                               " is reserved or too large (3 to 4294967294)");
      }
      v.cid = n;
      have_cid = true;
    } else if (key == "socket" && !bare && !val.empty()) {
      v.socket = std::string(val);
    } else {
      return InvalidArgument("--vsock: '" + std::string(item) + "' is not cid=N or socket=PATH");
    }
  }
  if (!have_cid) return InvalidArgument("--vsock: no guest CID (cid=N)");
  if (v.socket.empty()) return InvalidArgument("--vsock: no host socket path (socket=PATH)");
  if (v.socket.front() != '/') {
    return InvalidArgument("--vsock: socket path '" + v.socket + "' is not absolute");
  }
  cfg.vsock = std::move(v);
  return Ok();
}

std::string TpmToString(const TpmConfig& tpm) {
  switch (tpm.mode) {
    case TpmConfig::Mode::kOff:
      return "off";
    case TpmConfig::Mode::kEphemeral:
      return "ephemeral";
    case TpmConfig::Mode::kPersistent:
      return "state=" + tpm.state_dir + ",key=" + tpm.key_file;
  }
  return "off";
}

Result<void> ApplyFlag(VmConfig& cfg, std::string_view name, std::string_view value) {
  if (name == "kernel") {
    cfg.kernel = std::string(value);
  } else if (name == "initramfs") {
    cfg.initramfs = std::string(value);
  } else if (name == "cmdline") {
    cfg.cmdline = std::string(value);
  } else if (name == "cpus") {
    ASSIGN_OR_RETURN(cfg.cpus, ParseCpus(value));
  } else if (name == "memory") {
    ASSIGN_OR_RETURN(cfg.memory, ParseSize(value));
  } else if (name == "serial") {
    RETURN_IF_ERROR(ParseSerial(cfg, value));
  } else if (name == "disk") {
    RETURN_IF_ERROR(ParseDisk(cfg, value));
  } else if (name == "rng") {
    if (auto on = Keyword<bool>(value, {{"on", true}, {"", true}, {"off", false}})) {
      cfg.rng = *on;
    } else {
      return InvalidArgument("--rng: '" + std::string(value) + "' is not on or off");
    }
  } else if (name == "tpm") {
    RETURN_IF_ERROR(ParseTpm(cfg, value));
  } else if (name == "vsock") {
    RETURN_IF_ERROR(ParseVsock(cfg, value));
  } else if (name == "kvm-compat") {
    if (auto mode = Keyword<KvmCompat>(
            value,
            {{"auto", KvmCompat::kAuto}, {"on", KvmCompat::kOn}, {"off", KvmCompat::kOff}})) {
      cfg.kvm_compat = *mode;
    } else {
      return InvalidArgument("--kvm-compat: '" + std::string(value) +
                             "' is not one of auto, on, off");
    }
  } else {
    return InvalidArgument("unknown setting '" + std::string(name) + "'");
  }
  return Ok();
}

Result<VmConfig> ParseConfigJson(std::string_view text) {
  Json doc = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument("config: not valid JSON");
  if (!doc.is_object()) return InvalidArgument("config: the top level must be a JSON object");
  VmConfig cfg;
  for (auto& [key, value] : doc.items()) {
    std::string as_text;
    if (key == "disk" && value.is_array()) {
      for (const Json& d : value) {
        if (!d.is_string()) return InvalidArgument("config: 'disk' entries must be strings");
        auto applied = ApplyFlag(cfg, key, d.get<std::string>());
        if (!applied) return applied.error().Wrap("config");
      }
      continue;
    }
    if (key == "rng" && value.is_boolean()) {
      cfg.rng = value.get<bool>();
      continue;
    }
    if (value.is_string()) {
      as_text = value.get<std::string>();
    } else if (value.is_number_unsigned() && (key == "cpus" || key == "memory")) {
      as_text = std::to_string(value.get<uint64_t>());
    } else if (key == "kernel" || key == "initramfs" || key == "cmdline" || key == "cpus" ||
               key == "memory" || key == "serial" || key == "kvm-compat" || key == "disk" ||
               key == "rng" || key == "tpm" || key == "vsock") {
      return InvalidArgument("config: '" + key + "' has the wrong type (" +
                             std::string(value.type_name()) + ")");
    }
    auto applied = ApplyFlag(cfg, key, as_text);
    if (!applied) return applied.error().Wrap("config");
  }
  return cfg;
}

Result<void> ValidateConfig(const VmConfig& cfg, const HostLimits& host) {
  if (cfg.kernel.empty()) return InvalidArgument("no kernel given: use --kernel PATH");
  if (cfg.cpus == 0) return InvalidArgument("--cpus: a VM needs at least one vCPU");
  uint32_t max = std::min(host.max_vcpus, kMaxVcpus);
  if (cfg.cpus > max) {
    return InvalidArgument("--cpus: " + std::to_string(cfg.cpus) + " vCPUs is more than the " +
                           std::to_string(max) + " supported");
  }
  if (cfg.memory < x86::kMinMemory) {
    return InvalidArgument("--memory: " + std::to_string(cfg.memory >> 20) +
                           " MiB is below the minimum of " + std::to_string(x86::kMinMemory >> 20) +
                           " MiB");
  }
  if (cfg.memory % 4096 != 0) return InvalidArgument("--memory: must be a multiple of 4 KiB");
  if (cfg.memory > kMaxMemory || cfg.memory > host.memory_bytes) {
    return InvalidArgument("--memory: " + std::to_string(cfg.memory >> 20) +
                           " MiB is more than this host has (" +
                           std::to_string(host.memory_bytes >> 20) + " MiB)");
  }
  if (cfg.cmdline.find('\0') != std::string::npos) {
    return InvalidArgument("--cmdline: contains a NUL byte");
  }
  for (const DiskConfig& d : cfg.disks) {
    if (d.path.find(',') != std::string::npos) {
      return InvalidArgument("--disk: paths with commas are not supported");
    }
  }
  if (cfg.tpm.mode == TpmConfig::Mode::kPersistent &&
      (cfg.tpm.state_dir.find(',') != std::string::npos ||
       cfg.tpm.key_file.find(',') != std::string::npos)) {
    return InvalidArgument("--tpm: paths with commas are not supported");
  }
  const size_t devices = cfg.disks.size() + (cfg.rng ? 1 : 0) + (cfg.vsock ? 1 : 0);
  if (devices > kMaxVirtioDevices) {
    return InvalidArgument("--disk, --rng, --vsock: " + std::to_string(devices) +
                           " devices are more than the " + std::to_string(kMaxVirtioDevices) +
                           " virtio-mmio slots");
  }
  if (cfg.serial == SerialMode::kFile && cfg.serial_path.empty()) {
    return InvalidArgument("--serial: file= needs a path");
  }
  return Ok();
}

VmSpec SpecFromConfig(const VmConfig& cfg) {
  VmSpec spec;
  spec.kernel = cfg.kernel;
  spec.initramfs = cfg.initramfs;
  spec.cmdline = cfg.cmdline;
  spec.cpus = cfg.cpus;
  spec.memory = cfg.memory;
  spec.serial = cfg.serial;
  spec.serial_path = cfg.serial == SerialMode::kFile ? cfg.serial_path : "";
  spec.kvm_compat = cfg.kvm_compat;
  return spec;
}

std::string SerialToString(const VmConfig& cfg) {
  std::string name(SerialModeName(cfg.serial));
  return cfg.serial == SerialMode::kFile ? name + "=" + cfg.serial_path : name;
}

std::string ConfigToJson(const VmConfig& cfg) {
  Json doc = {{"kernel", cfg.kernel},
              {"initramfs", cfg.initramfs},
              {"cmdline", cfg.cmdline},
              {"cpus", cfg.cpus},
              {"memory", cfg.memory},
              {"serial", SerialToString(cfg)},
              {"kvm-compat", KvmCompatName(cfg.kvm_compat)}};
  Json disks = Json::array();
  for (const DiskConfig& d : cfg.disks) {
    disks.push_back("path=" + d.path + (d.readonly ? ",readonly=on" : ""));
  }
  doc["disk"] = disks;
  doc["rng"] = cfg.rng;
  doc["tpm"] = TpmToString(cfg.tpm);
  if (cfg.vsock) {
    doc["vsock"] = "cid=" + std::to_string(cfg.vsock->cid) + ",socket=" + cfg.vsock->socket;
  }
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);  // paths: any bytes
}

}  // namespace vmm
