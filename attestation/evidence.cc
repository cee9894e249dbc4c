// The evidence bundle, vmm-evidence/1 (evidence.h): a strict reader and its writer.
// The reader is on the verifier's hot path (ARCHITECTURE.md §8: a verifier with a ChainCache
// spends most of a verification here), so it reads RapidJSON's DOM, parsed in place from one
// copy of the bytes, and decodes base64 and hex in one pass each; it refuses exactly what the
// strict nlohmann reader of base/strict_json.h refuses (the writer still uses nlohmann).
#include "attestation/evidence.h"

// SSE2 (every x86-64 has it) lets RapidJSON scan 16 bytes of a string at a time.
#if defined(__SSE2__)
#define RAPIDJSON_SSE2
#endif
#include <rapidjson/document.h>  // rapidjson::Value
#include <rapidjson/reader.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "attestation/codec.h"
#include "attestation/event_log.h"
#include "base/hex.h"
#include "base/tpm_alg.h"

namespace vmm::attestation {
namespace {

using Json = rapidjson::Value;
constexpr int kMaxDepth = 8;
constexpr size_t kMaxPemBytes = 64u << 10;  // one certificate

Error Bad(const std::string& what) {
  return Error(ErrorKind::kProtocol, "evidence bundle: " + what);
}

std::string_view Text(const Json& v) { return {v.GetString(), v.GetStringLength()}; }
std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// RapidJSON's SAX events into a DOM, refusing what base/strict_json.h refuses on the way:
// nesting deeper than kMaxDepth (counted as nlohmann counts it: the containers open at an
// event), a number that overflows a double, and a string or key that is not UTF-8 once decoded.
// RapidJSON checks no encoding unless asked to, and its own check goes a byte at a time; this one
// also refuses a \uDC00-\uDFFF escape without its leading surrogate, which RapidJSON 1.1
// decodes to the surrogate's bytes. (It builds the tree itself rather than through
// rapidjson::Document, whose value stack starts as arithmetic on a null pointer.)
class StrictHandler {
 public:
  explicit StrictHandler(rapidjson::MemoryPoolAllocator<>& allocator) : allocator_(allocator) {}
  bool too_deep() const { return too_deep_; }
  // The document, once the reader accepted it.
  Json& root() { return values_.front(); }

  bool Null() { return Event() && Push(Json()); }
  bool Bool(bool b) { return Event() && Push(Json(b)); }
  bool Int(int i) { return Event() && Push(Json(i)); }
  bool Uint(unsigned i) { return Event() && Push(Json(i)); }
  bool Int64(int64_t i) { return Event() && Push(Json(i)); }
  bool Uint64(uint64_t i) { return Event() && Push(Json(i)); }
  // A number beyond a double's range is an error, as in nlohmann, not infinity.
  bool Double(double d) { return Event() && std::isfinite(d) && Push(Json(d)); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) { return String(s, n, copy); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    // In place, the text stays where the reader decoded it; a copy goes to the pool.
    return Event() && ValidUtf8({s, n}) &&
           Push(copy ? Json(s, n, allocator_) : Json(rapidjson::StringRef(s, n)));
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return String(s, n, copy); }
  bool StartObject() { return Open(); }
  bool StartArray() { return Open(); }
  bool EndObject(rapidjson::SizeType) {
    const size_t first = Close();
    Json object(rapidjson::kObjectType);
    for (size_t i = first; i + 1 < values_.size(); i += 2) {
      object.AddMember(values_[i], values_[i + 1], allocator_);
    }
    values_.resize(first);
    return Push(std::move(object));
  }
  bool EndArray(rapidjson::SizeType n) {
    const size_t first = Close();
    Json array(rapidjson::kArrayType);
    array.Reserve(n, allocator_);
    for (size_t i = first; i < values_.size(); ++i) array.PushBack(values_[i], allocator_);
    values_.resize(first);
    return Push(std::move(array));
  }

