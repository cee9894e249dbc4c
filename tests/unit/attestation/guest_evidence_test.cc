// The guest-side path (attestation/guest_evidence.h): the test guest's `attest:` lines become a
// bundle that verifies like the manager's, and console text that is not exactly those lines is
// refused with the line and the reason.
#include "attestation/guest_evidence.h"

#include <openssl/x509.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "attestation/verify.h"
#include "base/hex.h"
#include "tests/unit/attestation/expect_evidence.h"
#include "tests/unit/attestation/fake_tpm.h"
#include "tests/unit/attestation/guest_lines.h"

namespace vmm::attestation {
namespace {

using fake::Bytes;

Bytes Der(const std::string& pem) {
  X509Ptr cert = CertFromPem(pem, "test certificate").value();
  unsigned char* der = nullptr;
  int n = i2d_X509(cert.get(), &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

// The console of a test guest that quoted `e` with `nonce`, around other checks' lines.
std::string Serial(const Evidence& e, const Bytes& nonce) {
  std::string s = "testguest: hello (boot=pvh)\ncheck measured-boot: ok 20 events\n";
  s += GuestPieceLines("nonce", nonce) + GuestPieceLines("ak-public", e.ak_public) +
       GuestPieceLines("quote", e.attest) + GuestPieceLines("signature", e.signature) +
       GuestPcrLines(e.pcrs) + GuestPieceLines("ak-cert", Der(e.ak_certificate_pem));
  if (!e.ek_certificate_pem.empty()) s += GuestPieceLines("ek-cert", Der(e.ek_certificate_pem));
  return s + "check attest: ok quote of sha256:0-9+sha384:0-9\ntestguest: result PASS\n";
}

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class GuestEvidence : public ::testing::Test {
 protected:
  fake::FakeTpm tpm_;
  fake::TestCa ca_{"vmm test vTPM CA"};
  Bytes nonce_ = {0x5e, 0xed, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
  fake::EvidenceParts parts_;  // a named default: GCC 12 misreads a temporary one here
  Evidence e_ = fake::MakeEvidence(tpm_, ca_, nonce_, parts_);

  Result<Evidence> FromGuest(const std::string& serial, const Bytes& nonce) {
    return EvidenceFromGuest(Span(serial), {e_.event_log, nonce, {ca_.pem()}});
  }
  // The error for `serial` (which must not parse), or "" if it parsed.
  std::string ErrorOf(const std::string& serial) {
    auto r = FromGuest(serial, nonce_);
    return r ? "" : r.error().message();
  }
};

TEST_F(GuestEvidence, TheGuestsLinesMakeTheSameBundleAndItVerifies) {
  auto got = FromGuest(Serial(e_, nonce_), nonce_);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(got->source, EvidenceSource::kGuest);
  EXPECT_EQ(got->nonce, nonce_);
  ExpectSameContent(*got, e_);

  VerifyResult r = Verify(*got, {ca_.pem(), nonce_, nullptr, std::nullopt});
  for (const Check& c : r.checks) {
    EXPECT_NE(c.status, CheckStatus::kFail) << c.name << ": " << c.reason;
  }
  EXPECT_EQ(r.status, EarStatus::kWarning) << ResultToText(r);  // no policy given
  // The same bundle checked against another nonce fails the nonce check.
  VerifyResult stale = Verify(*got, {ca_.pem(), Bytes{1, 2, 3}, nullptr, std::nullopt});
  EXPECT_EQ(stale.status, EarStatus::kContraindicated);
}

TEST_F(GuestEvidence, WithoutAnEkCertificateTheBundleHasNone) {
  e_.ek_certificate_pem.clear();
  auto got = FromGuest(Serial(e_, nonce_), nonce_);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(got->ek_certificate_pem, "");
}

TEST_F(GuestEvidence, OtherLinesAreIgnored) {
  const std::string junk =
      "attestation: not ours\n\x01\xff binary\r\n attest: indented\nattest:nospace\n";
  auto got = FromGuest(junk + Serial(e_, nonce_) + junk, nonce_);
  ASSERT_TRUE(got.has_value()) << got.error().message();
}

TEST_F(GuestEvidence, ANonceOtherThanTheOneAskedIsRefused) {
  EXPECT_NE(FromGuest(Serial(e_, nonce_), Bytes{9, 9})
                .error()
                .message()
                .find("the guest quoted with nonce 5eed"),
            std::string::npos);
  // The guest's nonce line agrees, but its quote carries another nonce.
  const Bytes other = {1, 2, 3, 4};
  auto r = FromGuest(Serial(e_, other), other);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("extraData"), std::string::npos) << r.error().message();
}

TEST_F(GuestEvidence, MalformedLinesAreRefusedWithTheReason) {
  const std::string good = Serial(e_, nonce_);
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
  };
  const std::string quote_lines = GuestPieceLines("quote", e_.attest);
  const std::string cert_lines = GuestPieceLines("ak-cert", Der(e_.ak_certificate_pem));
  const size_t second = cert_lines.find("attest: ak-cert 2/");
  ASSERT_NE(second, std::string::npos) << "the AK certificate should need several lines";
  const std::string first_cert_line = cert_lines.substr(0, second);
  const std::string pcr0 = "attest: pcr sha256 0 " + HexBytes(e_.pcrs[kTpmAlgSha256][0]) + "\n";
  Bytes der = Der(e_.ak_certificate_pem);
  Bytes padded = der;
  padded.push_back(0);
  Bytes garbage = der;
  garbage[0] = 0x31;

  const std::string last_cert_line =
      cert_lines.substr(cert_lines.rfind("attest: ak-cert ", cert_lines.size() - 2));

  // The reason, and whether it names the line (the others are about a piece as a whole).
  const struct {
    std::string serial, want;
    bool names_line = true;
  } cases[] = {
      {good + quote_lines, "quote chunk 1/1: the piece was given already"},
      {replace(first_cert_line, ""), "ak-cert chunk 2/"},
      {replace(first_cert_line, "") + first_cert_line, "out of order (want 1/"},
      {replace(last_cert_line, ""), "chunk " + std::string(last_cert_line, 16, 3) + " missing",
       false},
      {replace(cert_lines, last_cert_line + first_cert_line), "out of order (want 1/"},
      {replace(quote_lines, ""), "no `attest: quote` line", false},
      {replace("attest: nonce 1/1 5eed", "attest: nonce 1/1 5EED"), "not lowercase hex"},
      {replace("attest: nonce 1/1 5eed", "attest: nonce 1/1 5eedx"), "not lowercase hex"},
      {replace("attest: nonce 1/1 ", "attest: nonce 1/0 "), "chunk '1/0'"},
      {replace("attest: nonce 1/1 ", "attest: nonce 01/1 "), "chunk '01/1'"},
      {replace("attest: nonce 1/1 ", "attest: nonce  1/1 "), "want `attest: <piece>"},
      {replace("attest: nonce 1/1 ", "attest: nonces 1/1 "), "unknown piece 'nonces'"},
      {good + pcr0, "PCR sha256:0 again"},
      {replace(pcr0, "attest: pcr sha256 24 00\n"), "PCR index '24'"},
      {replace(pcr0, "attest: pcr sha256 00 00\n"), "PCR index '00'"},
      {replace(pcr0, "attest: pcr sha255 0 00\n"), "unknown PCR bank 'sha255'"},
      {replace(pcr0, "attest: pcr sha256 0 00\n"), "want 32 bytes of lowercase hex for sha256"},
      {replace(pcr0, pcr0.substr(0, pcr0.size() - 1) + "\r\n"), "lowercase hex"},
      {replace(pcr0, ""), "not the quote's selection", false},
      {good + "attest: pcr sha256 10 " + HexBytes(Bytes(32)) + "\n", "not the quote's selection",
       false},
      {good + "attest: pcr sha256 11 " + std::string(2000, '0') + "\n", "longer than 1024"},
      {good + "attest: pcr sha256 11 00", "without its newline"},
      {replace(cert_lines, GuestPieceLines("ak-cert", padded)),
       "ak-cert: 1 bytes after the certificate", false},
      {replace(cert_lines, GuestPieceLines("ak-cert", garbage)), "ak-cert is not X.509", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.want);
    std::string error = ErrorOf(c.serial);
    EXPECT_NE(error.find(c.want), std::string::npos) << "got: " << error;
    EXPECT_EQ(error.find("guest output: line ") != std::string::npos, c.names_line) << error;
  }
}

TEST_F(GuestEvidence, APieceOverItsLimitOrTooMuchTextIsRefused) {
  e_.ek_certificate_pem.clear();
  std::string big;
  for (size_t i = 1; i <= 44; ++i) {
    big += "attest: ek-cert " + std::to_string(i) + "/44 " + HexBytes(Bytes(192, 0x30)) + "\n";
  }
  EXPECT_NE(ErrorOf(Serial(e_, nonce_) + big).find("ek-cert over 8192 bytes"), std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMaxGuestSerialBytes + 1, '\n')).find("more than"),
            std::string::npos);
}

}  // namespace
}  // namespace vmm::attestation
