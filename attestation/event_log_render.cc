// Event type names, data descriptions, and the text and JSON renderings of a log.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "attestation/event_log.h"
#include "base/bytes.h"

namespace vmm::attestation {

namespace {

constexpr size_t kMaxDescription = 96;

std::string Hex(std::span<const uint8_t> b, size_t max = SIZE_MAX) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  size_t n = std::min(b.size(), max);
  s.reserve(2 * n + 3);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[b[i] >> 4]);
    s.push_back(kDigits[b[i] & 0xF]);
  }
  if (n < b.size()) s += "...";
  return s;
}

std::string HexNum(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool Printable(uint8_t c) { return c >= 0x20 && c < 0x7F; }

// ASCII text (an optional trailing NUL aside) or nullopt; only its first `max` characters are
// kept (a description is clipped anyway, and a verifier describes every appraised event).
std::optional<std::string> AsAscii(std::span<const uint8_t> d, size_t max = SIZE_MAX) {
  while (!d.empty() && d.back() == 0) d = d.first(d.size() - 1);
  if (d.empty()) return std::nullopt;
  for (uint8_t c : d) {
    if (!Printable(c) && c != '\t' && c != '\n') return std::nullopt;
  }
  std::string s(reinterpret_cast<const char*>(d.data()), std::min(d.size(), max));
  std::replace_if(
      s.begin(), s.end(), [](char c) { return c == '\t' || c == '\n'; }, ' ');
  return s;
}

// UCS-2 text with only ASCII characters (up to the first NUL) or nullopt.
std::optional<std::string> AsUcs2(std::span<const uint8_t> d) {
  if (d.size() < 2 || d.size() % 2 != 0) return std::nullopt;
  std::string s;
  for (size_t i = 0; i + 1 < d.size(); i += 2) {
    if (d[i] == 0 && d[i + 1] == 0) break;
    if (d[i + 1] != 0 || !Printable(d[i])) return std::nullopt;
    s.push_back(static_cast<char>(d[i]));
  }
  return s;
}

std::string Clip(std::string s) {
  if (s.size() > kMaxDescription) {
    s.resize(kMaxDescription - 3);
    s += "...";
  }
  return s;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::string Generic(std::span<const uint8_t> d) {
  if (d.empty()) return "(no data)";
  if (auto a = AsAscii(d, kMaxDescription)) return Clip(Quoted(*a));
  if (auto u = AsUcs2(d); u && !u->empty()) return Clip(Quoted(*u) + " (UCS-2)");
  return Hex(d, 24) + " (" + std::to_string(d.size()) + " bytes)";
}

std::string Guid(std::span<const uint8_t> d, size_t off) {
  if (!InBounds(d.size(), off, 16)) return "?";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                *LoadLe<uint32_t>(d, off), *LoadLe<uint16_t>(d, off + 4),
                *LoadLe<uint16_t>(d, off + 6), d[off + 8], d[off + 9], d[off + 10], d[off + 11],
                d[off + 12], d[off + 13], d[off + 14], d[off + 15]);
  return buf;
}

// UEFI_VARIABLE_DATA: GUID, u64 name length (characters), u64 data length, name, data.
std::string DescribeVariable(std::span<const uint8_t> d) {
  auto name_len = LoadLe<uint64_t>(d, 16);
  auto data_len = LoadLe<uint64_t>(d, 24);
  if (!name_len || !data_len || *name_len > d.size() / 2 ||
      !InBounds(d.size(), 32, *name_len * 2)) {
    return Generic(d);
  }
  std::string name = AsUcs2(d.subspan(32, *name_len * 2)).value_or("?");
  uint64_t value_off = 32 + *name_len * 2;
  std::string s = Guid(d, 0) + " " + name;
  if (*data_len <= 8 && InBounds(d.size(), value_off, *data_len)) {
    s += " = " + (*data_len == 0 ? std::string("(empty)") : Hex(d.subspan(value_off, *data_len)));
  } else {
    s += " (" + std::to_string(*data_len) + " bytes)";
  }
  return Clip(s);
}

// UEFI_IMAGE_LOAD_EVENT: u64 location, u64 length, u64 link-time address, u64 path length.
std::string DescribeImage(std::span<const uint8_t> d) {
  auto loc = LoadLe<uint64_t>(d, 0);
  auto len = LoadLe<uint64_t>(d, 8);
  auto path = LoadLe<uint64_t>(d, 24);
  if (!loc || !len || !path) return Generic(d);
  return "image at " + HexNum(*loc) + ", " + std::to_string(*len) + " bytes, device path " +
         std::to_string(*path) + " bytes";
}

std::string DescribeBlob(std::span<const uint8_t> d, size_t off) {
  auto base = LoadLe<uint64_t>(d, off);
  auto len = LoadLe<uint64_t>(d, off + 8);
  if (!base || !len) return Generic(d);
  return "blob at " + HexNum(*base) + ", " + std::to_string(*len) + " bytes";
}

std::string DescribeBlob2(std::span<const uint8_t> d) {
  if (d.empty() || !InBounds(d.size(), 1, d[0])) return Generic(d);
  std::string desc = AsAscii(d.subspan(1, d[0])).value_or("");
  return Clip(Quoted(desc) + " " + DescribeBlob(d, 1 + d[0]));
}

// UEFI_HANDOFF_TABLE_POINTERS: u64 count, {GUID, u64 pointer}[count].
std::string DescribeHandoff(std::span<const uint8_t> d, size_t off) {
  auto n = LoadLe<uint64_t>(d, off);
  if (!n || *n > (d.size() - off - 8) / 24) return Generic(d);
  std::string s = std::to_string(*n) + " table(s)";
  for (uint64_t i = 0; i < std::min<uint64_t>(*n, 2); ++i) s += " " + Guid(d, off + 8 + 24 * i);
  return Clip(s);
}

// TCG_PCClientTaggedEvent: u32 taggedEventID, u32 taggedEventDataSize, data (Linux's EFI stub
// tags its PCR 9 events this way, the data being a string).
std::string DescribeTagged(std::span<const uint8_t> d) {
  auto id = LoadLe<uint32_t>(d, 0);
  auto size = LoadLe<uint32_t>(d, 4);
  if (!id || !size || !InBounds(d.size(), 8, *size)) return Generic(d);
  return Clip("tag " + HexNum(*id) + " " + Generic(d.subspan(8, *size)));
}

}  // namespace

