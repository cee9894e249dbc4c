// The manager's quote path (vmm/manager/attest.h) against a real, provisioned vmm-vtpm (spawned
// confined, as `vmm run --tpm` does), and the tenant's verifier (attestation/verify.h) on what
// it produces: measured boot, quote, bundle, verdict, with no VM in between.
#include "vmm/manager/attest.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/event_log.h"
#include "attestation/verify.h"
#include "tests/unit/common/temp_dir.h"
#include "vmm/manager/measured_boot.h"
#include "vmm/manager/vtpm_commands.h"
#include "vmm/manager/vtpm_process.h"
#include "vtpm/tcti/esys_context.h"

namespace vmm {
namespace {

using testing_util::TempDir;

class AttestVtpm : public ::testing::Test {
 protected:
  void SetUp() override {
    tpm_cfg_.mode = TpmConfig::Mode::kPersistent;
    tpm_cfg_.state_dir = dir_.File("state");
    tpm_cfg_.key_file = dir_.File("key");
    ProvisionRequest req;
    req.tpm = tpm_cfg_;
    req.ca_dir = dir_.File("ca");
    req.vm_id = "attest-test";
    auto report = ProvisionVtpm(req);
    ASSERT_TRUE(report) << report.error().ToString();
    ca_pem_ = dir_.ReadText("ca/vtpm-ca.crt");
    ASSERT_NE(ca_pem_.find("BEGIN CERTIFICATE"), std::string::npos);
  }

  // Starts the vTPM as `vmm run` does and measures a boot into it.
  void Boot(const std::string& cmdline) {
    auto started = StartVtpmProcess(tpm_cfg_);
    ASSERT_TRUE(started) << started.error().ToString();
    tpm_ = std::move(*started);
    running_ = true;
    auto up = StartupTpm(tpm_);
    ASSERT_TRUE(up) << up.error().ToString();
    auto tables = BuildPlatformAcpi(1, true, 0, true);
    ASSERT_TRUE(tables);
    MeasuredBootInputs in{kernel_, {}, cmdline, R"({"cpus":1})", &*tables};
    auto boot = MeasureBoot(in);
    ASSERT_TRUE(boot) << boot.error().ToString();
    ASSERT_TRUE(ExtendMeasurements(tpm_, *boot));
    log_ = boot->log;
    auto esys = vtpm::OpenEsys(UniqueFd(fcntl(tpm_.data.get(), F_DUPFD_CLOEXEC, 0)));
    ASSERT_TRUE(esys) << esys.error().ToString();
    esys_.emplace(std::move(*esys));
  }

  void TearDown() override {
    esys_.reset();
    if (running_) {
      EXPECT_EQ(StopVtpmProcess(tpm_), "");
    }
  }

  attestation::VerifyResult Verify(const attestation::Evidence& ev,
                                   const std::vector<uint8_t>& nonce,
                                   const attestation::Policy* policy) {
    const std::string json = attestation::SerializeEvidence(ev);
    attestation::VerifyOptions o;
    o.ca_pem = ca_pem_ + "";
    o.nonce = nonce;
    o.policy = policy;
    return attestation::VerifyBundle(
        std::span(reinterpret_cast<const uint8_t*>(json.data()), json.size()), o);
  }

  static const attestation::Check* Find(const attestation::VerifyResult& r, const std::string& n) {
    for (const attestation::Check& c : r.checks) {
      if (c.name == n) return &c;
    }
    return nullptr;
  }

