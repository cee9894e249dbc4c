// Round trip through the real ACPICA tools (Debian package acpica-tools): every table must
// disassemble with `iasl -d` and the disassembly must compile back to the same bytes; then
// ACPICA's interpreter (acpiexec) loads FADT + DSDT + MADT and evaluates the DSDT objects.
// iasl 20200925 cannot read a lone RSDP file, so the RSDP is checked in tables_test.cc only.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/common/expect_text.h"
#include "vmm/contract/layout.h"
#include "vmm/vm/acpi/tables.h"

namespace vmm::acpi {
namespace {

namespace fs = std::filesystem;
using testing_util::ExpectContainsAll;
using testing_util::ExpectContainsNone;

constexpr uint32_t kCpus = 4;

bool Installed(const std::string& tool) {
  const char* path = getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (!dir.empty() && access((dir + "/" + tool).c_str(), X_OK) == 0) return true;
  }
  return false;
}

struct Output {
  int status = -1;
  std::string text;  // stdout and stderr
};

Output RunShell(const std::string& command) {
  Output out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.text.append(buf, n);
  out.status = pclose(pipe);
  return out;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// Writes every table of a kCpus platform into a fresh directory and disassembles it there.
class AcpiIasl : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"iasl", "acpiexec"}) {
      if (!Installed(tool)) GTEST_SKIP() << tool << " not installed (apt-get install acpica-tools)";
    }
    std::string pattern = ::testing::TempDir() + "acpi_iasl_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    // Two virtio-mmio devices where the machine puts them (a disk and an rng).
    std::vector<VirtioMmioSlot> virtio = {{0xD0000000, 0x200, 16}, {0xD0001000, 0x200, 17}};
    PlatformDescription platform{.num_cpus = kCpus, .virtio_mmio = virtio};
    if (with_tpm_) {  // a TPM with a 64 KiB event log below 128 MiB
      platform.tpm = true;
      platform.tpm_log_min_length = 0x10000;
      platform.tpm_log_start = 0x7FF0000;
    }
    Result<AcpiTables> tables = BuildAcpiTables(platform, x86::kAcpiTablesAddr);
    ASSERT_TRUE(tables.has_value()) << tables.error().message();
    tables_ = *tables;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path WriteTable(const std::string& signature) {
    std::span<const uint8_t> bytes = tables_.TableBytes(signature);
    fs::path path = dir_ / (signature + ".dat");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
    return path;
  }

  // Disassembles one table and returns the .dsl text; fails the test on any iasl complaint.
  std::string Disassemble(const std::string& signature) {
    fs::path dat = WriteTable(signature);
    Output out =
        RunShell("cd '" + dir_.string() + "' && iasl -d '" + dat.filename().string() + "'");
    EXPECT_EQ(out.status, 0) << out.text;
    ExpectContainsNone(out.text, {"rror", "arning"});
    ExpectContainsAll(out.text, {"appears to be a valid ACPI table"});
    return ReadFile(dir_ / (signature + ".dsl"));
  }

  // Compiles the .dsl of `signature` back and returns the bytes iasl produced.
  std::vector<uint8_t> Recompile(const std::string& signature) {
    Output out = RunShell("cd '" + dir_.string() + "' && iasl -p " + signature + "_re " +
                          signature + ".dsl");
    EXPECT_EQ(out.status, 0) << out.text;
    ExpectContainsAll(out.text, {"0 Errors, 0 Warnings, 0 Remarks"});
    std::string aml = ReadFile(dir_ / (signature + "_re.aml"));
    return std::vector<uint8_t>(aml.begin(), aml.end());
  }

  // The XSDT lists `tables` tables (FADT, MADT, and the TPM2 table when there is a TPM) and
  // round-trips through iasl.
  void ExpectXsdtListing(size_t tables) {
    std::string xsdt = Disassemble("XSDT");
    EXPECT_EQ(Count(xsdt, "ACPI Table Address"), tables) << xsdt;
    ExpectSameAsRecompiled("XSDT");
  }

  // Our table and iasl's recompilation must match except where iasl stamps itself as the
  // creator (bytes 28..35) and hence the checksum (byte 9), and where iasl writes 0 for a
  // resource End Tag checksum (0 means "not checked", ACPI 6.5 §6.4.2.9; ours is computed).
  void ExpectSameAsRecompiled(const std::string& signature) {
    std::span<const uint8_t> ours = tables_.TableBytes(signature);
    std::vector<uint8_t> theirs = Recompile(signature);
    ASSERT_EQ(theirs.size(), ours.size()) << signature;
    const bool has_header = signature != "FACS";  // the FACS has no standard header
    for (size_t i = 0; i < ours.size(); ++i) {
      if (has_header && (i == 9 || (i >= 28 && i < 36))) continue;
      if (ours[i] == theirs[i]) continue;
      const bool end_tag_checksum = i > 0 && ours[i - 1] == 0x79 && theirs[i] == 0;
      EXPECT_TRUE(end_tag_checksum) << signature << " differs at byte " << i << ": ours "
                                    << int{ours[i]} << ", iasl " << int{theirs[i]};
    }
  }

  // Loads FADT, DSDT and MADT into ACPICA's interpreter and runs `commands` (acpiexec -b).
  Output RunAcpiexec(const std::string& commands) {
    for (const char* table : {"FACP", "DSDT", "APIC"}) WriteTable(table);
    return RunShell("cd '" + dir_.string() + "' && acpiexec -b '" + commands +
                    "' FACP.dat DSDT.dat APIC.dat");
  }

  bool with_tpm_ = false;
  fs::path dir_;
  AcpiTables tables_;
};

