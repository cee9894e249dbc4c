// Internal to vmm/acpi: the builders of each table, used by tables.cc. Each returns one whole
// table (header, length and checksum included) or an error.
//
//   ASSIGN_OR_RETURN(std::vector<uint8_t> madt, BuildMadt(platform));
//   ASSIGN_OR_RETURN(std::vector<uint8_t> fadt, BuildFadt(facs_gpa, dsdt_gpa));
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vmm/vm/acpi/tables.h"

namespace vmm::acpi {

inline constexpr size_t kHeaderSize = 36;  // ACPI 6.5 §5.2.6
inline constexpr size_t kChecksumOffset = 9;

// A system description table: the 36-byte header (signature, length, revision, checksum,
// OEM and creator ids) followed by `body`, with the checksum set.
Result<std::vector<uint8_t>> MakeTable(std::string_view signature, uint8_t revision,
                                       const std::vector<uint8_t>& body);

// Generic Address Structure, ACPI 6.5 §5.2.3.2 (12 bytes).
inline constexpr uint8_t kGasSystemIo = 1;
inline constexpr uint8_t kGasAccessByte = 1;
inline constexpr uint8_t kGasAccessWord = 2;
inline constexpr uint8_t kGasAccessDword = 3;
void PutGas(std::vector<uint8_t>& out, uint8_t space_id, uint8_t bit_width, uint8_t access_size,
            uint64_t address);

// FADT ("FACP"), revision 6, 276 bytes: fadt.cc.
inline constexpr size_t kFadtSize = 276;
Result<std::vector<uint8_t>> BuildFadt(uint64_t facs_gpa, uint64_t dsdt_gpa);

// FACS, 64 bytes, no checksum: fadt.cc.
inline constexpr size_t kFacsSize = 64;
inline constexpr uint64_t kFacsAlignment = 64;  // ACPI 6.5 §5.2.10
std::vector<uint8_t> BuildFacs();

// MADT ("APIC"), revision 5: madt.cc.
Result<std::vector<uint8_t>> BuildMadt(const PlatformDescription& platform);

// TPM2, revision 4, 76 bytes (TCG ACPI Specification, "ACPI Table for TPM 2.0"): CRB start
// method, control area kTpmCrbControlArea, LAML/LASA from the platform: tpm2.cc.
inline constexpr size_t kTpm2Size = 76;
Result<std::vector<uint8_t>> BuildTpm2(const PlatformDescription& platform);

// DSDT, revision 2 (64-bit integers): dsdt.cc.
Result<std::vector<uint8_t>> BuildDsdt(const PlatformDescription& platform);

}  // namespace vmm::acpi
