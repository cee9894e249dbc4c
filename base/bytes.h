// Little- and big-endian reads and writes over byte spans that never step outside them.
//
//   uint32_t magic = LoadLe<uint32_t>(file, 0x202).value_or(0);
//   StoreLe<uint16_t>(page, 0x1FE, 0xAA55);   // returns false if out of bounds
//   uint32_t size = LoadBe<uint32_t>(tpm_command, 2).value_or(0);   // TPM, swtpm: big-endian
//   AppendBe<uint32_t>(out, result_code);
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

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

// Big-endian (network order), as TPM 2.0 and swtpm's control protocol have it.
template <typename T>
std::optional<T> LoadBe(std::span<const uint8_t> bytes, uint64_t offset) {
  static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>);
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return std::nullopt;
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    value = static_cast<T>((uint64_t{value} << 8) | bytes[offset + i]);
  }
  return value;
}

template <typename T>
bool StoreBe(std::span<uint8_t> bytes, uint64_t offset, T value) {
  static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>);
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
  for (size_t i = 0; i < sizeof(T); ++i) {
    bytes[offset + i] = static_cast<uint8_t>(uint64_t{value} >> (8 * (sizeof(T) - 1 - i)));
  }
  return true;
}

template <typename T>
void AppendBe(std::vector<uint8_t>& out, T value) {
  static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>);
  for (size_t i = 0; i < sizeof(T); ++i) {
    out.push_back(static_cast<uint8_t>(uint64_t{value} >> (8 * (sizeof(T) - 1 - i))));
  }
}

// True when [offset, offset+len) lies inside a buffer of `size` bytes, without overflow.
inline bool InBounds(uint64_t size, uint64_t offset, uint64_t len) {
  return offset <= size && len <= size - offset;
}

}  // namespace vmm