// The same platform with a TPM: the TPM2 table and the TPM0 device in the DSDT.
class AcpiIaslTpm2 : public AcpiIasl {
 protected:
  AcpiIaslTpm2() { with_tpm_ = true; }
};

TEST_F(AcpiIasl, DsdtDisassemblesToTheExpectedDevicesAndS5) {
  std::string dsl = Disassemble("DSDT");
  ExpectContainsAll(dsl, {
                             "Name (_S5, Package (0x04)",
                             "0x05, \n        0x05, \n        Zero, \n        Zero",
                             "Scope (_SB)",
                             "Device (COM1)",
                             "Device (VR00)",
                             "Device (VR01)",
                             "\"LNRO0005\"",
                             "0xD0001000,         // Address Base",
                             "0x00000011,",  // GSI 17
                             "EisaId (\"PNP0501\")",
                             "0x03F8,             // Range Minimum",
                             "IRQNoFlags ()\n                    {4}",
                             "Device (PS2K)",
                             "EisaId (\"PNP0303\")",
                             "0x0064,             // Range Minimum",
                             "IRQNoFlags ()\n                    {1}",
                         });
  EXPECT_EQ(Count(dsl, "IO (Decode16,"), 3u) << dsl;
}

TEST_F(AcpiIasl, DsdtRecompilesToTheSameAml) {
  Disassemble("DSDT");
  ExpectSameAsRecompiled("DSDT");
}

TEST_F(AcpiIasl, MadtDisassemblyListsEveryCpuTheIoApicAndOverrides) {
  std::string dsl = Disassemble("APIC");
  EXPECT_EQ(Count(dsl, "[Processor Local APIC]"), kCpus) << dsl;
  EXPECT_EQ(Count(dsl, "Processor Enabled : 1"), kCpus) << dsl;
  EXPECT_EQ(Count(dsl, "[Interrupt Source Override]"), 2u) << dsl;
  ExpectContainsAll(dsl, {"I/O Apic ID : 04", "Address : FEC00000", "Interrupt Input LINT : 01"});
  ExpectSameAsRecompiled("APIC");
}