 private:
  bool Event() {
    too_deep_ = too_deep_ || open_.size() > static_cast<size_t>(kMaxDepth);
    return !too_deep_;
  }
  bool Push(Json&& v) {
    values_.push_back(std::move(v));
    return true;
  }
  bool Open() {
    if (!Event()) return false;
    open_.push_back(values_.size());
    return true;
  }
  // Where the closing container's keys and values begin on the stack.
  size_t Close() {
    const size_t first = open_.back();
    open_.pop_back();
    return first;
  }
  rapidjson::MemoryPoolAllocator<>& allocator_;
  std::vector<Json> values_;  // the values (and keys) of the open containers, in order
  std::vector<size_t> open_;  // where each open container's items start in values_
  bool too_deep_ = false;
};

// The key of `obj` (parsed in place, so the text's order is the pointers' order) that repeats an
// earlier key of the same object first in the text, anywhere below `v`; nullptr when none does.
const Json* FirstRepeatedKey(const Json& v) {
  const Json* first = nullptr;
  auto earlier = [&first](const Json& key) {
    if (!first || key.GetString() < first->GetString()) first = &key;
  };
  if (v.IsArray()) {
    for (const Json& item : v.GetArray()) {
      if (const Json* k = FirstRepeatedKey(item)) earlier(*k);
    }
  } else if (v.IsObject()) {
    std::vector<const Json*> keys;
    keys.reserve(v.MemberCount());
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      keys.push_back(&m->name);
      if (const Json* k = FirstRepeatedKey(m->value)) earlier(*k);
    }
    // By text, then by position: each key after the first of its run repeats it.
    std::sort(keys.begin(), keys.end(), [](const Json* a, const Json* b) {
      int c = Text(*a).compare(Text(*b));
      return c != 0 ? c < 0 : a->GetString() < b->GetString();
    });
    for (size_t i = 1; i < keys.size(); ++i) {
      if (Text(*keys[i]) == Text(*keys[i - 1])) earlier(*keys[i]);
    }
  }
  return first;
}

// The members of `obj` in the order of their keys: nlohmann's order, in which the reader this
// replaced met (and reported) them.
std::vector<const Json::Member*> InKeyOrder(const Json& obj) {
  std::vector<const Json::Member*> members;
  members.reserve(obj.MemberCount());
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) members.push_back(&*m);
  std::sort(members.begin(), members.end(), [](const Json::Member* a, const Json::Member* b) {
    return Text(a->name) < Text(b->name);
  });
  return members;
}

Result<void> ExactKeys(const std::string& where, const Json& obj,
                       std::initializer_list<std::string_view> keys) {
  if (!obj.IsObject()) return Bad(where + ": not an object");
  const Json* unknown = nullptr;
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
    if (std::find(keys.begin(), keys.end(), Text(m->name)) == keys.end() &&
        (!unknown || Text(m->name) < Text(*unknown))) {
      unknown = &m->name;
    }
  }
  if (unknown) return Bad(where + ": unknown key " + Quoted(Text(*unknown)));
  if (obj.MemberCount() != keys.size()) {
    for (std::string_view k : keys) {
      if (!obj.HasMember(Json(rapidjson::StringRef(k.data(), k.size())))) {
        return Bad(where + ": missing key " + Quoted(k));
      }
    }
  }
  return Ok();
}

// obj[key] of an object ExactKeys accepted.
const Json& At(const Json& obj, std::string_view key) {
  return obj.FindMember(Json(rapidjson::StringRef(key.data(), key.size())))->value;
}

Result<std::string_view> String(const std::string& key, const Json& v, size_t max) {
  if (!v.IsString()) return Bad(key + ": not a string");
  if (v.GetStringLength() > max) {
    return Bad(key + ": longer than " + std::to_string(max) + " bytes");
  }
  return Text(v);
}

Result<std::string> Pem(const std::string& key, const Json& v) {
  ASSIGN_OR_RETURN(std::string_view s, String(key, v, kMaxPemBytes));
  if (!s.empty() && s.rfind("-----BEGIN CERTIFICATE-----", 0) != 0) {
    return Bad(key + ": not a PEM certificate");
  }
  return std::string(s);
}

