// ParsePolicy and SerializePolicy: the "vmm-policy/1" document of appraisal.h. The input is
// the tenant's file, so everything is checked: size, key set, repeated keys, types, bank names
// and digest lengths. nlohmann's exceptions stay inside this file.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <string_view>

#include "attestation/appraisal.h"
#include "attestation/codec.h"
#include "attestation/internal.h"
#include "base/hex.h"
#include "base/strict_json.h"

namespace vmm::attestation {

namespace {

using json = nlohmann::json;
using ordered = nlohmann::ordered_json;

using internal::kMaxCrtmVersionBytes;
using internal::kMaxPolicyIdBytes;
using internal::ValidAcpiSignature;
using internal::ValidPolicyText;

constexpr size_t kMaxDepth = 32;

Error Bad(const std::string& what) { return Error(ErrorKind::kInvalidArgument, "policy: " + what); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::vector<uint8_t>> DigestFromHex(const json& v, uint16_t bank, const std::string& where) {
  if (!v.is_string()) return Bad(where + ": a digest must be a hex string");
  const std::string& s = v.get_ref<const std::string&>();
  const size_t size = TpmAlgDigestSize(bank);
  if (s.size() != 2 * size) {
    return Bad(where + ": a " + AlgName(bank) + " digest is " + std::to_string(2 * size) +
               " hex digits, not " + std::to_string(s.size()));
  }
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) {
    const int hi = HexValue(s[2 * i]), lo = HexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return Bad(where + ": '" + s + "' is not hex");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

Result<void> CheckKeys(const json& obj, const std::string& where,
                       std::initializer_list<std::string_view> required,
                       std::initializer_list<std::string_view> optional) {
  if (!obj.is_object()) return Bad(where + " must be an object");
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();
    const auto is = [&key](std::string_view k) { return k == key; };
    if (std::none_of(required.begin(), required.end(), is) &&
        std::none_of(optional.begin(), optional.end(), is)) {
      return Bad(where + ": unknown key '" + key + "'");
    }
  }
  for (std::string_view k : required) {
    if (!obj.contains(k)) return Bad(where + ": missing key '" + std::string(k) + "'");
  }
  return {};
}

Result<uint16_t> Bank(const std::string& name, const std::string& where) {
  std::optional<uint16_t> bank = TpmAlgByKnownName(name);
  if (!bank) return Bad(where + ": unknown bank '" + name + "' (sha1, sha256, sha384, ...)");
  return *bank;
}

Result<std::vector<std::vector<uint8_t>>> DigestList(const json& v, uint16_t bank,
                                                     const std::string& where) {
  if (!v.is_array() || v.empty()) return Bad(where + " must be a non-empty array of digests");
  std::vector<std::vector<uint8_t>> out;
  for (const json& d : v) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> digest, DigestFromHex(d, bank, where));
    out.push_back(std::move(digest));
  }
  return out;
}

// {"sha256": ["<hex>", ...], ...}: at least one bank.
Result<DigestSet> ParseDigestSet(const json& v, const std::string& where) {
  if (!v.is_object() || v.empty()) return Bad(where + " must be an object with at least one bank");
  DigestSet set;
  for (const auto& [name, list] : v.items()) {
    ASSIGN_OR_RETURN(uint16_t bank, Bank(name, where));
    ASSIGN_OR_RETURN(set[bank], DigestList(list, bank, where + "." + name));
  }
  return set;
}

Result<Policy> FromJson(const json& doc) {
  RETURN_IF_ERROR(CheckKeys(doc, "the document",
                            {"format", "id", "kernel", "cmdline", "configuration"},
                            {"crtm_versions", "initramfs", "acpi", "pcrs"}));
  if (!doc["format"].is_string() || doc["format"].get<std::string>() != kPolicyFormat) {
    return Bad("format must be \"" + std::string(kPolicyFormat) + "\"");
  }
  Policy p;
  const json& id = doc["id"];
  if (!id.is_string()) return Bad("id must be a string");
  p.id = id.get<std::string>();
  if (!ValidPolicyText(p.id, kMaxPolicyIdBytes)) {
    return Bad("id must be at most " + std::to_string(kMaxPolicyIdBytes) +
               " bytes, no control characters");
  }
  if (doc.contains("crtm_versions")) {
    const json& v = doc["crtm_versions"];
    if (!v.is_array() || v.empty())
      return Bad("crtm_versions must be a non-empty array of strings");
    for (const json& s : v) {
      if (!s.is_string()) return Bad("crtm_versions must be a non-empty array of strings");
      std::string text = s.get<std::string>();
      if (!ValidPolicyText(text, kMaxCrtmVersionBytes)) {
        return Bad("crtm_versions: a version must be at most " +
                   std::to_string(kMaxCrtmVersionBytes) + " bytes, no control characters");
      }
      p.crtm_versions.push_back(std::move(text));
    }
  }
  ASSIGN_OR_RETURN(p.kernel, ParseDigestSet(doc["kernel"], "kernel"));
  ASSIGN_OR_RETURN(p.cmdline, ParseDigestSet(doc["cmdline"], "cmdline"));
  if (doc.contains("initramfs")) {
    p.initramfs_present = true;
    if (!doc["initramfs"].is_null()) {
      ASSIGN_OR_RETURN(p.initramfs, ParseDigestSet(doc["initramfs"], "initramfs"));
    }
  }
  const json& cfg = doc["configuration"];
  if (cfg.is_object()) {
    p.configurations.push_back(cfg.dump());
  } else if (cfg.is_array() && !cfg.empty()) {
    for (const json& c : cfg) {
      if (!c.is_object()) return Bad("configuration: each entry must be an object");
      p.configurations.push_back(c.dump());
    }
  } else {
    return Bad("configuration must be an object or a non-empty array of objects");
  }
  if (doc.contains("acpi") && !doc["acpi"].is_null()) {
    const json& acpi = doc["acpi"];
    if (!acpi.is_object() || acpi.empty()) return Bad("acpi must be null or an object of banks");
    auto& out = p.acpi.emplace();
    for (const auto& [name, tables] : acpi.items()) {
      ASSIGN_OR_RETURN(uint16_t bank, Bank(name, "acpi"));
      if (!tables.is_object() || tables.empty()) {
        return Bad("acpi." + name + " must be an object of table signatures");
      }
      for (const auto& [sig, list] : tables.items()) {
        if (!ValidAcpiSignature(sig))
          return Bad("acpi." + name + ": '" + sig + "' is not a table signature");
        ASSIGN_OR_RETURN(out[bank][sig], DigestList(list, bank, "acpi." + name + "." + sig));
      }
    }
  }
  if (doc.contains("pcrs")) {
    const json& pcrs = doc["pcrs"];
    if (!pcrs.is_object() || pcrs.empty()) return Bad("pcrs must be an object of banks");
    for (const auto& [name, values] : pcrs.items()) {
      ASSIGN_OR_RETURN(uint16_t bank, Bank(name, "pcrs"));
      if (!values.is_object() || values.empty())
        return Bad("pcrs." + name + " must be an object of PCRs");
      for (const auto& [key, value] : values.items()) {
        const bool decimal =
            !key.empty() && key.size() <= 2 &&
            std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
            (key.size() == 1 || key[0] != '0');
        if (!decimal || std::stoul(key) >= kNumPcrs) {
          return Bad("pcrs." + name + ": '" + key + "' is not a PCR (0-23, no leading zeros)");
        }
        ASSIGN_OR_RETURN(p.pcrs[bank][static_cast<uint32_t>(std::stoul(key))],
                         DigestFromHex(value, bank, "pcrs." + name + "." + key));
      }
    }
  }
  return p;
}

ordered DigestSetJson(const DigestSet& set) {
  ordered out = ordered::object();
  for (const auto& [bank, list] : set) {
    ordered digests = ordered::array();
    for (const auto& d : list) digests.push_back(HexBytes(d));
    out[AlgName(bank)] = std::move(digests);
  }
  return out;
}

}  // namespace