TEST_F(AcpiIasl, FadtDisassemblyShowsTheFixedHardware) {
  ExpectContainsAll(Disassemble("FACP"), {
                                             "PM1A Event Block Address : 00000600",
                                             "PM1A Control Block Address : 00000604",
                                             "PM Timer Block Address : 00000608",
                                             "SCI Interrupt : 0009",
                                             "8042 Present on ports 60/64 (V2) : 1",
                                             "Reset Register Supported (V2) : 1",
                                             "Hardware Reduced (V5) : 0",
                                             "Value to cause reset : FE",
                                         });
  ExpectSameAsRecompiled("FACP");
}

TEST_F(AcpiIasl, XsdtAndFacsRoundTrip) {
  ExpectXsdtListing(2);
  ExpectContainsAll(Disassemble("FACS"), {"Length : 00000040"});
  ExpectSameAsRecompiled("FACS");
}

TEST_F(AcpiIasl, AcpicaInterpreterLoadsTheTablesAndEvaluatesTheDsdt) {
  // acpiexec also runs self-tests that touch GPE blocks and PM2_CNT, which this platform does
  // not have; those print "Unexpected AE_BAD_..." lines, not ACPI warnings or errors.
  Output out = RunAcpiexec("evaluate \\_S5; evaluate \\_SB.COM1._CRS; evaluate \\_SB.PS2K._HID");
  EXPECT_EQ(out.status, 0) << out.text;
  // "(ACPI)": a Firmware Warning or Error.
  ExpectContainsNone(out.text, {"(ACPI)", "ACPI Error", "ACPI Warning"});
  ExpectContainsAll(out.text, {
                                  "1 ACPI AML tables successfully acquired and loaded",
                                  "[Package] Contains 4 Elements:\n"
                                  "    [Integer] = 0000000000000005\n"
                                  "    [Integer] = 0000000000000005\n"
                                  "    [Integer] = 0000000000000000\n"
                                  "    [Integer] = 0000000000000000",
                                  "47 01 F8 03 F8 03 01 08 22 10 00 79",
                                  "[Integer] = 000000000303D041",
                              });
}

TEST_F(AcpiIaslTpm2, Tpm2TableDisassemblesWithTheCrbStartMethodAndTheLog) {
  ExpectContainsAll(Disassemble("TPM2"), {
                                             "Revision : 04",
                                             "Table Length : 0000004C",
                                             "Platform Class : 0000",
                                             "Control Address : 00000000FED40040",
                                             "Start Method : 07 [Command Response Buffer]",
                                             "Minimum Log Length : 00010000",
                                             "Log Address : 0000000007FF0000",
                                         });
  ExpectSameAsRecompiled("TPM2");
}

TEST_F(AcpiIaslTpm2, XsdtListsTheTpm2Table) { ExpectXsdtListing(3); }

TEST_F(AcpiIaslTpm2, DsdtWithTheTpmDeviceRoundTrips) {
  ExpectContainsAll(Disassemble("DSDT"), {
                                             "Device (TPM0)", "Name (_HID, \"MSFT0101\"",
                                             "Memory32Fixed (ReadWrite,\n"
                                             "                    0xFED40000,         // Address "
                                             "Base\n"
                                             "                    0x00001000,         // Address "
                                             "Length",
                                             "Device (VR01)",  // the others are still there
                                         });
  ExpectSameAsRecompiled("DSDT");
}

TEST_F(AcpiIaslTpm2, AcpicaInterpreterEvaluatesTheTpmDevice) {
  Output out = RunAcpiexec("evaluate \\_SB.TPM0._HID; evaluate \\_SB.TPM0._CRS");
  EXPECT_EQ(out.status, 0) << out.text;
  ExpectContainsNone(out.text, {"ACPI Error"});
  ExpectContainsAll(
      out.text, {"[String] Length 08 = \"MSFT0101\"", "86 09 00 01 00 00 D4 FE 00 10 00 00 79"});
}

}  // namespace
}  // namespace vmm::acpi
