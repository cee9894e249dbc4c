// A cursor over a fuzzer's input: little-endian integers and byte strings, zero (or fewer
// bytes) once the input runs out, never past its end.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

struct FuzzReader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  bool done() const { return pos >= size; }
  size_t left() const { return pos < size ? size - pos : 0; }
  uint8_t U8() { return pos < size ? data[pos++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return U16() | (static_cast<uint32_t>(U16()) << 16); }
  uint64_t U64() { return U32() | (static_cast<uint64_t>(U32()) << 32); }
  // One register access of a device fuzzer: an op byte (its kind and width bits are the
  // fuzzer's own), a raw offset the fuzzer maps onto its registers, and a value to write.
  struct Access {
    uint8_t op;
    uint16_t raw;
    uint32_t value;
  };
  static constexpr size_t kAccessBytes = 7;
  Access NextAccess() { return {U8(), U16(), U32()}; }  // in order: a braced list is sequenced
  std::vector<uint8_t> Bytes(size_t n) {
    n = std::min(n, size - std::min(pos, size));
    std::vector<uint8_t> v(data + pos, data + pos + n);
    pos += n;
    return v;
  }
};
