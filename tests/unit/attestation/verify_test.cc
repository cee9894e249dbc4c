// attestation/verify.h with a software TPM (fake_tpm.h): a valid bundle is affirming, and each
// way a bundle can be wrong fails its own check, with the reason saying why, and skips the
// checks that depend on it.
#include "attestation/verify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>

#include "attestation/quote.h"
#include "tests/unit/attestation/expect_evidence.h"
#include "tests/unit/attestation/fake_tpm.h"

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers
using ::testing::HasSubstr;

const Bytes kNonce = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                      0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};

class VerifyTest : public ::testing::Test {
 protected:
  VerifyResult Run(const Evidence& e, const Bytes& nonce = kNonce) {
    VerifyOptions options;
    options.ca_pem = ca_.pem();
    options.nonce = nonce;
    options.at = at_;
    return Verify(e, options);
  }
  static const Check& Find(const VerifyResult& r, std::string_view name) {
    return FindCheck(r.checks, name);
  }
  // The one failing check, and its reason.
  static void ExpectOnlyFailure(const VerifyResult& r, std::string_view name,
                                std::string_view reason) {
    for (const Check& c : r.checks) {
      if (c.name == name) {
        EXPECT_EQ(c.status, CheckStatus::kFail) << name << ": " << c.reason;
        EXPECT_THAT(c.reason, HasSubstr(std::string(reason)));
      } else {
        EXPECT_NE(c.status, CheckStatus::kFail) << c.name << " failed too: " << c.reason;
      }
    }
    EXPECT_EQ(r.status, EarStatus::kContraindicated);
  }

  FakeTpm tpm_;
  TestCa ca_{"vmm test vTPM CA"};
  std::optional<time_t> at_;
};

TEST_F(VerifyTest, ValidBundleWithoutPolicyPassesEveryCheckButAppraisal) {
  VerifyResult r = Run(MakeEvidence(tpm_, ca_, kNonce));
  for (const Check& c : r.checks) {
    if (c.name == "policy") {
      EXPECT_EQ(c.status, CheckStatus::kSkip);
    } else {
      EXPECT_EQ(c.status, CheckStatus::kPass) << c.name << ": " << c.reason;
    }
  }
  std::vector<std::string> names;
  for (const Check& c : r.checks) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "evidence-format", "ca-chain", "ak-public", "ak-certificate", "ak-binding",
                       "ek-certificate", "quote-magic", "quote-type", "quote-signature", "nonce",
                       "pcr-digest", "event-log-parse", "event-log-replay", "policy"}));
  EXPECT_EQ(r.status, EarStatus::kWarning);  // nothing appraised
  EXPECT_EQ(r.vm_id, "vm-1");
  ASSERT_TRUE(r.quote_clock);
  EXPECT_EQ(r.quote_clock->clock, 123456u);
  EXPECT_EQ(r.quote_clock->reset_count, 2u);
  EXPECT_EQ(r.quote_clock->restart_count, 1u);
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kInstanceIdentity)], 2);
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kHardware)], 2);
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kExecutables)], 3);
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kRuntimeOpaque)], 0);
}

TEST_F(VerifyTest, ValidBundleWithPolicyIsAffirming) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  const Policy policy = PolicyOfLog(e.event_log, "test-policy");
  VerifyOptions options{ca_.pem(), kNonce, &policy, std::nullopt};
  VerifyResult r = Verify(e, options);
  for (const Check& c : r.checks)
    EXPECT_EQ(c.status, CheckStatus::kPass) << c.name << ": " << c.reason;
  EXPECT_EQ(r.status, EarStatus::kAffirming);
  EXPECT_EQ(r.policy_id, "test-policy");
}

TEST_F(VerifyTest, WrongNonceFailsNonce) {
  Bytes other = kNonce;
  other[0] ^= 1;
  ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce), other), "nonce", "is not the nonce");
}

TEST_F(VerifyTest, ReplayedQuoteFromAnEarlierNonceFailsNonce) {
  // Yesterday's quote, honestly signed, presented for today's challenge.
  EvidenceParts old;
  old.quote.clock = 1000;
  Evidence replayed = MakeEvidence(tpm_, ca_, Bytes(16, 0x42), old);
  VerifyResult r = Run(replayed);
  ExpectOnlyFailure(r, "nonce", "stale or replayed");
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kInstanceIdentity)], 99);
}

