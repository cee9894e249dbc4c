#include "vmm/manager/audit/log_format.h"

#include <time.h>

#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/enum_names.h"
#include "base/hex.h"
#include "base/strict_json.h"

namespace vmm::audit {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

bool IsLowerHex(const std::string& s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "YYYY-MM-DDTHH:MM:SS.mmmZ", the only form the writer produces.
bool IsRfc3339Millis(const std::string& s) {
  static constexpr std::string_view kShape = "0000-00-00T00:00:00.000Z";
  if (s.size() != kShape.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (kShape[i] == '0' ? !IsDigit(s[i]) : s[i] != kShape[i]) return false;
  }
  return true;
}

bool IsActionChar(char c) { return (c >= 'a' && c <= 'z') || c == '.' || c == '-'; }
bool IsKeyChar(char c) { return (c >= 'a' && c <= 'z') || IsDigit(c) || c == '_'; }

template <typename Pred>
bool AllOf(const std::string& s, size_t max, Pred pred) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

Error Bad(const std::string& what) { return Error(ErrorKind::kProtocol, what); }

// Exactly these keys, no others (a missing or an extra key is an error).
Result<void> ExpectKeys(const Json& obj, std::initializer_list<const char*> keys,
                        const std::string& where) {
  if (!obj.is_object()) return Bad(where + " is not an object");
  for (const char* k : keys) {
    if (!obj.contains(k)) return Bad(where + " has no \"" + k + "\"");
  }
  if (obj.size() != keys.size()) {
    for (const auto& [k, v] : obj.items()) {
      bool known = false;
      for (const char* want : keys) known = known || k == want;
      if (!known) return Bad(where + " has an unknown key \"" + k + "\"");
    }
  }
  return Ok();
}

Result<std::string> GetString(const Json& obj, const char* key, size_t max,
                              const std::string& where) {
  const Json& v = obj.at(key);
  if (!v.is_string()) return Bad(where + "." + key + " is not a string");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() > max) return Bad(where + "." + key + " is longer than " + std::to_string(max));
  return s;
}

Result<uint64_t> GetUnsigned(const Json& obj, const char* key, uint64_t max,
                             const std::string& where) {
  const Json& v = obj.at(key);
  if (!v.is_number_unsigned()) return Bad(where + "." + key + " is not an unsigned integer");
  uint64_t n = v.get<uint64_t>();
  if (n > max) return Bad(where + "." + key + " is out of range");
  return n;
}

Result<int32_t> GetInt32(const Json& obj, const char* key, const std::string& where) {
  const Json& v = obj.at(key);
  if (!v.is_number_integer()) return Bad(where + "." + key + " is not an integer");
  int64_t n = v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{std::numeric_limits<int32_t>::max()})
    return Bad(where + "." + key + " is out of range");
  if (n < std::numeric_limits<int32_t>::min() || n > std::numeric_limits<int32_t>::max())
    return Bad(where + "." + key + " is out of range");
  return static_cast<int32_t>(n);
}

Result<Event> ParseEventFields(const Json& doc) {
  Event e;
  ASSIGN_OR_RETURN(e.action, GetString(doc, "action", 64, "record"));
  const Json& who = doc.at("who");
  RETURN_IF_ERROR(ExpectKeys(who, {"uid", "gid", "pid", "context"}, "who"));
  ASSIGN_OR_RETURN(uint64_t uid, GetUnsigned(who, "uid", UINT32_MAX, "who"));
  ASSIGN_OR_RETURN(uint64_t gid, GetUnsigned(who, "gid", UINT32_MAX, "who"));
  e.who.uid = static_cast<uint32_t>(uid);
  e.who.gid = static_cast<uint32_t>(gid);
  ASSIGN_OR_RETURN(e.who.pid, GetInt32(who, "pid", "who"));
  ASSIGN_OR_RETURN(e.who.context, GetString(who, "context", kMaxContextBytes, "who"));
  const Json& vm = doc.at("vm");
  RETURN_IF_ERROR(ExpectKeys(vm, {"uuid", "name"}, "vm"));
  ASSIGN_OR_RETURN(e.vm_uuid, GetString(vm, "uuid", 36, "vm"));
  ASSIGN_OR_RETURN(e.vm_name, GetString(vm, "name", kMaxNameBytes, "vm"));
  const Json& details = doc.at("details");
  if (!details.is_array() || details.size() > kMaxDetails) {
    return Bad("record.details is not an array of at most " + std::to_string(kMaxDetails));
  }
  for (const Json& pair : details) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      return Bad("record.details has an entry that is not a [key, value] pair of strings");
    }
    e.details.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
  }
  ASSIGN_OR_RETURN(std::string result, GetString(doc, "result", 16, "record"));
  if (result != "success" && result != "failure") {
    return Bad("record.result is neither \"success\" nor \"failure\"");
  }
  e.success = result == "success";
  RETURN_IF_ERROR(ValidateEvent(e));
  return e;
}

}  // namespace

bool IsUuidText(const std::string& text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!IsDigit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F')) {
      return false;
    }
  }
  return true;
}

