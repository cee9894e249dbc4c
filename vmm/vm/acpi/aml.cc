#include "vmm/vm/acpi/aml.h"

#include <string>
#include <utility>

#include "vmm/vm/acpi/bytes.h"

namespace vmm::acpi {
namespace {

// AML opcodes and prefixes, ACPI 6.5 §20.3 (AML Byte Stream Byte Values).
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0A;
constexpr uint8_t kWordPrefix = 0x0B;
constexpr uint8_t kDWordPrefix = 0x0C;
constexpr uint8_t kStringPrefix = 0x0D;
constexpr uint8_t kQWordPrefix = 0x0E;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kDualNamePrefix = 0x2E;
constexpr uint8_t kMultiNamePrefix = 0x2F;
constexpr uint8_t kExtOpPrefix = 0x5B;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = '\\';
constexpr uint8_t kParentPrefixChar = '^';
constexpr uint8_t kNullName = 0x00;

// Resource descriptor tags, ACPI 6.5 §6.4.2 (small: tag << 3 | length) and §6.4.3 (large).
constexpr uint8_t kIrqNoFlagsTag = 0x22;  // IRQ, length 2
constexpr uint8_t kIoPortTag = 0x47;      // I/O port, length 7
constexpr uint8_t kFixedIoTag = 0x4B;     // fixed I/O port, length 3
constexpr uint8_t kEndTag = 0x79;         // end tag, length 1
constexpr uint8_t kMemory32FixedTag = 0x86;
constexpr uint8_t kExtendedInterruptTag = 0x89;

Aml Invalid(std::string message) {
  return Aml::FromError(Error(ErrorKind::kInvalidArgument, "AML: " + std::move(message)));
}

// opcode bytes, PkgLength, then `body`.
Aml WithPkgLength(std::initializer_list<uint8_t> opcode, const Aml& body) {
  if (!body.ok()) return body;
  Result<std::vector<uint8_t>> length = EncodePkgLength(body.bytes().size());
  if (!length) return Aml::FromError(length.error());
  std::vector<uint8_t> out(opcode);
  PutBytes(out, *length);
  PutBytes(out, body.bytes());
  return Aml::FromBytes(std::move(out));
}

bool IsLeadNameChar(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsLeadNameChar(c) || (c >= '0' && c <= '9'); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Package elements, Scope and Device bodies are plain concatenations of terms.
Aml Concat(std::span<const Aml> parts) {
  Aml out;
  for (const Aml& part : parts) out.Append(part);
  return out;
}

// DefScope and DefDevice (ACPI 6.5 §19.6.122, §19.6.31): opcode, PkgLength, NameString, terms.
Aml NamedTermList(std::initializer_list<uint8_t> opcode, std::string_view path,
                  std::span<const Aml> terms) {
  Aml body = NameString(path);
  body.Append(Concat(terms));
  return WithPkgLength(opcode, body);
}

}  // namespace

Aml Aml::FromBytes(std::vector<uint8_t> bytes) {
  Aml aml;
  aml.bytes_ = std::move(bytes);
  return aml;
}

Aml Aml::FromError(Error error) {
  Aml aml;
  aml.error_ = std::move(error);
  return aml;
}

Result<std::vector<uint8_t>> Aml::Take() const {
  if (error_) return *error_;
  return bytes_;
}

Aml& Aml::Append(const Aml& other) {
  if (!ok()) return *this;
  if (!other.ok()) {
    error_ = other.error_;
    bytes_.clear();
    return *this;
  }
  PutBytes(bytes_, other.bytes_);
  return *this;
}

Aml TermList(std::span<const Aml> terms) { return Concat(terms); }

Result<std::vector<uint8_t>> EncodePkgLength(size_t body_length) {
  // The value includes the PkgLength bytes themselves, so pick the smallest size that fits.
  constexpr size_t kLimits[] = {0x3F, 0xFFF, 0xFFFFF, kMaxPkgLength};
  for (size_t n = 1; n <= 4; ++n) {
    if (body_length > kMaxPkgLength || body_length + n > kLimits[n - 1]) continue;
    const uint32_t value = static_cast<uint32_t>(body_length + n);
    if (n == 1) return std::vector<uint8_t>{static_cast<uint8_t>(value)};
    std::vector<uint8_t> out;
    PutU8(out, static_cast<uint8_t>(((n - 1) << 6) | (value & 0x0F)));
    for (size_t i = 1; i < n; ++i) PutU8(out, static_cast<uint8_t>(value >> (4 + 8 * (i - 1))));
    return out;
  }
  return Error(ErrorKind::kInvalidArgument,
               "AML: package of " + std::to_string(body_length) + " bytes exceeds PkgLength");
}

Aml NameString(std::string_view path) {
  std::vector<uint8_t> out;
  size_t pos = 0;
  if (!path.empty() && path[0] == '\\') {
    PutU8(out, kRootChar);
    pos = 1;
  } else {
    while (pos < path.size() && path[pos] == '^') {
      PutU8(out, kParentPrefixChar);
      ++pos;
    }
  }
  std::vector<std::string> segments;
  std::string_view rest = path.substr(pos);
  while (!rest.empty()) {
    size_t dot = rest.find('.');
    std::string_view seg = rest.substr(0, dot);
    if (seg.empty() || seg.size() > 4 || !IsLeadNameChar(seg[0])) {
      return Invalid("bad name segment '" + std::string(seg) + "' in '" + std::string(path) + "'");
    }
    for (char c : seg) {
      if (!IsNameChar(c)) return Invalid("bad character in name '" + std::string(path) + "'");
    }
    std::string padded(seg);
    padded.resize(4, '_');
    segments.push_back(std::move(padded));
    if (dot == std::string_view::npos) break;
    rest = rest.substr(dot + 1);
    if (rest.empty()) return Invalid("name '" + std::string(path) + "' ends with '.'");
  }
  if (segments.empty() && out.empty()) return Invalid("empty name");
  if (segments.size() > 255) return Invalid("name '" + std::string(path) + "' too deep");
  if (segments.empty()) {
    PutU8(out, kNullName);
  } else if (segments.size() == 2) {
    PutU8(out, kDualNamePrefix);
  } else if (segments.size() > 2) {
    PutU8(out, kMultiNamePrefix);
    PutU8(out, static_cast<uint8_t>(segments.size()));
  }
  for (const std::string& seg : segments) PutFixedString(out, seg, 4);
  return Aml::FromBytes(std::move(out));
}

Aml Integer(uint64_t value) {
  std::vector<uint8_t> out;
  if (value == 0) {
    PutU8(out, kZeroOp);
  } else if (value == 1) {
    PutU8(out, kOneOp);
  } else if (value <= 0xFF) {
    PutU8(out, kBytePrefix);
    PutU8(out, static_cast<uint8_t>(value));
  } else if (value <= 0xFFFF) {
    PutU8(out, kWordPrefix);
    PutU16(out, static_cast<uint16_t>(value));
  } else if (value <= 0xFFFFFFFF) {
    PutU8(out, kDWordPrefix);
    PutU32(out, static_cast<uint32_t>(value));
  } else {
    PutU8(out, kQWordPrefix);
    PutU64(out, value);
  }
  return Aml::FromBytes(std::move(out));
}

Aml DWord(uint32_t value) {
  std::vector<uint8_t> out;
  PutU8(out, kDWordPrefix);
  PutU32(out, value);
  return Aml::FromBytes(std::move(out));
}

Aml String(std::string_view s) {
  std::vector<uint8_t> out;
  PutU8(out, kStringPrefix);
  for (char c : s) {
    const auto byte = static_cast<uint8_t>(c);
    if (byte == 0 || byte > 0x7F) return Invalid("string with a non-ASCII or NUL character");
    PutU8(out, byte);
  }
  PutU8(out, 0);
  return Aml::FromBytes(std::move(out));
}

Result<uint32_t> EncodeEisaId(std::string_view id) {
  bool valid = id.size() == 7;
  for (size_t i = 0; valid && i < 3; ++i) valid = id[i] >= 'A' && id[i] <= 'Z';
  for (size_t i = 3; valid && i < 7; ++i) valid = HexValue(id[i]) >= 0;
  if (!valid) {
    return Error(ErrorKind::kInvalidArgument,
                 "AML: EISA id '" + std::string(id) + "' is not 3 letters and 4 hex digits");
  }
  // Three 5-bit letters ('A' = 1) then 16 bits of product id, stored big-endian.
  uint32_t big_endian =
      uint32_t(id[0] - 0x40) << 26 | uint32_t(id[1] - 0x40) << 21 | uint32_t(id[2] - 0x40) << 16;
  for (size_t i = 3; i < 7; ++i) big_endian |= uint32_t(HexValue(id[i])) << (4 * (6 - i));
  return __builtin_bswap32(big_endian);
}

Aml EisaId(std::string_view id) {
  Result<uint32_t> value = EncodeEisaId(id);
  if (!value) return Aml::FromError(value.error());
  return DWord(*value);
}

Aml Name(std::string_view path, const Aml& value) {
  Aml out = Aml::FromBytes({kNameOp});
  out.Append(NameString(path));
  out.Append(value);
  return out;
}

Aml Package(std::initializer_list<Aml> elements) {
  return Package(std::span<const Aml>(elements.begin(), elements.size()));
}

Aml Package(std::span<const Aml> elements) {
  if (elements.size() > 255) return Invalid("package with more than 255 elements");
  Aml body = Aml::FromBytes({static_cast<uint8_t>(elements.size())});  // NumElements
  body.Append(Concat(elements));
  return WithPkgLength({kPackageOp}, body);
}

Aml Buffer(std::span<const uint8_t> bytes) {
  Aml body = Integer(bytes.size());  // BufferSize
  body.Append(Aml::FromBytes(std::vector<uint8_t>(bytes.begin(), bytes.end())));
  return WithPkgLength({kBufferOp}, body);
}

Aml Scope(std::string_view path, std::initializer_list<Aml> terms) {
  return Scope(path, std::span<const Aml>(terms.begin(), terms.size()));
}

Aml Scope(std::string_view path, std::span<const Aml> terms) {
  return NamedTermList({kScopeOp}, path, terms);
}

Aml Device(std::string_view path, std::initializer_list<Aml> terms) {
  return Device(path, std::span<const Aml>(terms.begin(), terms.size()));
}

Aml Device(std::string_view path, std::span<const Aml> terms) {
  return NamedTermList({kExtOpPrefix, kDeviceOp}, path, terms);
}

Aml IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length, bool decode16) {
  if (min > max) return Invalid("IO descriptor with min > max");
  std::vector<uint8_t> out;
  PutU8(out, kIoPortTag);
  PutU8(out, decode16 ? 1 : 0);  // bit 0: decodes all 16 address bits
  PutU16(out, min);
  PutU16(out, max);
  PutU8(out, alignment);
  PutU8(out, length);
  return Aml::FromBytes(std::move(out));
}

Aml FixedIoPort(uint16_t base, uint8_t length) {
  if (base > 0x3FF) return Invalid("FixedIO base above 0x3FF (10-bit decode)");
  std::vector<uint8_t> out;
  PutU8(out, kFixedIoTag);
  PutU16(out, base);
  PutU8(out, length);
  return Aml::FromBytes(std::move(out));
}

Aml IrqNoFlags(std::initializer_list<uint8_t> irqs) {
  uint16_t mask = 0;
  for (uint8_t irq : irqs) {
    if (irq > 15) return Invalid("ISA IRQ " + std::to_string(irq) + " above 15");
    mask = static_cast<uint16_t>(mask | (1u << irq));
  }
  std::vector<uint8_t> out;
  PutU8(out, kIrqNoFlagsTag);
  PutU16(out, mask);
  return Aml::FromBytes(std::move(out));
}

Aml Memory32Fixed(uint32_t base, uint32_t length, bool read_write) {
  std::vector<uint8_t> out;
  PutU8(out, kMemory32FixedTag);
  PutU16(out, 9);  // length of the data after the 3-byte header
  PutU8(out, read_write ? 1 : 0);
  PutU32(out, base);
  PutU32(out, length);
  return Aml::FromBytes(std::move(out));
}

Aml ExtendedInterrupt(std::span<const uint32_t> interrupts, InterruptOptions options) {
  if (interrupts.empty() || interrupts.size() > 255) return Invalid("Interrupt needs 1..255 GSIs");
  std::vector<uint8_t> out;
  PutU8(out, kExtendedInterruptTag);
  PutU16(out, static_cast<uint16_t>(2 + 4 * interrupts.size()));
  // Bit 0 consumer, 1 edge, 2 active low, 3 shared, 4 wake capable.
  PutU8(out,
        static_cast<uint8_t>(1 | (options.edge_triggered ? 2 : 0) | (options.active_low ? 4 : 0) |
                             (options.shared ? 8 : 0) | (options.wake_capable ? 16 : 0)));
  PutU8(out, static_cast<uint8_t>(interrupts.size()));
  for (uint32_t gsi : interrupts) PutU32(out, gsi);
  return Aml::FromBytes(std::move(out));
}

Aml ResourceTemplate(std::initializer_list<Aml> descriptors) {
  return ResourceTemplate(std::span<const Aml>(descriptors.begin(), descriptors.size()));
}

Aml ResourceTemplate(std::span<const Aml> descriptors) {
  Aml all = Concat(descriptors);
  if (!all.ok()) return all;
  std::vector<uint8_t> bytes = all.bytes();
  PutU8(bytes, kEndTag);
  PutU8(bytes, 0);
  if (Result<void> fixed = FixChecksum(bytes, bytes.size() - 1); !fixed) {
    return Aml::FromError(fixed.error());
  }
  return Buffer(bytes);
}

}  // namespace vmm::acpi
