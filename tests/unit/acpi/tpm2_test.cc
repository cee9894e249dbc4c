// The TPM's ACPI description: the TPM2 table (TCG ACPI Specification, "ACPI Table for
// TPM 2.0", revision 4) and the MSFT0101 device in the DSDT, present only with a TPM.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/contract/layout.h"
#include "vmm/vm/acpi/bytes.h"
#include "vmm/vm/acpi/tables.h"
#include "vmm/vm/tpm_crb/crb_device.h"

namespace vmm::acpi {
namespace {

constexpr uint64_t kBase = x86::kAcpiTablesAddr;

// The ACPI description and the device model must agree on where the interface is.
static_assert(kTpmCrbBase == vtpm::kCrbBaseGpa);
static_assert(kTpmCrbSize == vtpm::kCrbLocalitySize);
static_assert(kTpmCrbControlArea == vtpm::kCrbControlAreaGpa);

PlatformDescription WithTpm(uint32_t laml = 0, uint64_t lasa = 0) {
  PlatformDescription p;
  p.num_cpus = 2;
  p.tpm = true;
  p.tpm_log_min_length = laml;
  p.tpm_log_start = lasa;
  return p;
}

AcpiTables Build(const PlatformDescription& platform) {
  Result<AcpiTables> tables = BuildAcpiTables(platform, kBase);
  EXPECT_TRUE(tables.has_value()) << tables.error().message();
  return tables ? *tables : AcpiTables{};
}

bool Contains(std::span<const uint8_t> haystack, const std::vector<uint8_t>& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

const std::vector<uint8_t> kMsft0101 = {0x0D, 'M', 'S', 'F', 'T', '0', '1', '0', '1', 0x00};
// Memory32Fixed(ReadWrite, 0xFED40000, 0x1000), ACPI 6.5 §6.4.3.4.
const std::vector<uint8_t> kCrbMemory = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
                                         0xD4, 0xFE, 0x00, 0x10, 0x00, 0x00};

TEST(AcpiTpm2, NoTpmMeansNoTpm2TableAndNoDevice) {
  AcpiTables tables = Build({.num_cpus = 2, .virtio_mmio = {}});
  EXPECT_EQ(tables.Find("TPM2"), nullptr);
  EXPECT_EQ(tables.TableBytes("XSDT").size(), 36u + 2 * 8);
  EXPECT_FALSE(Contains(tables.TableBytes("DSDT"), kMsft0101));
}

TEST(AcpiTpm2, TableHasTheCrbStartMethodAndTheControlArea) {
  AcpiTables tables = Build(WithTpm());
  std::span<const uint8_t> t = tables.TableBytes("TPM2");
  ASSERT_EQ(t.size(), 76u);
  EXPECT_EQ(std::string(t.begin(), t.begin() + 4), "TPM2");
  EXPECT_EQ(GetLe(t, 4, 4), 76u);
  EXPECT_EQ(t[8], 4);  // revision
  EXPECT_EQ(Sum8(t), 0);
  EXPECT_EQ(GetLe(t, 36, 2), 0u);           // platform class: client
  EXPECT_EQ(GetLe(t, 38, 2), 0u);           // reserved
  EXPECT_EQ(GetLe(t, 40, 8), 0xFED40040u);  // control area
  EXPECT_EQ(GetLe(t, 48, 4), 7u);           // start method: CRB
  for (size_t i = 52; i < 64; ++i) EXPECT_EQ(t[i], 0) << "start method parameter " << i;
  EXPECT_EQ(GetLe(t, 64, 4), 0u);  // LAML: no log yet
  EXPECT_EQ(GetLe(t, 68, 8), 0u);  // LASA
}

TEST(AcpiTpm2, TableCarriesTheEventLogArea) {
  AcpiTables tables = Build(WithTpm(0x10000, 0x7FF0000));
  std::span<const uint8_t> t = tables.TableBytes("TPM2");
  EXPECT_EQ(GetLe(t, 64, 4), 0x10000u);
  EXPECT_EQ(GetLe(t, 68, 8), 0x7FF0000u);
  EXPECT_EQ(Sum8(t), 0);
}

TEST(AcpiTpm2, EventLogWithOnlyOneOfLengthAndAddressIsRejected) {
  EXPECT_FALSE(BuildAcpiTables(WithTpm(0x10000, 0), kBase).has_value());
  Result<AcpiTables> tables = BuildAcpiTables(WithTpm(0, 0x7FF0000), kBase);
  ASSERT_FALSE(tables.has_value());
  EXPECT_EQ(tables.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(AcpiTpm2, XsdtListsTheTpm2TableLast) {
  AcpiTables tables = Build(WithTpm());
  std::vector<std::string> order;
  for (const TableLocation& t : tables.tables) order.push_back(t.signature);
  EXPECT_EQ(order,
            (std::vector<std::string>{"RSDP", "XSDT", "FACP", "FACS", "DSDT", "APIC", "TPM2"}));
  std::span<const uint8_t> xsdt = tables.TableBytes("XSDT");
  ASSERT_EQ(xsdt.size(), 36u + 3 * 8);
  EXPECT_EQ(Sum8(xsdt), 0);
  EXPECT_EQ(GetLe(xsdt, 36, 8), kBase + tables.Find("FACP")->offset);
  EXPECT_EQ(GetLe(xsdt, 44, 8), kBase + tables.Find("APIC")->offset);
  EXPECT_EQ(GetLe(xsdt, 52, 8), kBase + tables.Find("TPM2")->offset);
  EXPECT_EQ((kBase + tables.Find("TPM2")->offset) % 16, 0u);
  EXPECT_EQ(tables.Find("TPM2")->offset + 76u, tables.bytes.size());
}

TEST(AcpiTpm2, DsdtDescribesTheCrbDeviceWithItsRegisterPage) {
  AcpiTables tables = Build(WithTpm());
  std::span<const uint8_t> d = tables.TableBytes("DSDT");
  EXPECT_EQ(Sum8(d), 0);
  EXPECT_TRUE(Contains(d, {'T', 'P', 'M', '0'}));
  EXPECT_TRUE(Contains(d, kMsft0101));
  EXPECT_TRUE(Contains(d, kCrbMemory));
}

TEST(AcpiTpm2, TpmTablesStillFitBesideTheMostCpus) {
  PlatformDescription p = WithTpm(0x10000, 0x7FF0000);
  p.num_cpus = kMaxCpus;
  AcpiTables tables = Build(p);
  EXPECT_LE(tables.bytes.size(), x86::kAcpiTablesMax);
}

}  // namespace
}  // namespace vmm::acpi