Result<std::vector<uint8_t>> Base64(const std::string& key, const Json& v, size_t max_text,
                                    size_t max) {
  ASSIGN_OR_RETURN(std::string_view text, String(key, v, max_text));
  Result<std::vector<uint8_t>> out = DecodeBase64Strict(text, max);
  if (!out) return Bad(key + ": " + out.error().message());
  return out;
}

Result<std::vector<uint8_t>> HexDigits(const std::string& key, std::string_view text) {
  Result<std::vector<uint8_t>> out = DecodeLowerHex(text);
  if (!out) return Bad(key + ": " + out.error().message());
  return out;
}

Result<uint16_t> BankId(std::string_view name) {
  if (std::optional<uint16_t> alg = TpmAlgByKnownName(name)) return *alg;
  return Bad("pcrs: unknown bank " + Quoted(name));
}

Result<uint32_t> PcrIndex(std::string_view bank, std::string_view key) {
  bool digits = !key.empty() && key.size() <= 2 && (key.size() == 1 || key[0] != '0');
  uint32_t index = 0;
  for (char c : key) {
    digits = digits && c >= '0' && c <= '9';
    index = index * 10 + static_cast<uint32_t>(c - '0');
  }
  if (!digits || index >= kNumPcrs) {
    return Bad("pcrs." + std::string(bank) + ": " + Quoted(key) + " is not a PCR index 0-23");
  }
  return index;
}

Result<void> ReadPcrs(const Json& pcrs, Evidence& e) {
  if (!pcrs.IsObject()) return Bad("pcrs: not an object");
  for (const Json::Member* bank : InKeyOrder(pcrs)) {
    const std::string_view name = Text(bank->name);
    ASSIGN_OR_RETURN(uint16_t alg, BankId(name));
    if (!bank->value.IsObject()) return Bad("pcrs." + std::string(name) + ": not an object");
    auto& values = e.pcrs[alg];
    for (const Json::Member* pcr : InKeyOrder(bank->value)) {
      ASSIGN_OR_RETURN(uint32_t index, PcrIndex(name, Text(pcr->name)));
      const Json& v = pcr->value;
      Result<std::vector<uint8_t>> digest =
          v.IsString() && v.GetStringLength() == 2 * TpmAlgDigestSize(alg)
              ? DecodeLowerHex(Text(v))
              : Error(ErrorKind::kProtocol, "");
      if (!digest) {
        // What is wrong, said with the value's key (made only now: a bundle has dozens).
        std::string key = "pcrs." + std::string(name) + "." + std::string(Text(pcr->name));
        ASSIGN_OR_RETURN(std::string_view hex, String(key, v, 2 * 64));
        ASSIGN_OR_RETURN(digest, HexDigits(key, hex));
        return Bad(key + ": " + std::to_string(digest->size()) + " bytes, not the " +
                   std::to_string(TpmAlgDigestSize(alg)) + " of " + std::string(name));
      }
      values[index] = std::move(*digest);
    }
  }
  return Ok();
}

