#include "vmm/vm/acpi/tables.h"

#include <cstdio>
#include <limits>
#include <string>
#include <utility>

#include "base/hex.h"
#include "vmm/vm/acpi/bytes.h"
#include "vmm/vm/acpi/table_builders.h"

namespace vmm::acpi {
namespace {

constexpr uint64_t kTableAlignment = 16;  // the RSDP must be (§5.2.5.1); the rest by choice
constexpr size_t kRsdpSize = 36;          // revision 2 RSDP, §5.2.5.3
constexpr uint8_t kRsdpRevision = 2;
constexpr size_t kRsdpChecksumLength = 20;  // the ACPI 1.0 part covered by the first checksum
constexpr size_t kRsdpChecksumOffset = 8;
constexpr size_t kRsdpExtChecksumOffset = 32;
constexpr uint8_t kXsdtRevision = 1;  // §5.2.8

uint64_t AlignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

Result<std::vector<uint8_t>> BuildRsdp(uint64_t xsdt_gpa) {
  std::vector<uint8_t> t;
  PutFixedString(t, "RSD PTR ", 8);
  PutU8(t, 0);  // checksum of bytes 0..19
  PutFixedString(t, kOemId, 6);
  PutU8(t, kRsdpRevision);
  PutU32(t, 0);  // RsdtAddress: XSDT only; the OS must use the XSDT when present (§5.2.5.3)
  PutU32(t, kRsdpSize);
  PutU64(t, xsdt_gpa);
  PutU8(t, 0);  // extended checksum, all 36 bytes
  PutZeros(t, 3);
  RETURN_IF_ERROR(FixChecksum(std::span(t).first(kRsdpChecksumLength), kRsdpChecksumOffset));
  RETURN_IF_ERROR(FixChecksum(t, kRsdpExtChecksumOffset));
  return t;
}

Result<std::vector<uint8_t>> BuildXsdt(const std::vector<uint64_t>& entries) {
  std::vector<uint8_t> body;
  for (uint64_t gpa : entries) PutU64(body, gpa);
  return MakeTable("XSDT", kXsdtRevision, body);
}

// One table in the blob: its bytes (filled in once the addresses are known) and alignment.
struct Slot {
  std::string signature;
  size_t size = 0;
  uint64_t alignment = kTableAlignment;
  std::vector<uint8_t> bytes;
  uint64_t offset = 0;
};

}  // namespace

Result<std::vector<uint8_t>> MakeTable(std::string_view signature, uint8_t revision,
                                       const std::vector<uint8_t>& body) {
  const size_t length = kHeaderSize + body.size();
  if (signature.size() != 4 || length > std::numeric_limits<uint32_t>::max()) {
    return Error(ErrorKind::kInternal, "bad ACPI table '" + std::string(signature) + "'");
  }
  std::vector<uint8_t> t;
  t.reserve(length);
  PutFixedString(t, signature, 4);
  PutU32(t, static_cast<uint32_t>(length));
  PutU8(t, revision);
  PutU8(t, 0);  // checksum, set below
  PutFixedString(t, kOemId, 6);
  PutFixedString(t, kOemTableId, 8);
  PutU32(t, kOemRevision);
  PutFixedString(t, kCreatorId, 4);
  PutU32(t, kCreatorRevision);
  PutBytes(t, body);
  RETURN_IF_ERROR(FixChecksum(t, kChecksumOffset));
  return t;
}

const TableLocation* AcpiTables::Find(std::string_view signature) const {
  for (const TableLocation& table : tables) {
    if (table.signature == signature) return &table;
  }
  return nullptr;
}

std::span<const uint8_t> AcpiTables::TableBytes(std::string_view signature) const {
  const TableLocation* table = Find(signature);
  if (table == nullptr || table->offset > bytes.size() ||
      table->length > bytes.size() - table->offset) {
    return {};
  }
  return std::span(bytes).subspan(table->offset, table->length);
}

Result<AcpiTables> BuildAcpiTables(const PlatformDescription& platform, uint64_t base_gpa,
                                   uint64_t max_size) {
  if (platform.num_cpus == 0 || platform.num_cpus > kMaxCpus) {
    return InvalidArgument("ACPI: " + std::to_string(platform.num_cpus) +
                           " CPUs requested, the platform supports 1.." + std::to_string(kMaxCpus));
  }
  if (base_gpa % kTableAlignment != 0) {
    return InvalidArgument("ACPI: tables address " + Hex(base_gpa) + " is not 16-byte aligned");
  }

  // Tables that point at nothing first; their sizes fix the layout.
  ASSIGN_OR_RETURN(std::vector<uint8_t> dsdt, BuildDsdt(platform));
  ASSIGN_OR_RETURN(std::vector<uint8_t> madt, BuildMadt(platform));
  std::vector<uint8_t> facs = BuildFacs();

  std::vector<uint8_t> tpm2;
  if (platform.tpm) {
    ASSIGN_OR_RETURN(tpm2, BuildTpm2(platform));
  }

  // Blob order; the XSDT lists every table after it except the FACS and DSDT, which the FADT
  // points at (§5.2.8, §5.2.9). The TPM2 slot comes last and only with a TPM.
  enum { kRsdp, kXsdt, kFadt, kFacs, kDsdt, kMadt, kTpm2, kSlotCount };
  std::vector<size_t> xsdt_entries = {kFadt, kMadt};
  if (platform.tpm) xsdt_entries.push_back(kTpm2);
  std::vector<Slot> slots(platform.tpm ? kSlotCount : kTpm2);
  slots[kRsdp] = {"RSDP", kRsdpSize, kTableAlignment, {}, 0};
  slots[kXsdt] = {"XSDT", kHeaderSize + 8 * xsdt_entries.size(), kTableAlignment, {}, 0};
  slots[kFadt] = {"FACP", kFadtSize, kTableAlignment, {}, 0};
  slots[kFacs] = {"FACS", facs.size(), kFacsAlignment, std::move(facs), 0};
  slots[kDsdt] = {"DSDT", dsdt.size(), kTableAlignment, std::move(dsdt), 0};
  slots[kMadt] = {"APIC", madt.size(), kTableAlignment, std::move(madt), 0};
  if (platform.tpm) slots[kTpm2] = {"TPM2", tpm2.size(), kTableAlignment, std::move(tpm2), 0};

  uint64_t end = 0;
  for (Slot& slot : slots) {
    if (base_gpa > std::numeric_limits<uint64_t>::max() - end - slot.size - slot.alignment) {
      return InvalidArgument("ACPI: tables at " + Hex(base_gpa) + " wrap around");
    }
    // Align the address, not the offset: the FACS needs 64 and base_gpa only promises 16.
    slot.offset = AlignUp(base_gpa + end, slot.alignment) - base_gpa;
    end = slot.offset + slot.size;
  }
  if (end > max_size) {
    return InvalidArgument("ACPI: tables need " + std::to_string(end) + " bytes, more than the " +
                           std::to_string(max_size) + " reserved for them");
  }
  auto gpa = [&](size_t slot) { return base_gpa + slots[slot].offset; };

  ASSIGN_OR_RETURN(slots[kFadt].bytes, BuildFadt(gpa(kFacs), gpa(kDsdt)));
  std::vector<uint64_t> xsdt_gpas;
  for (size_t slot : xsdt_entries) xsdt_gpas.push_back(gpa(slot));
  ASSIGN_OR_RETURN(slots[kXsdt].bytes, BuildXsdt(xsdt_gpas));
  ASSIGN_OR_RETURN(slots[kRsdp].bytes, BuildRsdp(gpa(kXsdt)));

  AcpiTables out;
  out.bytes.reserve(end);
  for (const Slot& slot : slots) {
    if (slot.bytes.size() != slot.size) {
      return Error(ErrorKind::kInternal, "ACPI: " + slot.signature + " changed size");
    }
    PutZeros(out.bytes, slot.offset - out.bytes.size());
    PutBytes(out.bytes, slot.bytes);
    out.tables.push_back(
        {slot.signature, static_cast<uint32_t>(slot.offset), static_cast<uint32_t>(slot.size)});
  }
  return out;
}

Result<std::vector<uint8_t>> BuildTables(const PlatformDescription& platform, uint64_t base_gpa) {
  ASSIGN_OR_RETURN(AcpiTables tables, BuildAcpiTables(platform, base_gpa));
  return std::move(tables.bytes);
}

}  // namespace vmm::acpi