  TempDir dir_{"vmm-attest"};
  TpmConfig tpm_cfg_;
  std::string ca_pem_;
  VtpmProcess tpm_;
  bool running_ = false;
  std::optional<vtpm::EsysContext> esys_;
  std::vector<uint8_t> log_;
  const std::vector<uint8_t> kernel_ = std::vector<uint8_t>(8192, 0xC3);
};

TEST_F(AttestVtpm, AQuoteOfAMeasuredBootVerifiesAsAffirming) {
  ASSERT_NO_FATAL_FAILURE(Boot("console=ttyS0"));
  const std::vector<uint8_t> nonce = {1, 2, 3, 4, 5, 6, 7, 8};
  auto ev = QuoteVm(esys_->get(), {nonce, DefaultQuoteSelection()}, log_);
  ASSERT_TRUE(ev) << ev.error().ToString();
  EXPECT_EQ(ev->nonce, nonce);
  EXPECT_EQ(ev->event_log, log_);
  EXPECT_EQ(ev->pcrs.size(), 2u);  // sha256 and sha384, PCRs 0-9 each
  for (const auto& [bank, pcrs] : ev->pcrs) EXPECT_EQ(pcrs.size(), 10u) << bank;
  EXPECT_NE(ev->ak_certificate_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(ev->ek_certificate_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  auto parsed = attestation::ParseEventLog(log_);
  ASSERT_TRUE(parsed);
  auto policy = attestation::PolicyFromEventLog(*parsed, "attest-test");
  ASSERT_TRUE(policy) << policy.error().ToString();
  attestation::VerifyResult r = Verify(*ev, nonce, &*policy);
  EXPECT_EQ(r.status, attestation::EarStatus::kAffirming) << attestation::ResultToText(r);
  EXPECT_EQ(r.vm_id, "attest-test");
  ASSERT_TRUE(r.quote_clock.has_value());

  // The same quote for another nonce (a replay) is not fresh.
  attestation::VerifyResult replay = Verify(*ev, {9, 9, 9}, &*policy);
  EXPECT_EQ(replay.status, attestation::EarStatus::kContraindicated);
  ASSERT_NE(Find(replay, "nonce"), nullptr);
  EXPECT_EQ(Find(replay, "nonce")->status, attestation::CheckStatus::kFail);
}

TEST_F(AttestVtpm, AnExtendAfterBootShowsInTheReplayAndAnotherCommandLineInThePolicy) {
  ASSERT_NO_FATAL_FAILURE(Boot("console=ttyS0"));
  auto parsed = attestation::ParseEventLog(log_);
  ASSERT_TRUE(parsed);
  auto policy = attestation::PolicyFromEventLog(*parsed, "p");
  ASSERT_TRUE(policy);
  // As a guest (or anything else) could: PCR 8 moves past what the log records.
  std::vector<PcrDigest> d = {{0x000B, std::vector<uint8_t>(32, 0xAA)},
                              {0x000C, std::vector<uint8_t>(48, 0xAA)}};
  ASSERT_TRUE(ExtendPcr(tpm_, 8, d));
  const std::vector<uint8_t> nonce = {7};
  auto ev = QuoteVm(esys_->get(), {nonce, DefaultQuoteSelection()}, log_);
  ASSERT_TRUE(ev) << ev.error().ToString();
  attestation::VerifyResult r = Verify(*ev, nonce, &*policy);
  EXPECT_EQ(r.status, attestation::EarStatus::kContraindicated);
  const attestation::Check* replay = Find(r, "event-log-replay");
  ASSERT_NE(replay, nullptr);
  EXPECT_EQ(replay->status, attestation::CheckStatus::kFail) << replay->reason;
  EXPECT_NE(replay->reason.find("8"), std::string::npos) << replay->reason;
}

// Every VM start is a TPM start without an orderly TPM2_Shutdown before it. A DA-protected AK
// would count each as a failed authorization and lock out after a few; the AK is noDA.
TEST_F(AttestVtpm, TheAkStillQuotesAfterManyUnorderlyStarts) {
  for (int boot = 0; boot < 6; ++boot) {
    SCOPED_TRACE("boot " + std::to_string(boot));
    ASSERT_NO_FATAL_FAILURE(Boot("console=ttyS0"));
    auto ev =
        QuoteVm(esys_->get(), {{static_cast<uint8_t>(boot + 1)}, DefaultQuoteSelection()}, log_);
    ASSERT_TRUE(ev) << ev.error().ToString();
    esys_.reset();
    EXPECT_EQ(StopVtpmProcess(tpm_), "");
    running_ = false;
  }
}

TEST_F(AttestVtpm, OnlyTheSelectedPcrsAreQuotedAndBadRequestsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(Boot("console=ttyS0"));
  auto sel = ParsePcrSelection("sha256:4,8");
  ASSERT_TRUE(sel);
  auto ev = QuoteVm(esys_->get(), {{1}, *sel}, log_);
  ASSERT_TRUE(ev) << ev.error().ToString();
  ASSERT_EQ(ev->pcrs.size(), 1u);
  EXPECT_EQ(ev->pcrs.begin()->second.size(), 2u);
  auto empty = QuoteVm(esys_->get(), {{}, *sel}, log_);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().kind(), ErrorKind::kInvalidArgument);
  auto sha1 = ParsePcrSelection("sha1:0");  // not allocated by measured boot
  ASSERT_TRUE(sha1);
  auto unallocated = QuoteVm(esys_->get(), {{1}, *sha1}, log_);
  ASSERT_FALSE(unallocated);
}

}  // namespace
}  // namespace vmm
