// A small AML emitter: each function returns the encoded bytes of one AML term, and terms
// nest like the ASL they stand for.
//
//   Aml com1 = Device("COM1", {Name("_HID", EisaId("PNP0501")), Name("_UID", Integer(0)),
//                              Name("_CRS", ResourceTemplate({IoPort(0x3F8, 0x3F8, 1, 8),
//                                                             IrqNoFlags({4})}))});
//   ASSIGN_OR_RETURN(std::vector<uint8_t> aml, Scope("\\_SB_", {com1}).Take());
//
// An Aml is a value: it owns its bytes. A bad input (a malformed name, an IRQ out of range, a
// package too long) does not throw; it makes the Aml an error, every Aml built from it carries
// the first such error along, and Take() reports it. Encodings follow ACPI 6.5 §20.2 (AML
// grammar) and §6.4 (resource data types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm::acpi {

class Aml {
 public:
  Aml() = default;  // the empty term list
  static Aml FromBytes(std::vector<uint8_t> bytes);
  static Aml FromError(Error error);

  bool ok() const { return !error_.has_value(); }
  // The encoded bytes; meaningless when !ok().
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  // The bytes, or the first error met while building this term or any of its parts.
  Result<std::vector<uint8_t>> Take() const;

  // Appends `other` (term lists are plain concatenations); keeps the first error.
  Aml& Append(const Aml& other);

 private:
  std::vector<uint8_t> bytes_;
  std::optional<Error> error_;
};

// Concatenates terms into one TermList.
Aml TermList(std::span<const Aml> terms);

// ---- Encodings (ACPI 6.5 §20.2.4 PkgLength, §20.2.2 NameString, §20.2.3 integers) ----

// Largest value a PkgLength can hold: 28 bits (4 bytes: 4 + 3 * 8 bits).
inline constexpr uint32_t kMaxPkgLength = (1u << 28) - 1;

// The PkgLength that precedes `body_length` bytes. The encoded value counts its own 1..4 bytes
// too: values <= 63 take one byte; otherwise bits 7:6 of the lead byte give the number of
// following bytes, bits 3:0 hold the low nibble and each following byte the next 8 bits.
Result<std::vector<uint8_t>> EncodePkgLength(size_t body_length);

// A NameString: optional root '\' or parent '^' prefixes, then dot-separated segments of up to
// four characters ([A-Z_] then [A-Z0-9_]); short segments are padded with '_' as iasl does
// ("_SB" -> "_SB_"). Two segments use DualNamePrefix, more use MultiNamePrefix; "\" alone is
// the root.
Aml NameString(std::string_view path);

// The shortest integer encoding: ZeroOp, OneOp, then Byte/Word/DWord/QWord prefixes.
Aml Integer(uint64_t value);
// Integer with DWordPrefix whatever the value (what iasl emits for EisaId).
Aml DWord(uint32_t value);
// A String: StringPrefix, ASCII 0x01..0x7F, NullChar.
Aml String(std::string_view s);
// EISA id "PNP0501" (3 letters A-Z, 4 hex digits) compressed to the 32-bit form (ASL EISAID,
// ACPI 6.5 §19.6) and emitted as a DWord.
Aml EisaId(std::string_view id);
// The 32-bit value EisaId() emits, or an error.
Result<uint32_t> EncodeEisaId(std::string_view id);

// ---- Named objects and packages (ACPI 6.5 §20.2.5) ----

Aml Name(std::string_view path, const Aml& value);                   // DefName
Aml Package(std::initializer_list<Aml> elements);                    // DefPackage
Aml Package(std::span<const Aml> elements);                          // <= 255 elements
Aml Buffer(std::span<const uint8_t> bytes);                          // DefBuffer
Aml Scope(std::string_view path, std::initializer_list<Aml> terms);  // DefScope
Aml Scope(std::string_view path, std::span<const Aml> terms);
Aml Device(std::string_view path, std::initializer_list<Aml> terms);  // DefDevice
Aml Device(std::string_view path, std::span<const Aml> terms);

// ---- Resource data (ACPI 6.5 §6.4); put descriptors inside ResourceTemplate() ----

// IO (Decode16 or Decode10, min, max, alignment, length): §6.4.2.5, 8 bytes.
Aml IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length, bool decode16 = true);
// FixedIO (base, length): §6.4.2.6, 4 bytes; base is 10 bits (<= 0x3FF).
Aml FixedIoPort(uint16_t base, uint8_t length);
// IRQNoFlags () {irqs}: §6.4.2.1, 3 bytes; ISA IRQs 0..15, edge, active high.
Aml IrqNoFlags(std::initializer_list<uint8_t> irqs);
// Memory32Fixed (ReadWrite/ReadOnly, base, length): §6.4.3.4, 12 bytes.
Aml Memory32Fixed(uint32_t base, uint32_t length, bool read_write = true);

struct InterruptOptions {
  bool edge_triggered = true;  // false: level
  bool active_low = false;
  bool shared = false;
  bool wake_capable = false;
};
// Interrupt (ResourceConsumer, ...) {gsis}: Extended Interrupt Descriptor §6.4.3.6, 1..255
// interrupts, no resource source.
Aml ExtendedInterrupt(std::span<const uint32_t> interrupts, InterruptOptions options = {});

// ResourceTemplate () {descriptors}: a Buffer holding the descriptors and an End Tag
// (§6.4.2.9) whose checksum makes the descriptor bytes sum to 0.
Aml ResourceTemplate(std::initializer_list<Aml> descriptors);
Aml ResourceTemplate(std::span<const Aml> descriptors);

}  // namespace vmm::acpi
