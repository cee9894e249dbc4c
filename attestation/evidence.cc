// The evidence bundle, vmm-evidence/1 (evidence.h): a strict reader and its writer.
#include "attestation/evidence.h"

#include <openssl/evp.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "attestation/event_log.h"
#include "base/hex.h"
#include "base/strict_json.h"
#include "base/tpm_alg.h"

namespace vmm::attestation {
namespace {

using Json = nlohmann::json;
constexpr int kMaxDepth = 8;
constexpr size_t kMaxPemBytes = 64u << 10;  // one certificate

Error Bad(const std::string& what) {
  return Error(ErrorKind::kProtocol, "evidence bundle: " + what);
}

// Only the canonical encoding (RFC 4648 §4 with padding) is accepted: EVP_DecodeBlock skips
// whitespace and ignores non-zero pad bits, so the text must equal the re-encoding of what it
// decodes to.
Result<std::vector<uint8_t>> DecodeBase64(const std::string& key, const std::string& text,
                                          size_t max) {
  if (text.size() % 4 != 0) return Bad(key + ": base64 length is not a multiple of 4");
  if (text.size() / 4 * 3 > max + 2) {
    return Bad(key + ": more than " + std::to_string(max) + " bytes");
  }
  for (char c : text) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) {
      return Bad(key + ": not base64");
    }
  }
  if (text.empty()) return std::vector<uint8_t>{};
  std::vector<uint8_t> out(text.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return Bad(key + ": not base64");
  size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  if (out.size() > max) return Bad(key + ": more than " + std::to_string(max) + " bytes");
  std::string again(out.size() / 3 * 4 + 8, '\0');
  int m = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(again.data()), out.data(),
                          static_cast<int>(out.size()));
  again.resize(static_cast<size_t>(m));
  if (again != text) return Bad(key + ": not canonical base64");
  return out;
}

