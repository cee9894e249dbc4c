#include "vmm/vm/acpi/tables.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/contract/layout.h"
#include "vmm/vm/acpi/bytes.h"

namespace vmm::acpi {
namespace {

constexpr uint64_t kBase = x86::kAcpiTablesAddr;

AcpiTables Build(uint32_t num_cpus, uint64_t base = kBase) {
  Result<AcpiTables> tables = BuildAcpiTables({.num_cpus = num_cpus, .virtio_mmio = {}}, base);
  EXPECT_TRUE(tables.has_value()) << tables.error().message();
  return tables ? *tables : AcpiTables{};
}

uint64_t Le(std::span<const uint8_t> bytes, size_t offset, size_t width) {
  EXPECT_LE(offset + width, bytes.size());
  return GetLe(bytes, offset, width);
}

std::string Chars(std::span<const uint8_t> bytes, size_t offset, size_t width) {
  return std::string(bytes.begin() + offset, bytes.begin() + offset + width);
}

void ExpectInvalidArgument(const PlatformDescription& platform, uint64_t base,
                           uint64_t max_size = x86::kAcpiTablesMax) {
  Result<AcpiTables> tables = BuildAcpiTables(platform, base, max_size);
  ASSERT_FALSE(tables.has_value());
  EXPECT_EQ(tables.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(AcpiTables, ZeroCpusIsRejected) {
  ExpectInvalidArgument({.num_cpus = 0, .virtio_mmio = {}}, kBase);
}

TEST(AcpiTables, MoreThan254CpusIsRejected) {
  ExpectInvalidArgument({.num_cpus = 255, .virtio_mmio = {}}, kBase);
  EXPECT_TRUE(BuildTables({.num_cpus = 254, .virtio_mmio = {}}, kBase).has_value());
}

TEST(AcpiTables, MisalignedBaseIsRejected) {
  ExpectInvalidArgument({.num_cpus = 1, .virtio_mmio = {}}, kBase + 8);
}

TEST(AcpiTables, BlobLargerThanTheReservedSpaceIsRejected) {
  ExpectInvalidArgument({.num_cpus = 1, .virtio_mmio = {}}, kBase, /*max_size=*/512);
}

TEST(AcpiTables, BaseThatWrapsTheAddressSpaceIsRejected) {
  ExpectInvalidArgument({.num_cpus = 1, .virtio_mmio = {}}, 0xFFFFFFFFFFFFFF00);
}

TEST(AcpiTables, MaxCpusFitInTheReservedSpace) {
  AcpiTables tables = Build(kMaxCpus);
  EXPECT_LE(tables.bytes.size(), x86::kAcpiTablesMax);
}

TEST(AcpiTables, BuildTablesReturnsTheBlobOfBuildAcpiTables) {
  Result<std::vector<uint8_t>> blob = BuildTables({.num_cpus = 3, .virtio_mmio = {}}, kBase);
  ASSERT_TRUE(blob.has_value());
  EXPECT_EQ(*blob, Build(3).bytes);
}

TEST(AcpiTables, BlobHoldsTheExpectedTablesInOrderAligned) {
  AcpiTables tables = Build(2);
  std::vector<std::string> order;
  uint64_t end = 0;
  for (const TableLocation& t : tables.tables) {
    order.push_back(t.signature);
    EXPECT_GE(t.offset, end) << t.signature << " overlaps the table before it";
    EXPECT_EQ((kBase + t.offset) % (t.signature == "FACS" ? 64 : 16), 0u) << t.signature;
    end = t.offset + t.length;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"RSDP", "XSDT", "FACP", "FACS", "DSDT", "APIC"}));
  EXPECT_EQ(tables.tables[0].offset, 0u);
  EXPECT_EQ(end, tables.bytes.size());
}

TEST(AcpiTables, RsdpRevision2HasBothChecksumsAndPointsAtXsdt) {
  AcpiTables tables = Build(1);
  std::span<const uint8_t> rsdp = tables.TableBytes("RSDP");
  ASSERT_EQ(rsdp.size(), 36u);
  EXPECT_EQ(Chars(rsdp, 0, 8), "RSD PTR ");
  EXPECT_EQ(Sum8(rsdp.first(20)), 0);
  EXPECT_EQ(Sum8(rsdp), 0);
  EXPECT_EQ(Chars(rsdp, 9, 6), "CCVMM ");
  EXPECT_EQ(rsdp[15], 2);           // revision
  EXPECT_EQ(Le(rsdp, 16, 4), 0u);   // RsdtAddress
  EXPECT_EQ(Le(rsdp, 20, 4), 36u);  // Length
  EXPECT_EQ(Le(rsdp, 24, 8), kBase + tables.Find("XSDT")->offset);
}

TEST(AcpiTables, EveryTableHeaderHasItsLengthIdsAndAZeroChecksum) {
  AcpiTables tables = Build(4);
  for (const TableLocation& t : tables.tables) {
    if (t.signature == "RSDP") continue;
    std::span<const uint8_t> bytes = tables.TableBytes(t.signature);
    EXPECT_EQ(Chars(bytes, 0, 4), t.signature);
    EXPECT_EQ(Le(bytes, 4, 4), t.length) << t.signature;
    if (t.signature == "FACS") continue;  // no checksum or OEM fields (§5.2.10)
    EXPECT_EQ(Sum8(bytes), 0) << t.signature;
    EXPECT_EQ(Chars(bytes, 10, 6), "CCVMM ") << t.signature;
    EXPECT_EQ(Chars(bytes, 16, 8), "CCVMMPLT") << t.signature;
  }
}

TEST(AcpiTables, XsdtListsFadtAndMadtAddresses) {
  AcpiTables tables = Build(2);
  std::span<const uint8_t> xsdt = tables.TableBytes("XSDT");
  ASSERT_EQ(xsdt.size(), 36u + 2 * 8);
  EXPECT_EQ(Le(xsdt, 36, 8), kBase + tables.Find("FACP")->offset);
  EXPECT_EQ(Le(xsdt, 44, 8), kBase + tables.Find("APIC")->offset);
}

TEST(AcpiTables, FadtFieldsAreAtTheirSpecOffsets) {
  AcpiTables tables = Build(1);
  std::span<const uint8_t> f = tables.TableBytes("FACP");
  ASSERT_EQ(f.size(), 276u);
  const uint64_t facs = kBase + tables.Find("FACS")->offset;
  const uint64_t dsdt = kBase + tables.Find("DSDT")->offset;
  EXPECT_EQ(f[8], 6);               // revision
  EXPECT_EQ(f[131], 5);             // minor version: ACPI 6.5
  EXPECT_EQ(Le(f, 36, 4), facs);    // FIRMWARE_CTRL
  EXPECT_EQ(Le(f, 132, 8), 0u);     // X_FIRMWARE_CTRL: only one of the two is set
  EXPECT_EQ(Le(f, 40, 4), dsdt);    // DSDT
  EXPECT_EQ(Le(f, 140, 8), dsdt);   // X_DSDT
  EXPECT_EQ(Le(f, 46, 2), 9u);      // SCI_INT
  EXPECT_EQ(Le(f, 48, 4), 0u);      // SMI_CMD
  EXPECT_EQ(Le(f, 52, 2), 0u);      // ACPI_ENABLE, ACPI_DISABLE
  EXPECT_EQ(Le(f, 56, 4), 0x600u);  // PM1a_EVT_BLK
  EXPECT_EQ(Le(f, 64, 4), 0x604u);  // PM1a_CNT_BLK
  EXPECT_EQ(Le(f, 76, 4), 0x608u);  // PM_TMR_BLK
  EXPECT_EQ(f[88], 4);              // PM1_EVT_LEN
  EXPECT_EQ(f[89], 2);              // PM1_CNT_LEN
  EXPECT_EQ(f[91], 4);              // PM_TMR_LEN
  const uint64_t boot_arch = Le(f, 109, 2);
  EXPECT_TRUE(boot_arch & (1 << 1)) << "8042 flag";
  EXPECT_TRUE(boot_arch & (1 << 2)) << "VGA not present";
  EXPECT_TRUE(boot_arch & (1 << 3)) << "MSI not supported";
  const uint64_t flags = Le(f, 112, 4);
  EXPECT_TRUE(flags & (1 << 0)) << "WBINVD";
  EXPECT_TRUE(flags & (1 << 2)) << "PROC_C1";
  EXPECT_FALSE(flags & (1 << 4)) << "PWR_BUTTON: the fixed-feature power button is present";
  EXPECT_TRUE(flags & (1 << 5)) << "SLP_BUTTON";
  EXPECT_TRUE(flags & (1 << 10)) << "RESET_REG_SUP";
  EXPECT_FALSE(flags & (1 << 20)) << "HW_REDUCED_ACPI";
  // RESET_REG: system I/O, 8 bits at offset 0, byte access, port 0x64; RESET_VALUE 0xFE.
  EXPECT_EQ(Le(f, 116, 4), 0x01000801u);
  EXPECT_EQ(Le(f, 120, 8), 0x64u);
  EXPECT_EQ(f[128], 0xFE);
  // X_PM1a_EVT_BLK, X_PM1a_CNT_BLK, X_PM_TMR_BLK: system I/O with the same ports and widths.
  EXPECT_EQ(Le(f, 148, 2), 0x2001u);
  EXPECT_EQ(Le(f, 152, 8), 0x600u);
  EXPECT_EQ(Le(f, 172, 2), 0x1001u);
  EXPECT_EQ(Le(f, 176, 8), 0x604u);
  EXPECT_EQ(Le(f, 208, 2), 0x2001u);
  EXPECT_EQ(Le(f, 212, 8), 0x608u);
}

TEST(AcpiTables, FacsAbove4GiBIsReachedThroughXFirmwareCtrlOnly) {
  const uint64_t high = 0x100000000;
  AcpiTables tables = Build(1, high);
  std::span<const uint8_t> f = tables.TableBytes("FACP");
  EXPECT_EQ(Le(f, 36, 4), 0u);
  EXPECT_EQ(Le(f, 132, 8), high + tables.Find("FACS")->offset);
  EXPECT_EQ(Le(f, 40, 4), 0u);
  EXPECT_EQ(Le(f, 140, 8), high + tables.Find("DSDT")->offset);
}

TEST(AcpiTables, MadtHasOneEnabledLapicPerCpuTheIoApicAndTheOverrides) {
  constexpr uint32_t kCpus = 4;
  AcpiTables tables = Build(kCpus);
  std::span<const uint8_t> m = tables.TableBytes("APIC");
  EXPECT_EQ(m[8], 5);  // revision
  EXPECT_EQ(Le(m, 36, 4), x86::kLapicAddr);
  EXPECT_EQ(Le(m, 40, 4), 1u);  // PCAT_COMPAT
  std::vector<uint8_t> lapic_ids;
  std::vector<std::vector<uint8_t>> others;
  for (size_t off = 44; off < m.size();) {
    const uint8_t type = m[off], len = m[off + 1];
    ASSERT_GE(len, 2) << "entry at " << off;
    ASSERT_LE(off + len, m.size());
    if (type == 0) {
      EXPECT_EQ(len, 8);
      EXPECT_EQ(m[off + 2], m[off + 3]) << "uid == APIC id";
      EXPECT_EQ(Le(m, off + 4, 4), 1u) << "enabled";
      lapic_ids.push_back(m[off + 3]);
    } else {
      others.emplace_back(m.begin() + off, m.begin() + off + len);
    }
    off += len;
  }
  EXPECT_EQ(lapic_ids, (std::vector<uint8_t>{0, 1, 2, 3}));
  const std::vector<std::vector<uint8_t>> expected = {
      {1, 12, kCpus, 0, 0x00, 0x00, 0xC0, 0xFE, 0, 0, 0, 0},  // IOAPIC id 4 at 0xFEC00000
      {2, 10, 0, 0, 2, 0, 0, 0, 0x00, 0x00},                  // IRQ0 -> GSI2
      {2, 10, 0, 9, 9, 0, 0, 0, 0x0D, 0x00},                  // IRQ9 -> GSI9 level, high
      {4, 6, 0xFF, 0x00, 0x00, 1},                            // NMI on LINT1, all CPUs
  };
  EXPECT_EQ(others, expected);
}

TEST(AcpiTables, DsdtDefinesS5WithTheVmmSleepType) {
  AcpiTables tables = Build(1);
  std::span<const uint8_t> d = tables.TableBytes("DSDT");
  EXPECT_EQ(d[8], 2);  // revision 2: 64-bit integers
  const uint8_t t = x86::kS5SleepType;
  const std::vector<uint8_t> s5 = {0x08, '_',  'S', '5',  '_', 0x12, 0x08,
                                   0x04, 0x0A, t,   0x0A, t,   0x00, 0x00};
  EXPECT_NE(std::search(d.begin(), d.end(), s5.begin(), s5.end()), d.end());
}

TEST(AcpiTables, DsdtDescribesCom1AndTheKeyboardController) {
  AcpiTables tables = Build(1);
  std::span<const uint8_t> d = tables.TableBytes("DSDT");
  auto contains = [&](std::vector<uint8_t> needle) {
    return std::search(d.begin(), d.end(), needle.begin(), needle.end()) != d.end();
  };
  EXPECT_TRUE(contains({0x0C, 0x41, 0xD0, 0x05, 0x01}));                    // EisaId PNP0501
  EXPECT_TRUE(contains({0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08}));  // IO 0x3F8, 8
  EXPECT_TRUE(contains({0x22, 0x10, 0x00}));                                // IRQNoFlags {4}
  EXPECT_TRUE(contains({0x0C, 0x41, 0xD0, 0x03, 0x03}));                    // EisaId PNP0303
  EXPECT_TRUE(contains({0x47, 0x01, 0x64, 0x00, 0x64, 0x00, 0x01, 0x01}));  // IO 0x64
  EXPECT_TRUE(contains({0x22, 0x02, 0x00}));                                // IRQNoFlags {1}
}

}  // namespace
}  // namespace vmm::acpi
