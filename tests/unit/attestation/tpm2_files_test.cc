// attestation/tpm2_files.h: unpack -> pack gives the bundle back; the pcrs file has tpm2-tools'
// layout and its reader refuses what does not fit it.
#include "attestation/tpm2_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/attestation/fake_tpm.h"

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers
using ::testing::HasSubstr;

class Tpm2FilesTest : public ::testing::Test {
 protected:
  Tpm2FilesTest() : evidence_(MakeEvidence(tpm_, ca_, Bytes(20, 3))) {}
  FakeTpm tpm_;
  TestCa ca_{"CA"};
  Evidence evidence_;
};

TEST_F(Tpm2FilesTest, UnpackThenPackGivesTheBundleBack) {
  auto files = UnpackEvidence(evidence_);
  ASSERT_TRUE(files.has_value()) << files.error().message();
  for (const char* name : {"quote.msg", "quote.sig", "quote.pcrs", "ak.pub", "ak.pub.pem",
                           "ak.crt.pem", "ek.crt.pem", "ca-chain.pem", "eventlog.bin"}) {
    EXPECT_EQ(files->count(name), 1u) << name;
  }
  EXPECT_EQ((*files)["quote.msg"], evidence_.attest);
  EXPECT_EQ((*files)["ak.pub"].size(), evidence_.ak_public.size() + 2);
  auto packed = PackEvidence(*files, EvidenceSource::kGuest);
  ASSERT_TRUE(packed.has_value()) << packed.error().message();
  evidence_.source = EvidenceSource::kGuest;
  EXPECT_EQ(SerializeEvidence(*packed), SerializeEvidence(evidence_));
}

TEST_F(Tpm2FilesTest, PcrsFileHasTpm2ToolsLayout) {
  auto file = WritePcrsFile(evidence_.attest, evidence_.pcrs);
  ASSERT_TRUE(file.has_value());
  // 20 values (PCRs 0-9 in two banks) in lists of at most 8: 3 TPML_DIGEST.
  ASSERT_EQ(file->size(), 132u + 4 + 3 * 532);
  uint32_t banks, lists;
  std::memcpy(&banks, file->data(), 4);
  std::memcpy(&lists, file->data() + 132, 4);
  EXPECT_EQ(banks, 2u);
  EXPECT_EQ(lists, 3u);
  std::vector<PcrSelection> selection;
  auto back = ReadPcrsFile(*file, &selection);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, evidence_.pcrs);
  ASSERT_EQ(selection.size(), 2u);
  EXPECT_EQ(selection[1].alg, kAlgSha384);
}

TEST_F(Tpm2FilesTest, PcrsFileReaderRefusesMalformedFiles) {
  Bytes file = WritePcrsFile(evidence_.attest, evidence_.pcrs).value();
  Bytes shorter(file.begin(), file.end() - 1);
  EXPECT_THAT(ReadPcrsFile(shorter).error().message(), HasSubstr("not the"));
  Bytes fewer = file;
  uint32_t two = 2;
  std::memcpy(fewer.data() + 132, &two, 4);
  fewer.resize(132 + 4 + 2 * 532);
  EXPECT_THAT(ReadPcrsFile(fewer).error().message(), HasSubstr("fewer values"));
  Bytes huge = file;
  uint32_t many = 1000;
  std::memcpy(huge.data() + 132, &many, 4);
  EXPECT_THAT(ReadPcrsFile(huge).error().message(), HasSubstr("more than 32"));
  EXPECT_FALSE(ReadPcrsFile(Bytes(10)).has_value());
}

TEST_F(Tpm2FilesTest, PackNeedsTheQuoteFiles) {
  FileSet files = UnpackEvidence(evidence_).value();
  files.erase("quote.sig");
  EXPECT_THAT(PackEvidence(files, EvidenceSource::kManager).error().message(),
              HasSubstr("quote.sig is missing"));
  files = UnpackEvidence(evidence_).value();
  files["ak.pub"].push_back(0);
  EXPECT_THAT(PackEvidence(files, EvidenceSource::kManager).error().message(),
              HasSubstr("TPM2B_PUBLIC"));
}

}  // namespace
}  // namespace vmm::attestation