std::string EventTypeName(uint32_t type) {
  switch (type) {
    case kEvPrebootCert:
      return "EV_PREBOOT_CERT";
    case kEvPostCode:
      return "EV_POST_CODE";
    case 0x2:
      return "EV_UNUSED";
    case kEvNoAction:
      return "EV_NO_ACTION";
    case kEvSeparator:
      return "EV_SEPARATOR";
    case kEvAction:
      return "EV_ACTION";
    case kEvEventTag:
      return "EV_EVENT_TAG";
    case kEvSCrtmContents:
      return "EV_S_CRTM_CONTENTS";
    case kEvSCrtmVersion:
      return "EV_S_CRTM_VERSION";
    case kEvCpuMicrocode:
      return "EV_CPU_MICROCODE";
    case kEvPlatformConfigFlags:
      return "EV_PLATFORM_CONFIG_FLAGS";
    case kEvTableOfDevices:
      return "EV_TABLE_OF_DEVICES";
    case kEvCompactHash:
      return "EV_COMPACT_HASH";
    case kEvIpl:
      return "EV_IPL";
    case kEvIplPartitionData:
      return "EV_IPL_PARTITION_DATA";
    case kEvNonhostCode:
      return "EV_NONHOST_CODE";
    case kEvNonhostConfig:
      return "EV_NONHOST_CONFIG";
    case kEvNonhostInfo:
      return "EV_NONHOST_INFO";
    case kEvOmitBootDeviceEvents:
      return "EV_OMIT_BOOT_DEVICE_EVENTS";
    case 0x80000000:
      return "EV_EFI_EVENT_BASE";
    case kEvEfiVariableDriverConfig:
      return "EV_EFI_VARIABLE_DRIVER_CONFIG";
    case kEvEfiVariableBoot:
      return "EV_EFI_VARIABLE_BOOT";
    case kEvEfiBootServicesApplication:
      return "EV_EFI_BOOT_SERVICES_APPLICATION";
    case kEvEfiBootServicesDriver:
      return "EV_EFI_BOOT_SERVICES_DRIVER";
    case kEvEfiRuntimeServicesDriver:
      return "EV_EFI_RUNTIME_SERVICES_DRIVER";
    case kEvEfiGptEvent:
      return "EV_EFI_GPT_EVENT";
    case kEvEfiAction:
      return "EV_EFI_ACTION";
    case kEvEfiPlatformFirmwareBlob:
      return "EV_EFI_PLATFORM_FIRMWARE_BLOB";
    case kEvEfiHandoffTables:
      return "EV_EFI_HANDOFF_TABLES";
    case kEvEfiPlatformFirmwareBlob2:
      return "EV_EFI_PLATFORM_FIRMWARE_BLOB2";
    case kEvEfiHandoffTables2:
      return "EV_EFI_HANDOFF_TABLES2";
    case kEvEfiVariableBoot2:
      return "EV_EFI_VARIABLE_BOOT2";
    case kEvEfiGptEvent2:
      return "EV_EFI_GPT_EVENT2";
    case kEvEfiHcrtmEvent:
      return "EV_EFI_HCRTM_EVENT";
    case kEvEfiVariableAuthority:
      return "EV_EFI_VARIABLE_AUTHORITY";
    case kEvEfiSpdmFirmwareBlob:
      return "EV_EFI_SPDM_FIRMWARE_BLOB";
    case kEvEfiSpdmFirmwareConfig:
      return "EV_EFI_SPDM_FIRMWARE_CONFIG";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "EV_UNKNOWN_0x%08x", type);
      return buf;
    }
  }
}