TEST_F(VerifyTest, QuoteSignedByAnotherAkFailsSignature) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  FakeTpm other;
  e.signature = other.Sign(e.attest);
  VerifyResult r = Run(e);
  ExpectOnlyFailure(r, "quote-signature", "does not verify with the AK's public key");
  EXPECT_EQ(Find(r, "nonce").reason, "not run: quote-signature failed");
  EXPECT_EQ(Find(r, "pcr-digest").status, CheckStatus::kSkip);
  EXPECT_EQ(Find(r, "event-log-replay").reason, "not run: pcr-digest was skipped");
}

TEST_F(VerifyTest, QuoteNamingAnotherSignerFailsSignature) {
  EvidenceParts parts;
  FakeTpm other;
  parts.quote.signer = other.qualified_name();
  ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce, parts)), "quote-signature",
                    "is not the AK's qualified name");
  parts.quote.signer = tpm_.name();  // the name, not the qualified name
  ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce, parts)), "quote-signature",
                    "is not the AK's qualified name");
}

TEST_F(VerifyTest, AnotherAkWithItsOwnCertificateFromAnotherCaFailsAkCertificate) {
  // An attacker's AK, certified by the attacker's CA: the quote verifies with that AK, but the
  // AK is not one the tenant's CA certified.
  TestCa rogue("rogue CA");
  Evidence e = MakeEvidence(tpm_, rogue, kNonce);
  e.ca_chain_pem.clear();
  VerifyResult r = Run(e);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kFail);
  EXPECT_THAT(Find(r, "ak-certificate").reason,
              HasSubstr("does not verify against the trusted CA"));
  EXPECT_EQ(Find(r, "ak-binding").reason, "not run: ak-certificate failed");
  EXPECT_EQ(Find(r, "ek-certificate").status, CheckStatus::kFail);
  EXPECT_EQ(r.status, EarStatus::kContraindicated);
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kInstanceIdentity)], 97);
}

TEST_F(VerifyTest, AkCertificateForAnotherKeyFailsAkCertificate) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  FakeTpm other;
  e.ak_certificate_pem = ca_.Issue(AkSpec(), other.key());
  VerifyResult r = Run(e);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kFail);
  EXPECT_THAT(Find(r, "ak-certificate").reason, HasSubstr("certifies another key"));
}

TEST_F(VerifyTest, RogueCaInTheBundlesChainIsNotTrusted) {
  TestCa rogue("rogue CA");
  Evidence e = MakeEvidence(tpm_, rogue, kNonce);  // ca_chain = [rogue]
  VerifyResult r = Run(e);
  EXPECT_EQ(Find(r, "ca-chain").status, CheckStatus::kFail);
  EXPECT_THAT(Find(r, "ca-chain").reason, HasSubstr("ca_chain[0] does not verify"));
  EXPECT_EQ(Find(r, "ak-certificate").reason, "not run: ca-chain failed");
  EXPECT_EQ(Find(r, "ek-certificate").reason, "not run: ca-chain failed");
}

TEST_F(VerifyTest, IntermediateCaInTheChainIsAccepted) {
  TestCa intermediate("vmm host CA", ca_);
  Evidence e = MakeEvidence(tpm_, intermediate, kNonce);
  e.ca_chain_pem = {intermediate.pem(), ca_.pem()};
  VerifyResult r = Run(e);
  for (const Check& c : r.checks)
    EXPECT_NE(c.status, CheckStatus::kFail) << c.name << ": " << c.reason;
}

TEST_F(VerifyTest, EkCertificateFromAnotherCaFailsEkCertificateAndBinding) {
  TestCa rogue("rogue CA");
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  EvpPkeyPtr ek = NewP256();
  e.ek_certificate_pem = rogue.Issue(EkSpec(), ek.get());
  VerifyResult r = Run(e);
  EXPECT_EQ(Find(r, "ek-certificate").status, CheckStatus::kFail);
  EXPECT_THAT(Find(r, "ek-certificate").reason,
              HasSubstr("does not verify against the trusted CA"));
  EXPECT_EQ(Find(r, "ak-binding").status, CheckStatus::kFail);
  EXPECT_THAT(Find(r, "ak-binding").reason, HasSubstr("issued by"));
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kHardware)], 97);
}

