// Names for the values of an enum or of a numeric code, kept as one table per type instead of
// a switch in every name function, and looked up both ways:
//   constexpr NamedValue<Fault> kFaultNames[] = {{Fault::kNone, "no fault"}, ...};
//   const char* text = NameOf(kFaultNames, fault, "unknown fault");
// The tables hold static strings only; nothing here allocates or owns anything.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace vmm {

template <typename T>
struct NamedValue {
  T value;
  const char* name;
};

// The name `table` gives `value`, or `fallback` (which may be nullptr) when it lists none.
template <typename T, size_t N>
constexpr const char* NameOf(const NamedValue<T> (&table)[N], T value, const char* fallback) {
  for (const NamedValue<T>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return fallback;
}

// The value `table` names `name`, or nullopt for any other text.
template <typename T, size_t N>
constexpr std::optional<T> ValueNamed(const NamedValue<T> (&table)[N], std::string_view name) {
  for (const NamedValue<T>& entry : table) {
    if (name == entry.name) return entry.value;
  }
  return std::nullopt;
}

}  // namespace vmm
