// TPM 2.0 framing (vtpm/protocol/tpm_command.h): the bytes built, and answers read without
// trusting their size fields.
#include "vtpm/protocol/tpm_command.h"

#include <gtest/gtest.h>

#include <vector>

namespace vmm::vtpm {
namespace {

TEST(TpmCommand, BuildsHeaderSessionAndSelection) {
  TpmCommandBuilder b(kTpmStSessions, kTpmCcPcrAllocate);
  b.U32(kTpmRhPlatform).EmptyPasswordSession();
  const PcrBank banks[] = {{kTpmAlgSha1, 0}, {kTpmAlgSha256, 0xFFFFFF}};
  AppendPcrSelection(b, banks);
  const std::vector<uint8_t> want = {
      0x80, 0x02, 0, 0,    0,    43,  0, 0,    0x01, 0x2B,  // tag, size 43, TPM_CC_PCR_Allocate
      0x40, 0,    0, 0x0C,                                  // TPM_RH_PLATFORM
      0,    0,    0, 9,    0x40, 0,   0, 0x09, 0,    0,    0, 0, 0,  // empty password session
      0,    0,    0, 2,                                              // two banks
      0,    0x04, 3, 0,    0,    0,                                  // sha1: none
      0,    0x0B, 3, 0xFF, 0xFF, 0xFF};                              // sha256: 0..23
  EXPECT_EQ(b.Finish(), want);
}

TEST(TpmCommand, ResponseParametersChecksSizeCodeAndParameterSize) {
  // No sessions: parameters are the rest.
  std::vector<uint8_t> ok = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0xAB, 0xCD};
  auto p = TpmResponseParameters(ok, false, "X");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size(), 2u);
  // Size field disagreeing with the bytes received.
  std::vector<uint8_t> lying = ok;
  lying[5] = 200;
  auto e = TpmResponseParameters(lying, false, "X");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("size field 200"), std::string::npos);
  // An error code is named in hex.
  std::vector<uint8_t> rc = {0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01};
  e = TpmResponseParameters(rc, false, "TPM2_Foo");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("TPM2_Foo failed: TPM response code 0x101"),
            std::string::npos);
  // Sessions: parameterSize bounds the parameters and may not run past the end.
  std::vector<uint8_t> s = {0x80, 0x02, 0, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0, 0, 0x01, 0};
  p = TpmResponseParameters(s, true, "X");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size(), 1u);
  s[13] = 99;
  EXPECT_FALSE(TpmResponseParameters(s, true, "X"));
  EXPECT_FALSE(TpmResponseParameters(std::vector<uint8_t>{0x80, 0x01, 0}, false, "X"));
}

TEST(TpmCommand, ReadsSelectionsAndRefusesHostileOnes) {
  std::vector<uint8_t> sel = {0, 0, 0, 1, 0, 0x0C, 4, 0x01, 0x00, 0x80, 0xFF};
  TpmReader r(sel);
  auto banks = ReadPcrSelection(r);
  ASSERT_TRUE(banks);
  ASSERT_EQ(banks->size(), 1u);
  EXPECT_EQ((*banks)[0].alg, kTpmAlgSha384);
  EXPECT_EQ((*banks)[0].pcrs, 0x800001u);  // PCRs above 23 are ignored
  std::vector<uint8_t> too_many = {0, 0, 1, 0};
  TpmReader r2(too_many);
  EXPECT_FALSE(ReadPcrSelection(r2));
  std::vector<uint8_t> truncated = {0, 0, 0, 1, 0, 0x0B, 3, 0xFF};
  TpmReader r3(truncated);
  EXPECT_FALSE(ReadPcrSelection(r3));
  std::vector<uint8_t> huge_select = {0, 0, 0, 1, 0, 0x0B, 33};
  TpmReader r4(huge_select);
  EXPECT_FALSE(ReadPcrSelection(r4));
}

TEST(TpmCommand, DigestSizesAndNames) {
  EXPECT_EQ(TpmDigestSize(kTpmAlgSha1), 20u);
  EXPECT_EQ(TpmDigestSize(kTpmAlgSha256), 32u);
  EXPECT_EQ(TpmDigestSize(kTpmAlgSha384), 48u);
  EXPECT_EQ(TpmDigestSize(kTpmAlgSha512), 64u);
  EXPECT_EQ(TpmDigestSize(0x1234), 0u);
  EXPECT_EQ(TpmAlgName(kTpmAlgSha384), "sha384");
  EXPECT_EQ(TpmAlgName(0x1234), "0x1234");
}

}  // namespace
}  // namespace vmm::vtpm
