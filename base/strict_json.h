// JSON from an untrusted source, parsed with nlohmann-json but refusing what nlohmann accepts
// silently: a key repeated in one object (nlohmann keeps the last one) and nesting deeper than
// the caller allows. StrictJsonProblem words a refusal the same way for every caller, which
// prefixes it with what the document is.
//
//   StrictJson parsed = ParseStrictJson(text, /*max_depth=*/8);
//   if (parsed.problem != StrictJson::Problem::kNone) return Bad(StrictJsonProblem(parsed, 8));
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace vmm {

struct StrictJson {
  enum class Problem { kNone, kInvalid, kTooDeep, kRepeatedKey };
  Problem problem = Problem::kNone;
  std::string repeated_key;  // the first repeat, with kRepeatedKey
  nlohmann::json doc;        // valid only with kNone
};

// The first problem found wins, in this order: too deep, not JSON, a repeated key.
inline StrictJson ParseStrictJson(std::string_view text, int max_depth) {
  StrictJson out;
  std::vector<std::set<std::string>> open_objects;  // the keys of every open object
  bool too_deep = false;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth > max_depth) too_deep = true;
    switch (event) {
      case nlohmann::json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case nlohmann::json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case nlohmann::json::parse_event_t::key:
        if (!open_objects.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second &&
            out.repeated_key.empty()) {
          out.repeated_key = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return !too_deep;
  };
  out.doc = nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false);
  if (too_deep) {
    out.problem = StrictJson::Problem::kTooDeep;
  } else if (out.doc.is_discarded()) {
    out.problem = StrictJson::Problem::kInvalid;
  } else if (!out.repeated_key.empty()) {
    out.problem = StrictJson::Problem::kRepeatedKey;
  }
  if (out.problem != StrictJson::Problem::kNone) out.doc = nullptr;
  return out;
}

// Why ParseStrictJson(..., max_depth) refused the document: "not valid JSON", "nested deeper
// than N levels" or "the key \"K\" is repeated" (K as JSON writes it); "" when it did not.
inline std::string StrictJsonProblem(const StrictJson& parsed, int max_depth) {
  switch (parsed.problem) {
    case StrictJson::Problem::kInvalid:
      return "not valid JSON";
    case StrictJson::Problem::kTooDeep:
      return "nested deeper than " + std::to_string(max_depth) + " levels";
    case StrictJson::Problem::kRepeatedKey:
      return "the key " + nlohmann::json(parsed.repeated_key).dump() + " is repeated";
    case StrictJson::Problem::kNone:
      break;
  }
  return "";
}

}  // namespace vmm