TEST_F(VerifyTest, ExpiredAkCertificateFailsAkCertificate) {
  EvidenceParts parts;
  parts.ak_cert.not_before = -2L * 365 * 24 * 3600;
  parts.ak_cert.not_after = -365L * 24 * 3600;
  ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce, parts)), "ak-certificate",
                    "certificate has expired");
}

TEST_F(VerifyTest, CertificatesCheckedAtAGivenTime) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  at_ = time(nullptr) + 2L * 365 * 24 * 3600;  // past the AK certificate's notAfter
  VerifyResult r = Run(e);
  EXPECT_THAT(Find(r, "ak-certificate").reason, HasSubstr("certificate has expired"));
  at_ = time(nullptr) - 3600;  // before it was issued
  r = Run(e);
  EXPECT_THAT(Find(r, "ak-certificate").reason, HasSubstr("not yet valid"));
}

// Each profile rule of the AK and EK certificates (key usage, extended key usage), broken alone,
// fails its certificate's check and nothing else.
TEST_F(VerifyTest, CertificatesOutsideTheirProfileFail) {
  const struct {
    bool ak;  // the AK certificate, else the EK certificate
    std::string CertSpec::*field;
    const char* value;
    const char* why;
  } kCases[] = {
      {true, &CertSpec::key_usage, "critical,keyAgreement", "lacks digitalSignature"},
      {true, &CertSpec::eku, "clientAuth", "tcg-kp-AIKCertificate"},
      {false, &CertSpec::key_usage, "critical,digitalSignature", "lacks keyAgreement"},
      {false, &CertSpec::eku, "2.23.133.8.3", "tcg-kp-EKCertificate"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.value);
    EvidenceParts parts;
    (c.ak ? parts.ak_cert : parts.ek_cert).*c.field = c.value;
    ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce, parts)),
                      c.ak ? "ak-certificate" : "ek-certificate", c.why);
  }
}

TEST_F(VerifyTest, AkAndEkOfDifferentVmsFailBinding) {
  EvidenceParts parts;
  parts.ek_cert = EkSpec("vm-2");
  ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce, parts)), "ak-binding",
                    "names vm-id \"vm-1\", the EK certificate \"vm-2\"");
}

TEST_F(VerifyTest, AkAndEkOfDifferentTpmsFailBinding) {
  EvidenceParts parts;
  parts.ek_cert.tpm_model = "another TPM";
  ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce, parts)), "ak-binding", "different TPMs");
}

TEST_F(VerifyTest, NoEkCertificateIsAWarning) {
  EvidenceParts parts;
  parts.with_ek = false;
  Evidence e = MakeEvidence(tpm_, ca_, kNonce, parts);
  const Policy policy = PolicyOfLog(e.event_log, "p");
  VerifyResult r = Verify(e, VerifyOptions{ca_.pem(), kNonce, &policy, std::nullopt});
  EXPECT_EQ(Find(r, "ek-certificate").status, CheckStatus::kSkip);
  EXPECT_EQ(Find(r, "ek-certificate").reason, "the bundle has no EK certificate");
  EXPECT_EQ(Find(r, "ak-binding").status, CheckStatus::kSkip);
  for (const Check& c : r.checks) EXPECT_NE(c.status, CheckStatus::kFail) << c.name;
  EXPECT_EQ(r.status, EarStatus::kWarning);
  // Without a policy nothing else speaks for the hardware (the policy's CRTM check does).
  EXPECT_EQ(Run(e).vector[static_cast<size_t>(Claim::kHardware)], 0);
}

TEST_F(VerifyTest, AkThatIsNotRestrictedFailsAkPublic) {
  FakeTpm unrestricted(TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN);
  VerifyResult r = Run(MakeEvidence(unrestricted, ca_, kNonce));
  EXPECT_EQ(Find(r, "ak-public").status, CheckStatus::kFail);
  EXPECT_THAT(Find(r, "ak-public").reason, HasSubstr("not those of an attestation key"));
  EXPECT_EQ(Find(r, "ak-certificate").reason, "not run: ak-public failed");
  EXPECT_EQ(Find(r, "quote-signature").reason, "not run: ak-public failed");
}

