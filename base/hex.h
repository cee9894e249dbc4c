// Numbers and bytes as hexadecimal text, for messages.
//
//   Hex(0x1f)        -> "0x1f"
//   Hex(0x1f, 8)     -> "0x0000001f"   (at least 8 digits)
//   HexBytes(bytes)  -> "00ff10"       (two lowercase digits a byte, no prefix)
#pragma once

#include <cstdint>
#include <span>
#include <string>

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

}  // namespace vmm