Result<void> ValidateEvent(const Event& e) {
  if (!AllOf(e.action, 64, IsActionChar)) {
    return InvalidArgument("audit event: action '" + e.action + "' is not 1 to 64 of [a-z.-]");
  }
  if (!e.vm_uuid.empty() && !IsUuidText(e.vm_uuid)) {
    return InvalidArgument("audit event: vm_uuid '" + e.vm_uuid + "' is not RFC 4122 text");
  }
  if (e.vm_name.size() > kMaxNameBytes) {
    return InvalidArgument("audit event: vm_name is longer than " + std::to_string(kMaxNameBytes) +
                           " bytes");
  }
  if (e.who.context.size() > kMaxContextBytes) {
    return InvalidArgument("audit event: who.context is longer than " +
                           std::to_string(kMaxContextBytes) + " bytes");
  }
  if (e.details.size() > kMaxDetails) {
    return InvalidArgument("audit event: more than " + std::to_string(kMaxDetails) + " details");
  }
  for (const auto& [k, v] : e.details) {
    if (!AllOf(k, 64, IsKeyChar)) {
      return InvalidArgument("audit event: detail key '" + k + "' is not 1 to 64 of [a-z0-9_]");
    }
    if (v.size() > kMaxDetailValueBytes) {
      return InvalidArgument("audit event: detail '" + k + "' is longer than " +
                             std::to_string(kMaxDetailValueBytes) + " bytes");
    }
  }
  return Ok();
}

const std::string& GenesisPrev() {
  static const std::string kGenesis = Sha256Hex("vmm-audit-log/1 genesis");
  return kGenesis;
}

constexpr NamedValue<RecordType> kRecordTypeNames[] = {
    {RecordType::kOpen, "open"},
    {RecordType::kEvent, "event"},
    {RecordType::kCheckpoint, "checkpoint"},
    {RecordType::kTornTail, "torn-tail"},
};

const char* RecordTypeName(RecordType type) { return NameOf(kRecordTypeNames, type, "?"); }

std::string SerializeRecord(const Record& r) {
  OrderedJson j;
  j["v"] = kFormatVersion;
  j["seq"] = r.seq;
  j["time"] = r.time;
  j["session"] = r.session;
  j["type"] = RecordTypeName(r.type);
  switch (r.type) {
    case RecordType::kOpen:
      j["writer"] = {{"pid", r.writer_pid}, {"uid", r.writer_uid}};
      j["key_fpr"] = r.key_fpr;
      break;
    case RecordType::kEvent: {
      const Event& e = r.event;
      j["action"] = e.action;
      j["who"] = {
          {"uid", e.who.uid}, {"gid", e.who.gid}, {"pid", e.who.pid}, {"context", e.who.context}};
      j["vm"] = {{"uuid", e.vm_uuid}, {"name", e.vm_name}};
      OrderedJson details = OrderedJson::array();
      for (const auto& [k, v] : e.details) details.push_back({k, v});
      j["details"] = std::move(details);
      j["result"] = e.success ? "success" : "failure";
      break;
    }
    case RecordType::kCheckpoint:
      j["final"] = r.final;
      j["alg"] = r.alg;
      j["key_fpr"] = r.key_fpr;
      j["sig"] = r.sig;
      break;
    case RecordType::kTornTail: {
      OrderedJson frags = OrderedJson::array();
      for (const Fragment& f : r.fragments)
        frags.push_back({{"bytes", f.bytes}, {"sha256", f.sha256}});
      j["fragments"] = std::move(frags);
      break;
    }
  }
  j["prev"] = r.prev;
  return j.dump(-1, ' ', /*ensure_ascii=*/true, OrderedJson::error_handler_t::replace);
}