TEST_F(VerifyTest, WrongMagicFailsQuoteMagic) {
  EvidenceParts parts;
  parts.quote.magic = 0x12345678;
  VerifyResult r = Run(MakeEvidence(tpm_, ca_, kNonce, parts));
  ExpectOnlyFailure(r, "quote-magic", "is not TPM_GENERATED_VALUE");
  EXPECT_EQ(Find(r, "quote-type").reason, "not run: quote-magic failed");
}

TEST_F(VerifyTest, CertifyStructureIsNotAQuote) {
  EvidenceParts parts;
  parts.quote.type = TPM2_ST_ATTEST_CERTIFY;
  ExpectOnlyFailure(Run(MakeEvidence(tpm_, ca_, kNonce, parts)), "quote-type",
                    "is not TPM_ST_ATTEST_QUOTE");
}

TEST_F(VerifyTest, TrailingBytesAfterTheQuoteFailQuoteMagic) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  e.attest.push_back(0);
  e.signature = tpm_.Sign(e.attest);
  ExpectOnlyFailure(Run(e), "quote-magic", "trailing bytes");
}

TEST_F(VerifyTest, PcrValueThatDoesNotMatchTheDigestFailsPcrDigest) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  e.pcrs[kAlgSha256][4][0] ^= 0x80;
  VerifyResult r = Run(e);
  ExpectOnlyFailure(r, "pcr-digest", "hash to");
  EXPECT_EQ(Find(r, "event-log-replay").reason, "not run: pcr-digest failed");
}

TEST_F(VerifyTest, MissingPcrValueFailsPcrDigest) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  e.pcrs[kAlgSha384].erase(9);
  ExpectOnlyFailure(Run(e), "pcr-digest", "sha384 PCR 9 but the bundle has no value");
}

TEST_F(VerifyTest, SignatureWithSha384Verifies) {
  EvidenceParts parts;
  parts.quote.sig_hash = TPM2_ALG_SHA384;
  VerifyResult r = Run(MakeEvidence(tpm_, ca_, kNonce, parts));
  EXPECT_EQ(Find(r, "quote-signature").status, CheckStatus::kPass);
  EXPECT_EQ(Find(r, "pcr-digest").status, CheckStatus::kPass);
}

// ---------------------------------------------------------------- tampered logs
// Each bundle keeps its honest quote and PCR values; only the log is changed.
class TamperedLogTest : public VerifyTest {
 protected:
  VerifyResult RunWithLog(const Bytes& log) {
    Evidence e = MakeEvidence(tpm_, ca_, kNonce);
    e.event_log = log;
    return Run(e);
  }
  void ExpectReplayFails(const VerifyResult& r, uint32_t pcr) {
    ExpectOnlyFailure(r, "event-log-replay", "PCR " + std::to_string(pcr));
    EXPECT_EQ(Find(r, "event-log-replay").pcr, pcr);
  }
};

TEST_F(TamperedLogTest, ChangedDigest) {
  Bytes log = MakeBootLog();
  Bytes kernel_digest = Hash(EVP_sha256(), B(BootImages{}.kernel));
  auto at = std::search(log.begin(), log.end(), kernel_digest.begin(), kernel_digest.end());
  ASSERT_NE(at, log.end());
  *at ^= 1;
  ExpectReplayFails(RunWithLog(log), 4);
}

TEST_F(TamperedLogTest, RemovedEvent) {
  EventLogBuilder b;
  BootImages img;
  ASSERT_TRUE(b.AddStartupLocality(3).has_value());
  ASSERT_TRUE(b.AddSCrtmVersion(B(img.crtm)).has_value());
  ASSERT_TRUE(b.AddPlatformConfigFlags(B(img.configuration), 1).has_value());
  ASSERT_TRUE(
      b.Measure(1, kEvPlatformConfigFlags, B("ACPI DSDT"), B("DSDT table bytes")).has_value());
  ASSERT_TRUE(b.Measure(4, kEvIpl, B("kernel"), B(img.kernel)).has_value());
  // no command line event
  ASSERT_TRUE(b.Measure(9, kEvIpl, B("initramfs"), B(img.initramfs)).has_value());
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) ASSERT_TRUE(b.AddSeparator(pcr).has_value());
  VerifyResult r = RunWithLog(b.bytes());
  ExpectReplayFails(r, 8);
  EXPECT_THAT(Find(r, "event-log-replay").reason, HasSubstr("reset value"));
}

