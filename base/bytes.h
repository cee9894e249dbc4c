// Little-endian reads and writes over byte spans that never step outside them.
//
//   uint32_t magic = LoadLe<uint32_t>(file, 0x202).value_or(0);
//   StoreLe<uint16_t>(page, 0x1FE, 0xAA55);   // returns false if out of bounds
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

namespace vmm {

template <typename T>
std::optional<T> LoadLe(std::span<const uint8_t> bytes, uint64_t offset) {
  static_assert(std::is_integral_v<T>);
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return std::nullopt;
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));  // x86_64 is little-endian
  return value;
}

template <typename T>
bool StoreLe(std::span<uint8_t> bytes, uint64_t offset, T value) {
  static_assert(std::is_integral_v<T>);
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
  return true;
}

// True when [offset, offset+len) lies inside a buffer of `size` bytes, without overflow.
inline bool InBounds(uint64_t size, uint64_t offset, uint64_t len) {
  return offset <= size && len <= size - offset;
}

}  // namespace vmm
