#include "vmm/vm/acpi/aml.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "vmm/vm/acpi/bytes.h"

namespace vmm::acpi {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Encode(const Aml& aml) {
  Result<Bytes> bytes = aml.Take();
  EXPECT_TRUE(bytes.has_value()) << bytes.error().message();
  return bytes ? *bytes : Bytes{};
}

Bytes PkgLength(size_t body) {
  Result<Bytes> bytes = EncodePkgLength(body);
  EXPECT_TRUE(bytes.has_value()) << bytes.error().message();
  return bytes ? *bytes : Bytes{};
}

TEST(AmlPkgLength, OneByteUpTo63IncludingItself) {
  EXPECT_EQ(PkgLength(0), (Bytes{0x01}));
  EXPECT_EQ(PkgLength(62), (Bytes{0x3F}));  // value 63: the largest one-byte PkgLength
}

TEST(AmlPkgLength, TwoBytesFrom64To4095) {
  EXPECT_EQ(PkgLength(63), (Bytes{0x41, 0x04}));    // value 65 = 0x041 (64 cannot be encoded)
  EXPECT_EQ(PkgLength(4093), (Bytes{0x4F, 0xFF}));  // value 4095 = 0xFFF
}

TEST(AmlPkgLength, ThreeBytesFrom4096To2Pow20Minus1) {
  EXPECT_EQ(PkgLength(4094), (Bytes{0x81, 0x00, 0x01}));     // value 4097 = 0x1001
  EXPECT_EQ(PkgLength(0xFFFFC), (Bytes{0x8F, 0xFF, 0xFF}));  // value 0xFFFFF
}

TEST(AmlPkgLength, FourBytesUpTo2Pow28Minus1) {
  EXPECT_EQ(PkgLength(0xFFFFD), (Bytes{0xC1, 0x00, 0x00, 0x01}));  // value 0x100001
  EXPECT_EQ(PkgLength(kMaxPkgLength - 4), (Bytes{0xCF, 0xFF, 0xFF, 0xFF}));
}

TEST(AmlPkgLength, BeyondTwentyEightBitsIsRejected) {
  Result<Bytes> too_long = EncodePkgLength(kMaxPkgLength - 3);
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(AmlPkgLength, EveryLengthDecodesBackToBodyPlusItself) {
  for (size_t body : {0ul, 1ul, 61ul, 62ul, 63ul, 64ul, 100ul, 4092ul, 4093ul, 4094ul, 4095ul,
                      4096ul, 0xFFFFBul, 0xFFFFCul, 0xFFFFDul, 0xFFFFEul, 0x1000000ul}) {
    Bytes enc = PkgLength(body);
    ASSERT_FALSE(enc.empty());
    size_t follow = enc[0] >> 6;
    ASSERT_EQ(enc.size(), follow + 1) << body;
    uint32_t value = follow == 0 ? enc[0] & 0x3F : enc[0] & 0x0F;
    for (size_t i = 1; i < enc.size(); ++i) value |= uint32_t{enc[i]} << (4 + 8 * (i - 1));
    EXPECT_EQ(value, body + enc.size()) << body;
    if (follow != 0) {
      EXPECT_EQ(enc[0] & 0x30, 0) << "reserved bits set for " << body;
    }
  }
}

TEST(AmlInteger, UsesTheShortestEncoding) {
  EXPECT_EQ(Encode(Integer(0)), (Bytes{0x00}));
  EXPECT_EQ(Encode(Integer(1)), (Bytes{0x01}));
  EXPECT_EQ(Encode(Integer(2)), (Bytes{0x0A, 0x02}));
  EXPECT_EQ(Encode(Integer(0xFF)), (Bytes{0x0A, 0xFF}));
  EXPECT_EQ(Encode(Integer(0x100)), (Bytes{0x0B, 0x00, 0x01}));
  EXPECT_EQ(Encode(Integer(0x10000)), (Bytes{0x0C, 0x00, 0x00, 0x01, 0x00}));
  EXPECT_EQ(Encode(Integer(0x100000000)),
            (Bytes{0x0E, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}));
  EXPECT_EQ(Encode(DWord(5)), (Bytes{0x0C, 0x05, 0x00, 0x00, 0x00}));
}

TEST(AmlString, IsNullTerminatedAscii) {
  EXPECT_EQ(Encode(String("LNRO0005")),
            (Bytes{0x0D, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00}));
  EXPECT_FALSE(String("caf\xC3\xA9").ok());
}

TEST(AmlNameString, PadsSegmentsAndPrefixesPaths) {
  EXPECT_EQ(Encode(NameString("_HID")), (Bytes{'_', 'H', 'I', 'D'}));
  EXPECT_EQ(Encode(NameString("_SB")), (Bytes{'_', 'S', 'B', '_'}));
  EXPECT_EQ(Encode(NameString("\\_S5_")), (Bytes{'\\', '_', 'S', '5', '_'}));
  EXPECT_EQ(Encode(NameString("\\_SB_.COM1")),
            (Bytes{'\\', 0x2E, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'}));
  EXPECT_EQ(Encode(NameString("\\_SB.PCI0.ISA")),
            (Bytes{'\\', 0x2F, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'I', 'S', 'A', '_'}));
  EXPECT_EQ(Encode(NameString("^^DEV1")), (Bytes{'^', '^', 'D', 'E', 'V', '1'}));
  EXPECT_EQ(Encode(NameString("\\")), (Bytes{'\\', 0x00}));
}

TEST(AmlNameString, MalformedNamesAreRejected) {
  for (const char* bad : {"", "TOOLONG", "1ABC", "ab", "\\_SB_.", "A..B", "A-B"}) {
    Aml name = NameString(bad);
    ASSERT_FALSE(name.ok()) << bad;
    EXPECT_EQ(name.Take().error().kind(), ErrorKind::kInvalidArgument) << bad;
  }
}

TEST(AmlName, S5PackageMatchesIaslOutput) {
  // iasl: Name (_S5, Package () {5, 5, 0, 0})
  EXPECT_EQ(
      Encode(Name("_S5_", Package({Integer(5), Integer(5), Integer(0), Integer(0)}))),
      (Bytes{0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00}));
}

TEST(AmlEisaId, CompressesPnpIds) {
  EXPECT_EQ(*EncodeEisaId("PNP0501"), 0x0105D041u);
  EXPECT_EQ(*EncodeEisaId("PNP0303"), 0x0303D041u);
  EXPECT_EQ(*EncodeEisaId("PNP0C0C"), 0x0C0CD041u);
  EXPECT_EQ(Encode(EisaId("PNP0501")), (Bytes{0x0C, 0x41, 0xD0, 0x05, 0x01}));
  for (const char* bad : {"PNP050", "pnp0501", "PNP05G1", "PNP05011"}) {
    EXPECT_FALSE(EncodeEisaId(bad).has_value()) << bad;
  }
}

TEST(AmlResources, DescriptorsHaveTheSpecLayout) {
  EXPECT_EQ(Encode(IoPort(0x3F8, 0x3F8, 1, 8)),
            (Bytes{0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08}));
  EXPECT_EQ(Encode(IoPort(0x60, 0x60, 1, 1, /*decode16=*/false)),
            (Bytes{0x47, 0x00, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01}));
  EXPECT_EQ(Encode(FixedIoPort(0x60, 1)), (Bytes{0x4B, 0x60, 0x00, 0x01}));
  EXPECT_EQ(Encode(IrqNoFlags({4})), (Bytes{0x22, 0x10, 0x00}));
  EXPECT_EQ(Encode(IrqNoFlags({1, 12})), (Bytes{0x22, 0x02, 0x10}));
  EXPECT_EQ(Encode(Memory32Fixed(0xFED40000, 0x5000)),
            (Bytes{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xD4, 0xFE, 0x00, 0x50, 0x00, 0x00}));
  const uint32_t gsi[] = {5};
  EXPECT_EQ(Encode(ExtendedInterrupt(gsi)),
            (Bytes{0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00}));
  EXPECT_EQ(
      Encode(ExtendedInterrupt(gsi, {.edge_triggered = false, .active_low = true, .shared = true})),
      (Bytes{0x89, 0x06, 0x00, 0x0D, 0x01, 0x05, 0x00, 0x00, 0x00}));
}

TEST(AmlResources, OutOfRangeValuesAreRejected) {
  EXPECT_FALSE(IrqNoFlags({16}).ok());
  EXPECT_FALSE(FixedIoPort(0x400, 1).ok());
  EXPECT_FALSE(IoPort(0x10, 0x0F, 1, 1).ok());
  EXPECT_FALSE(ExtendedInterrupt({}).ok());
}

TEST(AmlResources, TemplateIsABufferEndingInAChecksummedEndTag) {
  Bytes rt = Encode(ResourceTemplate({IoPort(0x3F8, 0x3F8, 1, 8), IrqNoFlags({4})}));
  // BufferOp, PkgLength, BufferSize (BytePrefix 13), 8 + 3 descriptor bytes, EndTag 0x79 + sum.
  ASSERT_EQ(rt.size(), 3u + 1u + 13u);
  EXPECT_EQ(rt[0], 0x11);
  EXPECT_EQ(rt[1], rt.size() - 1);
  EXPECT_EQ(rt[2], 0x0A);
  EXPECT_EQ(rt[3], 13);
  std::span<const uint8_t> descriptors = std::span(rt).subspan(4);
  EXPECT_EQ(descriptors[descriptors.size() - 2], 0x79);
  EXPECT_EQ(Sum8(descriptors), 0);
}

TEST(AmlDevice, UsesExtOpPrefixAndCarriesItsBody) {
  Bytes dev = Encode(Device("COM1", {Name("_UID", Integer(0))}));
  EXPECT_EQ(dev, (Bytes{0x5B, 0x82, 0x0B, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x00}));
  Bytes scope = Encode(Scope("\\_SB_", {}));
  EXPECT_EQ(scope, (Bytes{0x10, 0x06, '\\', '_', 'S', 'B', '_'}));
}

TEST(AmlDevice, LargeBodiesGetMultiBytePkgLength) {
  std::vector<Aml> names;
  for (int i = 0; i < 20; ++i) names.push_back(Name("_UID", Integer(0x12345678)));  // 10 B each
  Bytes dev = Encode(Device("BIG0", names));
  // body = 4 (name) + 200; PkgLength needs 2 bytes (value 206 > 63).
  ASSERT_EQ(dev.size(), 2u + 2u + 204u);
  EXPECT_EQ(dev[2], 0x40 | (206 & 0x0F));
  EXPECT_EQ(dev[3], 206 >> 4);
}

TEST(AmlErrors, TheFirstErrorPropagatesToTheOutermostTerm) {
  Aml bad = Scope("\\_SB_", {Device("COM1", {Name("_HID", EisaId("bogus"))}), Device("lower", {})});
  Result<Bytes> out = bad.Take();
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().message().find("bogus"), std::string::npos) << out.error().message();
}

TEST(AmlPackage, MoreThan255ElementsIsRejected) {
  std::vector<Aml> many(256, Integer(0));
  EXPECT_FALSE(Package(many).ok());
  many.pop_back();
  EXPECT_TRUE(Package(many).ok());
}

}  // namespace
}  // namespace vmm::acpi
