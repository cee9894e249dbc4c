// The TPM2 table (TCG ACPI Specification for Family 1.2 and 2.0, "ACPI Table for TPM 2.0",
// revision 4 layout): how the OS finds the TPM's start method and its event log.
#include <vector>

#include "vmm/vm/acpi/bytes.h"
#include "vmm/vm/acpi/table_builders.h"

namespace vmm::acpi {
namespace {

constexpr uint8_t kTpm2Revision = 4;
constexpr uint16_t kPlatformClassClient = 0;  // PC Client (1 would be Server)
// "Command Response Buffer interface": the OS writes CTRL_START itself, no ACPI _DSM or SMC.
constexpr uint32_t kStartMethodCrb = 7;
constexpr size_t kStartMethodParametersSize = 12;  // unused by method 7: zeros

}  // namespace

Result<std::vector<uint8_t>> BuildTpm2(const PlatformDescription& platform) {
  // LAML and LASA describe one region: both set or neither (Linux ignores a zero either).
  if ((platform.tpm_log_min_length == 0) != (platform.tpm_log_start == 0)) {
    return InvalidArgument("ACPI TPM2: the event log needs both a start address and a length");
  }
  std::vector<uint8_t> body;
  PutU16(body, kPlatformClassClient);
  PutU16(body, 0);  // reserved
  PutU64(body, kTpmCrbControlArea);
  PutU32(body, kStartMethodCrb);
  PutZeros(body, kStartMethodParametersSize);
  PutU32(body, platform.tpm_log_min_length);  // LAML
  PutU64(body, platform.tpm_log_start);       // LASA
  return MakeTable("TPM2", kTpm2Revision, body);
}

}  // namespace vmm::acpi