Result<Record> ParseRecord(std::string_view line) {
  if (line.size() > kMaxLineBytes) {
    return Bad("the line is longer than " + std::to_string(kMaxLineBytes) + " bytes");
  }
  constexpr int kMaxDepth = 4;  // deeper than any record nests
  StrictJson parsed = ParseStrictJson(line, kMaxDepth);
  if (parsed.problem != StrictJson::Problem::kNone) {
    return Bad("the line: " + StrictJsonProblem(parsed, kMaxDepth));
  }
  const Json& doc = parsed.doc;
  if (!doc.is_object() || !doc.contains("type") || !doc.at("type").is_string()) {
    return Bad("the line is not a record (no \"type\")");
  }
  Record r;
  const std::string& type = doc.at("type").get_ref<const std::string&>();
  if (type == "open") {
    r.type = RecordType::kOpen;
    RETURN_IF_ERROR(ExpectKeys(
        doc, {"v", "seq", "time", "session", "type", "writer", "key_fpr", "prev"}, "record"));
    const Json& w = doc.at("writer");
    RETURN_IF_ERROR(ExpectKeys(w, {"pid", "uid"}, "writer"));
    ASSIGN_OR_RETURN(r.writer_pid, GetInt32(w, "pid", "writer"));
    ASSIGN_OR_RETURN(uint64_t uid, GetUnsigned(w, "uid", UINT32_MAX, "writer"));
    r.writer_uid = static_cast<uint32_t>(uid);
    ASSIGN_OR_RETURN(r.key_fpr, GetString(doc, "key_fpr", 64, "record"));
  } else if (type == "event") {
    r.type = RecordType::kEvent;
    RETURN_IF_ERROR(ExpectKeys(
        doc,
        {"v", "seq", "time", "session", "type", "action", "who", "vm", "details", "result", "prev"},
        "record"));
    auto event = ParseEventFields(doc);
    if (!event) return Bad(event.error().message());
    r.event = std::move(event).value();
  } else if (type == "checkpoint") {
    r.type = RecordType::kCheckpoint;
    RETURN_IF_ERROR(ExpectKeys(
        doc, {"v", "seq", "time", "session", "type", "final", "alg", "key_fpr", "sig", "prev"},
        "record"));
    if (!doc.at("final").is_boolean()) return Bad("record.final is not a boolean");
    r.final = doc.at("final").get<bool>();
    ASSIGN_OR_RETURN(r.alg, GetString(doc, "alg", 8, "record"));
    ASSIGN_OR_RETURN(r.key_fpr, GetString(doc, "key_fpr", 64, "record"));
    ASSIGN_OR_RETURN(r.sig, GetString(doc, "sig", 128, "record"));
    if (r.alg == "ES256") {
      if (!IsLowerHex(r.key_fpr, 64) || !IsLowerHex(r.sig, 128)) {
        return Bad("an ES256 checkpoint needs a 64-digit key_fpr and a 128-digit sig");
      }
    } else if (r.alg == "none") {
      if (!r.key_fpr.empty() || !r.sig.empty()) {
        return Bad("an unsigned checkpoint (alg \"none\") has a key_fpr or a sig");
      }
    } else {
      return Bad("record.alg is neither \"ES256\" nor \"none\"");
    }
  } else if (type == "torn-tail") {
    r.type = RecordType::kTornTail;
    RETURN_IF_ERROR(
        ExpectKeys(doc, {"v", "seq", "time", "session", "type", "fragments", "prev"}, "record"));
    const Json& frags = doc.at("fragments");
    if (!frags.is_array() || frags.empty() || frags.size() > kMaxFragments) {
      return Bad("record.fragments is not an array of 1 to " + std::to_string(kMaxFragments));
    }
    for (const Json& f : frags) {
      RETURN_IF_ERROR(ExpectKeys(f, {"bytes", "sha256"}, "fragment"));
      Fragment frag;
      ASSIGN_OR_RETURN(frag.bytes, GetUnsigned(f, "bytes", kMaxLineBytes * 4, "fragment"));
      ASSIGN_OR_RETURN(frag.sha256, GetString(f, "sha256", 64, "fragment"));
      if (!IsLowerHex(frag.sha256, 64)) return Bad("fragment.sha256 is not 64 hex digits");
      r.fragments.push_back(std::move(frag));
    }
  } else {
    return Bad("record.type \"" + type.substr(0, 32) + "\" is unknown");
  }
  ASSIGN_OR_RETURN(uint64_t version, GetUnsigned(doc, "v", 1000, "record"));
  if (version != kFormatVersion) return Bad("record.v " + std::to_string(version) + " is not 1");
  ASSIGN_OR_RETURN(r.seq, GetUnsigned(doc, "seq", std::numeric_limits<int64_t>::max(), "record"));
  if (r.seq == 0) return Bad("record.seq is 0 (the first record is 1)");
  ASSIGN_OR_RETURN(r.time, GetString(doc, "time", 32, "record"));
  if (!IsRfc3339Millis(r.time)) return Bad("record.time is not YYYY-MM-DDTHH:MM:SS.mmmZ");
  ASSIGN_OR_RETURN(r.session, GetString(doc, "session", 32, "record"));
  if (!IsLowerHex(r.session, 32)) return Bad("record.session is not 32 hex digits");
  ASSIGN_OR_RETURN(r.prev, GetString(doc, "prev", 64, "record"));
  if (!IsLowerHex(r.prev, 64)) return Bad("record.prev is not 64 hex digits");
  if ((r.type == RecordType::kOpen) && !r.key_fpr.empty() && !IsLowerHex(r.key_fpr, 64)) {
    return Bad("record.key_fpr is not 64 hex digits");
  }
  return r;
}

std::string CheckpointMessage(const Record& c) {
  std::string m = "vmm-audit-checkpoint/1\n";
  m += "seq=" + std::to_string(c.seq) + "\n";
  m += "time=" + c.time + "\n";
  m += "session=" + c.session + "\n";
  m += "prev=" + c.prev + "\n";
  m += std::string("final=") + (c.final ? "true" : "false") + "\n";
  m += "alg=" + c.alg + "\n";
  m += "key_fpr=" + c.key_fpr + "\n";
  return m;
}

std::string Rfc3339Utc(int64_t seconds, int64_t nanoseconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(nanoseconds / 1000000));
  return buf;
}

std::string NowRfc3339Utc() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return Rfc3339Utc(ts.tv_sec, ts.tv_nsec);
}

}  // namespace vmm::audit
