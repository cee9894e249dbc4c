// The manager's platform start-up of a real vmm-vtpm process (spawned confined, as `vmm run
// --tpm` does): measured boot's PCR banks, PCR 0 at locality 3, and PCR extends and reads
// over the manager's locality-3 data channel, checked against digests computed here.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/manager/measured_boot.h"
#include "vmm/manager/vtpm_process.h"
#include "vtpm/protocol/tpm_command.h"

namespace vmm {
namespace {

std::vector<uint8_t> Digest(const char* md_name, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned size = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_get_digestbyname(md_name),
                       nullptr),
            1);
  out.resize(size);
  return out;
}

// PCR_new = H(PCR_old || digest).
std::vector<uint8_t> Extended(const char* md_name, std::vector<uint8_t> old,
                              const std::vector<uint8_t>& digest) {
  old.insert(old.end(), digest.begin(), digest.end());
  return Digest(md_name, old);
}

class VtpmStartup : public ::testing::Test {
 protected:
  void SetUp() override {
    TpmConfig cfg;
    cfg.mode = TpmConfig::Mode::kEphemeral;
    auto started = StartVtpmProcess(cfg);
    ASSERT_TRUE(started) << started.error().message();
    tpm_ = std::move(*started);
    auto up = StartupTpm(tpm_);
    ASSERT_TRUE(up) << up.error().message();
  }
  void TearDown() override { EXPECT_EQ(StopVtpmProcess(tpm_), ""); }

  VtpmProcess tpm_;
};

TEST_F(VtpmStartup, AllocatesSha256AndSha384AndNothingElse) {
  auto banks = ReadPcrAllocation(tpm_);
  ASSERT_TRUE(banks) << banks.error().message();
  bool sha256 = false, sha384 = false;
  for (const vtpm::PcrBank& b : *banks) {
    SCOPED_TRACE(vtpm::TpmAlgName(b.alg));
    if (b.alg == vtpm::kTpmAlgSha256 || b.alg == vtpm::kTpmAlgSha384) {
      EXPECT_EQ(b.pcrs, 0xFFFFFFu);
    } else {
      EXPECT_EQ(b.pcrs, 0u);
    }
    sha256 |= b.alg == vtpm::kTpmAlgSha256;
    sha384 |= b.alg == vtpm::kTpmAlgSha384;
  }
  EXPECT_TRUE(sha256);
  EXPECT_TRUE(sha384);
  auto sha1 = ReadPcr(tpm_, vtpm::kTpmAlgSha1, 0);
  ASSERT_FALSE(sha1);
  EXPECT_NE(sha1.error().message().find("bank not allocated"), std::string::npos);
}

TEST_F(VtpmStartup, Pcr0StartsWithTheStartupLocality) {
  for (auto [alg, size] :
       {std::pair{vtpm::kTpmAlgSha256, 32}, std::pair{vtpm::kTpmAlgSha384, 48}}) {
    auto pcr0 = ReadPcr(tpm_, alg, 0);
    ASSERT_TRUE(pcr0) << pcr0.error().message();
    std::vector<uint8_t> expected(size, 0);
    expected.back() = 3;
    EXPECT_EQ(*pcr0, expected) << vtpm::TpmAlgName(alg);
  }
}

TEST_F(VtpmStartup, ExtendsEveryBankOfAPcrAtLocality3) {
  const std::vector<uint8_t> event = {'c', 'o', 'n', 's', 'o', 'l', 'e',
                                      '=', 't', 't', 'y', 'S', '0'};
  const std::vector<uint8_t> d256 = Digest("SHA256", event), d384 = Digest("SHA384", event);
  const std::vector<PcrDigest> digests = {{vtpm::kTpmAlgSha256, d256}, {vtpm::kTpmAlgSha384, d384}};
  ASSERT_TRUE(ExtendPcr(tpm_, 8, digests));
  ASSERT_TRUE(ExtendPcr(tpm_, 8, digests));
  std::vector<uint8_t> want256 =
      Extended("SHA256", Extended("SHA256", std::vector<uint8_t>(32), d256), d256);
  std::vector<uint8_t> want384 =
      Extended("SHA384", Extended("SHA384", std::vector<uint8_t>(48), d384), d384);
  auto got256 = ReadPcr(tpm_, vtpm::kTpmAlgSha256, 8);
  auto got384 = ReadPcr(tpm_, vtpm::kTpmAlgSha384, 8);
  ASSERT_TRUE(got256 && got384);
  EXPECT_EQ(*got256, want256);
  EXPECT_EQ(*got384, want384);
  // Other PCRs did not move.
  auto pcr9 = ReadPcr(tpm_, vtpm::kTpmAlgSha256, 9);
  ASSERT_TRUE(pcr9);
  EXPECT_EQ(*pcr9, std::vector<uint8_t>(32));
}

TEST_F(VtpmStartup, RefusesBadExtends) {
  const std::vector<PcrDigest> short_digest = {{vtpm::kTpmAlgSha256, std::vector<uint8_t>(31)}};
  EXPECT_FALSE(ExtendPcr(tpm_, 8, short_digest));
  const std::vector<PcrDigest> ok = {{vtpm::kTpmAlgSha256, std::vector<uint8_t>(32)}};
  EXPECT_FALSE(ExtendPcr(tpm_, 24, ok));
  EXPECT_FALSE(ReadPcr(tpm_, vtpm::kTpmAlgSha256, 24));
}

// The whole measured boot into a real vTPM: every PCR it touches then reads as the log's
// replay says; a log that does not match the vTPM is caught.
TEST_F(VtpmStartup, MeasuredBootLeavesThePcrsTheLogReplaysTo) {
  auto tables = BuildPlatformAcpi(1, true, 0, true);
  ASSERT_TRUE(tables);
  const std::vector<uint8_t> kernel(4096, 0xCC);
  MeasuredBootInputs in{kernel, {}, "console=ttyS0", R"({"cpus":1})", &*tables};
  auto boot = MeasureBoot(in);
  ASSERT_TRUE(boot) << boot.error().message();
  auto extended = ExtendMeasurements(tpm_, *boot);
  ASSERT_TRUE(extended) << extended.error().message();
  // Measuring again (a second boot's log against this TPM) no longer matches.
  auto twice = ExtendMeasurements(tpm_, *boot);
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message().find("not the event log's"), std::string::npos);
}

}  // namespace
}  // namespace vmm