TEST_F(TamperedLogTest, ReorderedEvents) {
  EventLogBuilder b;
  BootImages img;
  ASSERT_TRUE(b.AddStartupLocality(3).has_value());
  ASSERT_TRUE(b.AddSCrtmVersion(B(img.crtm)).has_value());
  // ACPI before the configuration: the same events, in the other order
  ASSERT_TRUE(
      b.Measure(1, kEvPlatformConfigFlags, B("ACPI DSDT"), B("DSDT table bytes")).has_value());
  ASSERT_TRUE(b.AddPlatformConfigFlags(B(img.configuration), 1).has_value());
  ASSERT_TRUE(b.Measure(4, kEvIpl, B("kernel"), B(img.kernel)).has_value());
  ASSERT_TRUE(b.AddIpl(8, img.cmdline).has_value());
  ASSERT_TRUE(b.Measure(9, kEvIpl, B("initramfs"), B(img.initramfs)).has_value());
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) ASSERT_TRUE(b.AddSeparator(pcr).has_value());
  ExpectReplayFails(RunWithLog(b.bytes()), 1);
}

TEST_F(TamperedLogTest, AppendedEvent) {
  Bytes log = MakeBootLog();
  EventLogBuilder extra;  // one more record in the same format, appended as bytes
  ASSERT_TRUE(extra.Measure(4, kEvIpl, B("kernel"), B("another kernel")).has_value());
  auto header = ParseEventLog(extra.bytes());
  ASSERT_TRUE(header.has_value());
  log.insert(log.end(), extra.bytes().begin() + static_cast<long>(header->events[1].offset),
             extra.bytes().end());
  ExpectReplayFails(RunWithLog(log), 4);
}

TEST_F(TamperedLogTest, DuplicatedEvent) {
  Bytes log = MakeBootLog();
  auto parsed = ParseEventLog(log);
  ASSERT_TRUE(parsed.has_value());
  // The kernel event (PCR 4) repeated right after itself.
  for (size_t i = 1; i + 1 < parsed->events.size(); ++i) {
    if (parsed->events[i].pcr == 4) {
      Bytes record(log.begin() + static_cast<long>(parsed->events[i].offset),
                   log.begin() + static_cast<long>(parsed->events[i + 1].offset));
      log.insert(log.begin() + static_cast<long>(parsed->events[i + 1].offset), record.begin(),
                 record.end());
      break;
    }
  }
  ExpectReplayFails(RunWithLog(log), 4);
}

TEST_F(TamperedLogTest, EventInAnUnquotedPcr) {
  Bytes log = MakeBootLog();
  EventLogBuilder extra;
  ASSERT_TRUE(extra.Measure(14, kEvIpl, B("module"), B("unquoted")).has_value());
  auto header = ParseEventLog(extra.bytes());
  ASSERT_TRUE(header.has_value());
  log.insert(log.end(), extra.bytes().begin() + static_cast<long>(header->events[1].offset),
             extra.bytes().end());
  VerifyResult r = RunWithLog(log);
  ExpectOnlyFailure(r, "event-log-replay", "PCR 14, which the quote does not cover");
}

TEST_F(TamperedLogTest, GarbageLogFailsParse) {
  VerifyResult r = RunWithLog(B("not an event log at all, just some bytes"));
  ExpectOnlyFailure(r, "event-log-parse", "offset");
  EXPECT_EQ(Find(r, "event-log-replay").reason, "not run: event-log-parse failed");
}

