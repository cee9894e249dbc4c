// codec.h: table-driven, one pass over the text each (the evidence bundle's log and
// certificates are most of what a verification reads, ARCHITECTURE.md §8).
#include "attestation/codec.h"

#include <array>
#include <cstring>

namespace vmm::attestation {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// A character's value in `digits`, or -1.
constexpr std::array<int8_t, 256> ValueTable(std::string_view digits) {
  std::array<int8_t, 256> table{};
  table.fill(-1);
  for (size_t i = 0; i < digits.size(); ++i) {
    table[static_cast<uint8_t>(digits[i])] = static_cast<int8_t>(i);
  }
  return table;
}
constexpr std::array<int8_t, 256> kBase64Value = ValueTable(kAlphabet);
constexpr std::array<int8_t, 256> kHexValue = ValueTable("0123456789abcdef");

Error Bad(const std::string& what) { return Error(ErrorKind::kProtocol, what); }

int Value(char c) { return kBase64Value[static_cast<uint8_t>(c)]; }

}  // namespace

std::string EncodeBase64(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8 | bytes[i + 2];
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[v >> shift & 63];
  }
  if (const size_t left = bytes.size() - i; left > 0) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | (left == 2 ? uint32_t{bytes[i + 1]} << 8 : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += left == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::vector<uint8_t>> DecodeBase64Strict(std::string_view text, size_t max) {
  if (text.size() % 4 != 0) return Bad("base64 length is not a multiple of 4");
  const size_t pad = text.empty() || text.back() != '=' ? 0 : text[text.size() - 2] == '=' ? 2 : 1;
  const size_t size = text.size() / 4 * 3 - pad;
  if (size > max) return Bad("more than " + std::to_string(max) + " bytes");
  std::vector<uint8_t> out(size);
  uint8_t* o = out.data();
  const size_t full = text.size() - (pad ? 4 : 0);  // the groups without padding
  for (size_t i = 0; i < full; i += 4) {
    const int a = Value(text[i]), b = Value(text[i + 1]), c = Value(text[i + 2]),
              d = Value(text[i + 3]);
    if ((a | b | c | d) < 0) return Bad("not base64");
    const uint32_t v = uint32_t(a) << 18 | uint32_t(b) << 12 | uint32_t(c) << 6 | uint32_t(d);
    *o++ = static_cast<uint8_t>(v >> 16);
    *o++ = static_cast<uint8_t>(v >> 8);
    *o++ = static_cast<uint8_t>(v);
  }
  if (pad) {
    const std::string_view last = text.substr(full);
    const int a = Value(last[0]), b = Value(last[1]), c = pad == 1 ? Value(last[2]) : 0;
    if ((a | b | c) < 0) return Bad("not base64");
    // The bits below the last byte must be zero, or other texts would decode the same.
    if ((pad == 2 && (b & 0x0f) != 0) || (pad == 1 && (c & 0x03) != 0)) {
      return Bad("not canonical base64");
    }
    *o++ = static_cast<uint8_t>(a << 2 | b >> 4);
    if (pad == 1) *o++ = static_cast<uint8_t>((b & 0x0f) << 4 | c >> 2);
  }
  return out;
}

bool ValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* const end = p + text.size();
  while (p < end) {
    // ASCII, eight bytes at a time: the common case.
    uint64_t word;
    if (end - p >= 8 && (std::memcpy(&word, p, 8), (word & 0x8080808080808080u) == 0)) {
      p += 8;
      continue;
    }
    const uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    // Unicode Table 3-7: the lead byte fixes the length and the second byte's range.
    size_t n = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) < n || p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i < n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += n;
  }
  return true;
}

Result<std::vector<uint8_t>> DecodeLowerHex(std::string_view text) {
  if (text.size() % 2 != 0) return Bad("odd number of hex digits");
  std::vector<uint8_t> out(text.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = kHexValue[static_cast<uint8_t>(text[2 * i])];
    const int lo = kHexValue[static_cast<uint8_t>(text[2 * i + 1])];
    if ((hi | lo) < 0) return Bad("not lowercase hex");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace vmm::attestation