Result<Evidence> ReadBundle(const Json& doc) {
  RETURN_IF_ERROR(ExactKeys(
      "the bundle", doc,
      {"format", "source", "nonce", "quote", "pcrs", "event_log", "ak", "ek", "ca_chain"}));
  Evidence e;
  ASSIGN_OR_RETURN(std::string_view format, String("format", At(doc, "format"), 64));
  if (format != kEvidenceFormat) {
    return Bad("format " + Quoted(format) + " is not " + std::string(kEvidenceFormat));
  }
  ASSIGN_OR_RETURN(std::string_view source, String("source", At(doc, "source"), 16));
  if (source == "manager") {
    e.source = EvidenceSource::kManager;
  } else if (source == "guest") {
    e.source = EvidenceSource::kGuest;
  } else {
    return Bad("source " + Quoted(source) + " is neither \"manager\" nor \"guest\"");
  }
  ASSIGN_OR_RETURN(std::string_view nonce, String("nonce", At(doc, "nonce"), 2 * 64));
  ASSIGN_OR_RETURN(e.nonce, HexDigits("nonce", nonce));

  const Json& quote = At(doc, "quote");
  RETURN_IF_ERROR(ExactKeys("quote", quote, {"attest", "signature"}));
  ASSIGN_OR_RETURN(e.attest, Base64("quote.attest", At(quote, "attest"), 4096, 2048));
  ASSIGN_OR_RETURN(e.signature, Base64("quote.signature", At(quote, "signature"), 4096, 2048));

  RETURN_IF_ERROR(ReadPcrs(At(doc, "pcrs"), e));
  ASSIGN_OR_RETURN(e.event_log,
                   Base64("event_log", At(doc, "event_log"), kMaxEvidenceBytes, kMaxEventLogBytes));

  const Json& ak = At(doc, "ak");
  RETURN_IF_ERROR(ExactKeys("ak", ak, {"public", "certificate"}));
  ASSIGN_OR_RETURN(e.ak_public, Base64("ak.public", At(ak, "public"), 4096, 2048));
  ASSIGN_OR_RETURN(e.ak_certificate_pem, Pem("ak.certificate", At(ak, "certificate")));

  const Json& ek = At(doc, "ek");
  RETURN_IF_ERROR(ExactKeys("ek", ek, {"certificate"}));
  ASSIGN_OR_RETURN(e.ek_certificate_pem, Pem("ek.certificate", At(ek, "certificate")));

  const Json& chain = At(doc, "ca_chain");
  if (!chain.IsArray()) return Bad("ca_chain: not an array");
  if (chain.Size() > kMaxCaChain) {
    return Bad("ca_chain: more than " + std::to_string(kMaxCaChain) + " certificates");
  }
  for (rapidjson::SizeType i = 0; i < chain.Size(); ++i) {
    std::string key = "ca_chain[" + std::to_string(i) + "]";
    ASSIGN_OR_RETURN(std::string pem, Pem(key, chain[i]));
    if (pem.empty()) return Bad(key + ": empty");
    e.ca_chain_pem.push_back(std::move(pem));
  }
  return e;
}

bool JsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

Result<Evidence> ParseEvidence(std::span<const uint8_t> json) {
  if (json.size() > kMaxEvidenceBytes) {
    return Bad(std::to_string(json.size()) + " bytes, more than the " +
               std::to_string(kMaxEvidenceBytes) + " allowed");
  }
  // One NUL-terminated copy that RapidJSON decodes its strings into, with 16 more zero bytes:
  // its SSE2 string scan reads whole aligned 16-byte blocks. A byte order mark is skipped as
  // nlohmann skips it.
  std::string text(reinterpret_cast<const char*>(json.data()), json.size());
  text.append(16, '\0');
  const size_t bom = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;
  char pool[16u << 10];  // the DOM of a typical bundle fits; a larger one grows on the heap
  rapidjson::MemoryPoolAllocator<> allocator(pool, sizeof pool);
  StrictHandler strict(allocator);
  rapidjson::InsituStringStream in(text.data() + bom);
  rapidjson::Reader reader;
  constexpr unsigned kFlags = rapidjson::kParseInsituFlag | rapidjson::kParseStopWhenDoneFlag;
  const bool parsed = !reader.Parse<kFlags>(in, strict).IsError();
  if (strict.too_deep()) {
    return Bad("nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  // The root ends the document: only whitespace may follow, up to the real end (a NUL byte ends
  // RapidJSON's stream but not the input).
  size_t end = bom + in.Tell();
  while (parsed && end < json.size() && JsonSpace(text[end])) ++end;
  if (!parsed || end != json.size()) return Bad("not valid JSON");
  const Json& doc = strict.root();
  if (const Json* repeated = FirstRepeatedKey(doc)) {
    return Bad("the key " + Quoted(Text(*repeated)) + " is repeated");
  }
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
