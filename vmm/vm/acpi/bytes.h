// Little-endian byte writers for ACPI tables and AML.
//
//   std::vector<uint8_t> t;
//   PutU32(t, 0x1234);  PutFixedString(t, "CCVMM", 6);  // appends; the vector grows
//   RETURN_IF_ERROR(FixChecksum(t, 9));                  // sets t[9] so that sum(t) == 0
//
// Every writer appends to a std::vector, so none can write past the end; the only in-place
// write (FixChecksum) checks its offset. ACPI is little-endian throughout (ACPI 6.5 §5.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::acpi {

inline void PutU8(std::vector<uint8_t>& out, uint8_t v) { out.push_back(v); }

inline void PutU16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}

inline void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  PutU16(out, static_cast<uint16_t>(v));
  PutU16(out, static_cast<uint16_t>(v >> 16));
}

inline void PutU64(std::vector<uint8_t>& out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v));
  PutU32(out, static_cast<uint32_t>(v >> 32));
}

inline void PutBytes(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

inline void PutZeros(std::vector<uint8_t>& out, size_t count) { out.insert(out.end(), count, 0); }

// Appends exactly `width` bytes: `s` cut or padded with `pad` (fixed-width ACPI ids such as
// OEMID, which ACPI 6.5 §5.2.6 pads with spaces).
inline void PutFixedString(std::vector<uint8_t>& out, std::string_view s, size_t width,
                           char pad = ' ') {
  for (size_t i = 0; i < width; ++i) {
    out.push_back(static_cast<uint8_t>(i < s.size() ? s[i] : pad));
  }
}

// The 8-bit sum of `bytes`; an ACPI checksum is right when the sum over its range is 0.
inline uint8_t Sum8(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return sum;
}

// Sets bytes[checksum_offset] so that the 8-bit sum of `bytes` is 0.
inline Result<void> FixChecksum(std::span<uint8_t> bytes, size_t checksum_offset) {
  if (checksum_offset >= bytes.size()) {
    return Error(ErrorKind::kInternal,
                 "ACPI checksum offset " + std::to_string(checksum_offset) + " out of range");
  }
  bytes[checksum_offset] = 0;
  bytes[checksum_offset] = static_cast<uint8_t>(0x100 - Sum8(bytes));
  return Ok();
}

// Reads for tests and for consumers of a built blob; out-of-range reads return 0.
inline uint64_t GetLe(std::span<const uint8_t> bytes, size_t offset, size_t width) {
  uint64_t v = 0;
  if (offset > bytes.size() || width > bytes.size() - offset) return 0;
  for (size_t i = 0; i < width; ++i) v |= uint64_t{bytes[offset + i]} << (8 * i);
  return v;
}

}  // namespace vmm::acpi