namespace internal {

bool ValidAcpiSignature(std::string_view sig) {
  return sig.size() == 4 &&
         std::all_of(sig.begin(), sig.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

bool ValidPolicyText(std::string_view text, size_t max) {
  if (text.size() > max) return false;
  if (std::any_of(text.begin(), text.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return false;
  }
  return ValidUtf8(text);
}

}  // namespace internal

Result<Policy> ParsePolicy(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxPolicyBytes) {
    return Bad("the document is " + std::to_string(bytes.size()) + " bytes, more than " +
               std::to_string(kMaxPolicyBytes));
  }
  // nlohmann keeps the last of repeated keys; a policy that says two things is refused.
  StrictJson parsed =
      ParseStrictJson(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                      static_cast<int>(kMaxDepth));
  if (parsed.problem != StrictJson::Problem::kNone) {
    return Bad(StrictJsonProblem(parsed, static_cast<int>(kMaxDepth)));
  }
  try {
    return FromJson(parsed.doc);
  } catch (const json::exception& e) {
    return Bad(std::string("unexpected JSON: ") + e.what());
  }
}

std::string SerializePolicy(const Policy& p) {
  ordered doc = ordered::object();
  doc["format"] = kPolicyFormat;
  doc["id"] = p.id;
  if (!p.crtm_versions.empty()) doc["crtm_versions"] = p.crtm_versions;
  doc["kernel"] = DigestSetJson(p.kernel);
  if (p.initramfs_present) doc["initramfs"] = p.initramfs ? DigestSetJson(*p.initramfs) : ordered();
  doc["cmdline"] = DigestSetJson(p.cmdline);
  ordered configs = ordered::array();
  for (const std::string& c : p.configurations) {
    configs.push_back(ordered::parse(c, nullptr, /*allow_exceptions=*/false));
  }
  doc["configuration"] = configs.size() == 1 ? configs[0] : configs;
  if (p.acpi) {
    ordered acpi = ordered::object();
    for (const auto& [bank, tables] : *p.acpi) {
      ordered t = ordered::object();
      for (const auto& [sig, list] : tables) {
        ordered digests = ordered::array();
        for (const auto& d : list) digests.push_back(HexBytes(d));
        t[sig] = std::move(digests);
      }
      acpi[AlgName(bank)] = std::move(t);
    }
    doc["acpi"] = std::move(acpi);
  }
  if (!p.pcrs.empty()) {
    ordered pcrs = ordered::object();
    for (const auto& [bank, values] : p.pcrs) {
      ordered v = ordered::object();
      for (const auto& [pcr, digest] : values) v[std::to_string(pcr)] = HexBytes(digest);
      pcrs[AlgName(bank)] = std::move(v);
    }
    doc["pcrs"] = std::move(pcrs);
  }
  // Strings in a Policy may hold bytes that are not UTF-8 (one built in code, not parsed):
  // replace them rather than throw.
  return doc.dump(2, ' ', false, ordered::error_handler_t::replace) + "\n";
}

}  // namespace vmm::attestation
