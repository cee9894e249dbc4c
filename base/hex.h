// Numbers and bytes as hexadecimal text, for messages.
//
//   Hex(0x1f)        -> "0x1f"
//   Hex(0x1f, 8)     -> "0x0000001f"   (at least 8 digits)
//   HexBytes(bytes)  -> "00ff10"       (two lowercase digits a byte, no prefix)
//   ParseHexBytes("00FF10") -> {0x00, 0xff, 0x10}; nullopt for an odd length or a non-digit
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmm {

inline std::string Hex(uint64_t value, int min_digits = 1) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string digits;
  do {
    digits.insert(digits.begin(), kDigits[value & 0xf]);
    value >>= 4;
  } while (value != 0);
  if (min_digits > static_cast<int>(digits.size())) {
    digits.insert(0, static_cast<size_t>(min_digits) - digits.size(), '0');
  }
  return "0x" + digits;
}

inline std::string HexBytes(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s += kDigits[b >> 4];
    s += kDigits[b & 0xf];
  }
  return s;
}

// Hex text (either case, no prefix, no separators) to bytes.
inline std::optional<std::vector<uint8_t>> ParseHexBytes(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  out.reserve(text.size() / 2);
  for (size_t i = 0; i < text.size(); i += 2) {
    const int hi = digit(text[i]);
    const int lo = digit(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

}  // namespace vmm