// ---------------------------------------------------------------- bundles that do not parse
TEST_F(VerifyTest, TruncatedOversizedAndGarbageBundlesFailEvidenceFormat) {
  std::string good = SerializeEvidence(MakeEvidence(tpm_, ca_, kNonce));
  std::string truncated = good.substr(0, good.size() / 2);
  std::string oversized(kMaxEvidenceBytes + 1, ' ');
  std::string garbage = "\x01\x02garbage{";
  for (const std::string& text : {truncated, oversized, garbage}) {
    VerifyOptions options{ca_.pem(), kNonce, nullptr, std::nullopt};
    VerifyResult r = VerifyBundle(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
        options);
    ASSERT_FALSE(r.checks.empty());
    EXPECT_EQ(r.checks[0].name, "evidence-format");
    EXPECT_EQ(r.checks[0].status, CheckStatus::kFail);
    for (size_t i = 1; i < r.checks.size(); ++i) {
      EXPECT_EQ(r.checks[i].reason, "not run: evidence-format failed");
    }
    EXPECT_EQ(r.status, EarStatus::kContraindicated);
  }
}

TEST_F(VerifyTest, TextNamesEveryCheckAndTheVerdict) {
  std::string text = ResultToText(Run(MakeEvidence(tpm_, ca_, kNonce)));
  EXPECT_THAT(text, HasSubstr("pass  quote-signature"));
  EXPECT_THAT(text, HasSubstr("skip  policy"));
  EXPECT_THAT(text, HasSubstr("resetCount 2, restartCount 1"));
  EXPECT_THAT(text, HasSubstr("verdict: warning\n"));
}

}  // namespace
}  // namespace vmm::attestation

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers

// ---------------------------------------------------------------- appraisal against a policy
// The tenant's policy is made from the images they expect; the VM booted something else, its
// quote and log honest: the appraisal fails the component's check naming PCR and event.
class PolicyVerifyTest : public VerifyTest {
 protected:
  VerifyResult RunAgainstPolicyOf(const BootImages& expected, const BootImages& booted) {
    policy_ = PolicyOfLog(MakeBootLog(expected), "tenant");
    EvidenceParts parts;
    parts.images = booted;
    return Verify(MakeEvidence(tpm_, ca_, kNonce, parts),
                  VerifyOptions{ca_.pem(), kNonce, &policy_, std::nullopt});
  }
  void ExpectComponentFails(const VerifyResult& r, std::string_view check, uint32_t pcr) {
    const Check& c = Find(r, check);
    EXPECT_EQ(c.status, CheckStatus::kFail) << c.reason;
    EXPECT_EQ(c.pcr, pcr);
    ASSERT_TRUE(c.event_index.has_value());
    EXPECT_EQ(r.status, EarStatus::kContraindicated);
    for (const Check& other : r.checks) {
      if (other.name.rfind("policy-", 0) != 0) {
        EXPECT_EQ(other.status, CheckStatus::kPass) << other.name << ": " << other.reason;
      }
    }
    EXPECT_THAT(ResultToText(r), ::testing::HasSubstr("[PCR " + std::to_string(pcr) + ", event " +
                                                      std::to_string(*c.event_index) + "]"));
  }
  Policy policy_;
};

TEST_F(PolicyVerifyTest, KernelNotInPolicy) {
  BootImages booted;
  booted.kernel[0] ^= 1;  // one byte
  VerifyResult r = RunAgainstPolicyOf(BootImages{}, booted);
  ExpectComponentFails(r, "policy-kernel", 4);
  EXPECT_EQ(r.vector[static_cast<size_t>(Claim::kExecutables)], 96);
}

TEST_F(PolicyVerifyTest, InitramfsNotInPolicy) {
  BootImages booted;
  booted.initramfs += "x";
  ExpectComponentFails(RunAgainstPolicyOf(BootImages{}, booted), "policy-initramfs", 9);
}

TEST_F(PolicyVerifyTest, CommandLineNotInPolicy) {
  BootImages booted;
  booted.cmdline += " init=/bin/sh";
  ExpectComponentFails(RunAgainstPolicyOf(BootImages{}, booted), "policy-cmdline", 8);
}

TEST_F(PolicyVerifyTest, SameImagesAreAffirming) {
  VerifyResult r = RunAgainstPolicyOf(BootImages{}, BootImages{});
  EXPECT_EQ(r.status, EarStatus::kAffirming) << ResultToText(r);
}

}  // namespace
}  // namespace vmm::attestation