std::string DescribeEventData(uint32_t type, std::span<const uint8_t> d) {
  switch (type) {
    case kEvNoAction:
      if (d.size() >= 16 && std::memcmp(d.data(), kSpecIdSignature03.data(), 16) == 0) {
        auto n = LoadLe<uint32_t>(d, 24);
        std::string s = "Spec ID Event03";
        if (n) s += ", " + std::to_string(*n) + " algorithm(s)";
        return s;
      }
      if (d.size() == 17 && std::memcmp(d.data(), kStartupLocalitySignature.data(), 16) == 0) {
        return "StartupLocality " + std::to_string(d[16]);
      }
      return Generic(d);
    case kEvSeparator:
      if (d.size() == 4) {
        uint32_t v = *LoadLe<uint32_t>(d, 0);
        return Hex(d) + (v == 0 ? "" : v == 0xFFFFFFFF ? " (error)" : " (unexpected)");
      }
      return Generic(d);
    case kEvEfiVariableDriverConfig:
    case kEvEfiVariableBoot:
    case kEvEfiVariableBoot2:
    case kEvEfiVariableAuthority:
      return DescribeVariable(d);
    case kEvEfiBootServicesApplication:
    case kEvEfiBootServicesDriver:
    case kEvEfiRuntimeServicesDriver:
      return DescribeImage(d);
    case kEvEfiPlatformFirmwareBlob:
      return d.size() == 16 ? DescribeBlob(d, 0) : Generic(d);
    case kEvEfiPlatformFirmwareBlob2:
      return DescribeBlob2(d);
    case kEvEfiHandoffTables:
      return DescribeHandoff(d, 0);
    case kEvEventTag:
      return DescribeTagged(d);
    case kEvEfiHandoffTables2:
      if (d.empty() || !InBounds(d.size(), 1, d[0])) return Generic(d);
      return Clip(Quoted(AsAscii(d.subspan(1, d[0])).value_or("")) + " " +
                  DescribeHandoff(d, 1 + d[0]));
    default:
      return Generic(d);
  }
}

std::string EventLogToText(const EventLog& log) {
  std::string out;
  for (const Event& e : log.events) {
    char head[64];
    std::snprintf(head, sizeof head, "%4u PCR%-2u ", e.index, e.pcr);
    out += head;
    out += EventTypeName(e.type);
    for (const Digest& d : e.digests) out += " " + AlgName(d.alg) + ":" + Hex(d.bytes);
    out += " " + DescribeEventData(e.type, e.data) + "\n";
  }
  return out;
}

std::string EventLogToJson(const EventLog& log, std::span<const PcrBank> replay, int indent) {
  using nlohmann::json;
  json j;
  j["format"] = log.format == LogFormat::kCryptoAgile ? "crypto-agile" : "sha1";
  if (log.spec_id) {
    const SpecIdEvent& s = *log.spec_id;
    json algs = json::array();
    for (const AlgorithmSize& a : s.algorithms) {
      algs.push_back({{"alg", AlgName(a.alg)}, {"alg_id", a.alg}, {"digest_size", a.digest_size}});
    }
    j["spec_id"] = {{"platform_class", s.platform_class},
                    {"spec_version", std::to_string(s.spec_version_major) + "." +
                                         std::to_string(s.spec_version_minor)},
                    {"spec_errata", s.spec_errata},
                    {"uintn_size", s.uintn_size},
                    {"algorithms", algs},
                    {"vendor_info", Hex(s.vendor_info)}};
  }
  if (log.startup_locality) j["startup_locality"] = *log.startup_locality;
  j["used_bytes"] = log.used_bytes;
  j["free_bytes"] = log.free_bytes;
  json events = json::array();
  for (const Event& e : log.events) {
    json digests = json::object();
    for (const Digest& d : e.digests) digests[AlgName(d.alg)] = Hex(d.bytes);
    events.push_back({{"index", e.index},
                      {"offset", e.offset},
                      {"pcr", e.pcr},
                      {"type", e.type},
                      {"type_name", EventTypeName(e.type)},
                      {"digests", digests},
                      {"data_size", e.data.size()},
                      {"data", Hex(e.data)},
                      {"description", DescribeEventData(e.type, e.data)}});
  }
  j["events"] = std::move(events);
  if (!replay.empty()) {
    json pcrs = json::object();
    for (const PcrBank& bank : replay) {
      json values = json::object();
      for (uint32_t i = 0; i < kNumPcrs; ++i) values[std::to_string(i)] = Hex(bank.pcrs[i]);
      pcrs[AlgName(bank.alg)] = std::move(values);
    }
    j["pcrs"] = std::move(pcrs);
  }
  // Descriptions may hold bytes from the log; replace rather than throw on invalid UTF-8.
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace vmm::attestation