std::string EncodeBase64(std::span<const uint8_t> bytes) {
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::vector<uint8_t>> DecodeHex(const std::string& key, const std::string& text) {
  if (text.size() % 2 != 0) return Bad(key + ": odd number of hex digits");
  std::vector<uint8_t> out;
  out.reserve(text.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return Bad(key + ": not lowercase hex");
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

Result<void> ExactKeys(const std::string& where, const Json& obj,
                       std::initializer_list<std::string_view> keys) {
  if (!obj.is_object()) return Bad(where + ": not an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool known = false;
    for (std::string_view k : keys) known = known || it.key() == k;
    if (!known) return Bad(where + ": unknown key \"" + it.key() + "\"");
  }
  for (std::string_view k : keys) {
    if (!obj.contains(k)) return Bad(where + ": missing key \"" + std::string(k) + "\"");
  }
  return Ok();
}

Result<std::string> String(const std::string& key, const Json& v, size_t max) {
  if (!v.is_string()) return Bad(key + ": not a string");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() > max) return Bad(key + ": longer than " + std::to_string(max) + " bytes");
  return s;
}

Result<std::string> Pem(const std::string& key, const Json& v) {
  ASSIGN_OR_RETURN(std::string s, String(key, v, kMaxPemBytes));
  if (!s.empty() && s.rfind("-----BEGIN CERTIFICATE-----", 0) != 0) {
    return Bad(key + ": not a PEM certificate");
  }
  return s;
}

Result<uint16_t> BankId(const std::string& name) {
  if (std::optional<uint16_t> alg = TpmAlgByKnownName(name)) return *alg;
  return Bad("pcrs: unknown bank \"" + name + "\"");
}

Result<uint32_t> PcrIndex(const std::string& bank, const std::string& key) {
  bool digits = !key.empty() && key.size() <= 2 && (key.size() == 1 || key[0] != '0');
  for (char c : key) digits = digits && c >= '0' && c <= '9';
  if (!digits || std::stoul(key) >= kNumPcrs) {
    return Bad("pcrs." + bank + ": \"" + key + "\" is not a PCR index 0-23");
  }
  return static_cast<uint32_t>(std::stoul(key));
}

Result<Evidence> ReadBundle(const Json& doc) {
  RETURN_IF_ERROR(ExactKeys(
      "the bundle", doc,
      {"format", "source", "nonce", "quote", "pcrs", "event_log", "ak", "ek", "ca_chain"}));
  Evidence e;
  ASSIGN_OR_RETURN(std::string format, String("format", doc["format"], 64));
  if (format != kEvidenceFormat) {
    return Bad("format \"" + format + "\" is not " + std::string(kEvidenceFormat));
  }
  ASSIGN_OR_RETURN(std::string source, String("source", doc["source"], 16));
  if (source == "manager") {
    e.source = EvidenceSource::kManager;
  } else if (source == "guest") {
    e.source = EvidenceSource::kGuest;
  } else {
    return Bad("source \"" + source + "\" is neither \"manager\" nor \"guest\"");
  }
  ASSIGN_OR_RETURN(std::string nonce, String("nonce", doc["nonce"], 2 * 64));
  ASSIGN_OR_RETURN(e.nonce, DecodeHex("nonce", nonce));

  const Json& quote = doc["quote"];
  RETURN_IF_ERROR(ExactKeys("quote", quote, {"attest", "signature"}));
  ASSIGN_OR_RETURN(std::string attest, String("quote.attest", quote["attest"], 4096));
  ASSIGN_OR_RETURN(e.attest, DecodeBase64("quote.attest", attest, 2048));
  ASSIGN_OR_RETURN(std::string sig, String("quote.signature", quote["signature"], 4096));
  ASSIGN_OR_RETURN(e.signature, DecodeBase64("quote.signature", sig, 2048));

  const Json& pcrs = doc["pcrs"];
  if (!pcrs.is_object()) return Bad("pcrs: not an object");
  for (auto bank = pcrs.begin(); bank != pcrs.end(); ++bank) {
    ASSIGN_OR_RETURN(uint16_t alg, BankId(bank.key()));
    if (!bank.value().is_object()) return Bad("pcrs." + bank.key() + ": not an object");
    auto& values = e.pcrs[alg];
    for (auto pcr = bank.value().begin(); pcr != bank.value().end(); ++pcr) {
      ASSIGN_OR_RETURN(uint32_t index, PcrIndex(bank.key(), pcr.key()));
      std::string key = "pcrs." + bank.key() + "." + pcr.key();
      ASSIGN_OR_RETURN(std::string hex, String(key, pcr.value(), 2 * 64));
      ASSIGN_OR_RETURN(std::vector<uint8_t> digest, DecodeHex(key, hex));
      if (digest.size() != TpmAlgDigestSize(alg)) {
        return Bad(key + ": " + std::to_string(digest.size()) + " bytes, not the " +
                   std::to_string(TpmAlgDigestSize(alg)) + " of " + bank.key());
      }
      values[index] = std::move(digest);
    }
  }

  ASSIGN_OR_RETURN(std::string log, String("event_log", doc["event_log"], kMaxEvidenceBytes));
  ASSIGN_OR_RETURN(e.event_log, DecodeBase64("event_log", log, kMaxEventLogBytes));

  const Json& ak = doc["ak"];
  RETURN_IF_ERROR(ExactKeys("ak", ak, {"public", "certificate"}));
  ASSIGN_OR_RETURN(std::string pub, String("ak.public", ak["public"], 4096));
  ASSIGN_OR_RETURN(e.ak_public, DecodeBase64("ak.public", pub, 2048));
  ASSIGN_OR_RETURN(e.ak_certificate_pem, Pem("ak.certificate", ak["certificate"]));

  const Json& ek = doc["ek"];
  RETURN_IF_ERROR(ExactKeys("ek", ek, {"certificate"}));
  ASSIGN_OR_RETURN(e.ek_certificate_pem, Pem("ek.certificate", ek["certificate"]));

  const Json& chain = doc["ca_chain"];
  if (!chain.is_array()) return Bad("ca_chain: not an array");
  if (chain.size() > kMaxCaChain) {
    return Bad("ca_chain: more than " + std::to_string(kMaxCaChain) + " certificates");
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    std::string key = "ca_chain[" + std::to_string(i) + "]";
    ASSIGN_OR_RETURN(std::string pem, Pem(key, chain[i]));
    if (pem.empty()) return Bad(key + ": empty");
    e.ca_chain_pem.push_back(std::move(pem));
  }
  return e;
}

}  // namespace

Result<Evidence> ParseEvidence(std::span<const uint8_t> json) {
  if (json.size() > kMaxEvidenceBytes) {
    return Bad(std::to_string(json.size()) + " bytes, more than the " +
               std::to_string(kMaxEvidenceBytes) + " allowed");
  }
  StrictJson parsed = ParseStrictJson(
      std::string_view(reinterpret_cast<const char*>(json.data()), json.size()), kMaxDepth);
  switch (parsed.problem) {
    case StrictJson::Problem::kTooDeep:
      return Bad("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    case StrictJson::Problem::kInvalid:
      return Bad("not valid JSON");
    case StrictJson::Problem::kRepeatedKey:
      return Bad("the key \"" + parsed.repeated_key + "\" is repeated");
    case StrictJson::Problem::kNone:
      break;
  }
  Json doc = std::move(parsed.doc);
  return ReadBundle(doc);
}

std::string SerializeEvidence(const Evidence& e) {
  using Ordered = nlohmann::ordered_json;
  Ordered pcrs = Ordered::object();
  for (const auto& [alg, values] : e.pcrs) {
    std::string name(TpmAlgKnownName(alg));
    if (name.empty()) name = "alg_" + Hex(alg, 4);
    Ordered bank = Ordered::object();
    for (const auto& [index, digest] : values) bank[std::to_string(index)] = HexBytes(digest);
    pcrs[name] = std::move(bank);
  }
  Ordered chain = Ordered::array();
  for (const std::string& pem : e.ca_chain_pem) chain.push_back(pem);
  Ordered doc = {
      {"format", kEvidenceFormat},
      {"source", e.source == EvidenceSource::kGuest ? "guest" : "manager"},
      {"nonce", HexBytes(e.nonce)},
      {"quote", {{"attest", EncodeBase64(e.attest)}, {"signature", EncodeBase64(e.signature)}}},
      {"pcrs", std::move(pcrs)},
      {"event_log", EncodeBase64(e.event_log)},
      {"ak", {{"public", EncodeBase64(e.ak_public)}, {"certificate", e.ak_certificate_pem}}},
      {"ek", {{"certificate", e.ek_certificate_pem}}},
      {"ca_chain", std::move(chain)},
  };
  // Invalid UTF-8 in a PEM string (only possible for a bundle built in memory) is replaced,
  // never thrown.
  return doc.dump(2, ' ', false, Ordered::error_handler_t::replace) + "\n";
}

}  // namespace vmm::attestation
