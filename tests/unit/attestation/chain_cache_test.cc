// attestation/chain_cache.h through Verify: with a ChainCache the result is the same as without,
// check for check and word for word; an entry serves only the very certificates, AK and CA it
// was made from, and only while they are all valid; a failure is never remembered.
#include "attestation/chain_cache.h"

#include <gtest/gtest.h>

#include <ctime>

#include "attestation/verify.h"
#include "tests/unit/attestation/expect_evidence.h"
#include "tests/unit/attestation/fake_tpm.h"

namespace vmm::attestation {
namespace {

using namespace fake;  // NOLINT: the fake TPM's helpers

const Bytes kNonce = {0x5e, 0xed, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                      0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e};

class ChainCacheTest : public ::testing::Test {
 protected:
  VerifyOptions Options(ChainCache* cache, std::optional<time_t> at = std::nullopt,
                        const TestCa* ca = nullptr) {
    VerifyOptions o;
    o.ca_pem = (ca ? *ca : ca_).pem();
    o.nonce = kNonce;
    o.policy = policy_ ? &*policy_ : nullptr;
    o.at = at;
    o.chain_cache = cache;
    return o;
  }
  // Verifies `e` without a cache and with `cache`; both results must be identical.
  VerifyResult Both(const Evidence& e, ChainCache& cache, std::optional<time_t> at = std::nullopt,
                    const TestCa* ca = nullptr) {
    VerifyResult plain = Verify(e, Options(nullptr, at, ca));
    VerifyResult cached = Verify(e, Options(&cache, at, ca));
    EXPECT_EQ(ResultToText(cached), ResultToText(plain));
    EXPECT_EQ(cached.status, plain.status);
    EXPECT_EQ(cached.vector, plain.vector);
    EXPECT_EQ(cached.vm_id, plain.vm_id);
    EXPECT_EQ(cached.policy_id, plain.policy_id);
    EXPECT_EQ(cached.checks.size(), plain.checks.size());
    for (size_t i = 0; i < cached.checks.size() && i < plain.checks.size(); ++i) {
      EXPECT_EQ(cached.checks[i].claim, plain.checks[i].claim) << cached.checks[i].name;
    }
    return cached;
  }
  static const Check& Find(const VerifyResult& r, std::string_view name) {
    return FindCheck(r.checks, name);
  }

  FakeTpm tpm_;
  TestCa ca_{"vmm test vTPM CA"};
  std::optional<Policy> policy_;
};

TEST_F(ChainCacheTest, CachedResultIsTheUncachedResult) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  policy_ = PolicyOfLog(e.event_log, "cache-test");
  ChainCache cache;
  VerifyResult first = Both(e, cache);  // a miss: checked in full and stored
  EXPECT_EQ(first.status, EarStatus::kAffirming) << ResultToText(first);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.size(), 1u);
  VerifyResult second = Both(e, cache);  // a hit
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(second.status, EarStatus::kAffirming);
  EXPECT_EQ(second.vm_id, "vm-1");
}

TEST_F(ChainCacheTest, BundleWithoutEkIsCachedWithItsSkips) {
  EvidenceParts parts;
  parts.with_ek = false;
  Evidence e = MakeEvidence(tpm_, ca_, kNonce, parts);
  ChainCache cache;
  Both(e, cache);
  VerifyResult r = Both(e, cache);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(Find(r, "ak-binding").status, CheckStatus::kSkip);
  EXPECT_EQ(Find(r, "ek-certificate").reason, "the bundle has no EK certificate");
  EXPECT_EQ(r.status, EarStatus::kWarning);
}

TEST_F(ChainCacheTest, EntryIsNotUsedForAnotherAkCertificate) {
  ChainCache cache;
  Evidence good = MakeEvidence(tpm_, ca_, kNonce);
  Both(good, cache);
  ASSERT_EQ(cache.size(), 1u);
  // The same bundle with a certificate the CA issued to another key: not served from the entry.
  Evidence other_key = good;
  FakeTpm other;
  other_key.ak_certificate_pem = ca_.Issue(AkSpec(), other.key());
  VerifyResult r = Both(other_key, cache);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kFail);
  EXPECT_EQ(cache.hits(), 0u);
  // Another AK with its own good certificate: checked in full, cached on its own.
  Evidence second = MakeEvidence(other, ca_, kNonce);
  r = Both(second, cache);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kPass);
  EXPECT_EQ(cache.hits(), 0u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST_F(ChainCacheTest, EntryIsNotUsedForAnotherAkOrCaOrEk) {
  ChainCache cache;
  Evidence good = MakeEvidence(tpm_, ca_, kNonce);
  Both(good, cache);
  // The good certificate beside another AK's public area (and its quote).
  FakeTpm other;
  Evidence swapped = MakeEvidence(other, ca_, kNonce);
  swapped.ak_certificate_pem = good.ak_certificate_pem;
  swapped.ek_certificate_pem = good.ek_certificate_pem;
  VerifyResult r = Both(swapped, cache);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kFail);
  // The tenant trusts another CA.
  TestCa tenant("another tenant CA");
  r = Both(good, cache, std::nullopt, &tenant);
  EXPECT_EQ(Find(r, "ca-chain").status, CheckStatus::kFail);
  // An EK certificate of another VM.
  Evidence ek = good;
  EvpPkeyPtr ek_key = NewP256();
  ek.ek_certificate_pem = ca_.Issue(EkSpec("vm-2"), ek_key.get());
  r = Both(ek, cache);
  EXPECT_EQ(Find(r, "ak-binding").status, CheckStatus::kFail);
  EXPECT_EQ(cache.hits(), 0u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(ChainCacheTest, ExpiredEntryIsCheckedAgain) {
  EvidenceParts parts;
  parts.ak_cert.not_after = 3600;  // the AK certificate expires in an hour
  Evidence e = MakeEvidence(tpm_, ca_, kNonce, parts);
  ChainCache cache;
  const time_t now = time(nullptr);
  VerifyResult r = Both(e, cache, now);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kPass);
  ASSERT_EQ(cache.size(), 1u);
  Both(e, cache, now + 60);
  EXPECT_EQ(cache.hits(), 1u);
  r = Both(e, cache, now + 7200);  // after the AK certificate's notAfter
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kFail);
  EXPECT_NE(Find(r, "ak-certificate").reason.find("expired"), std::string::npos)
      << Find(r, "ak-certificate").reason;
  EXPECT_EQ(cache.size(), 0u);  // dropped, and the failure not stored
}

TEST_F(ChainCacheTest, EntryDoesNotServeATimeBeforeNotBefore) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);  // valid from 300 s ago
  ChainCache cache;
  const time_t now = time(nullptr);
  Both(e, cache, now);
  ASSERT_EQ(cache.size(), 1u);
  VerifyResult r = Both(e, cache, now - 3600);
  EXPECT_EQ(cache.hits(), 0u);
  EXPECT_EQ(Find(r, "ak-certificate").status, CheckStatus::kFail);
}

TEST_F(ChainCacheTest, FailuresAreNeverCached) {
  ChainCache cache;
  EvidenceParts no_eku;
  no_eku.ak_cert.eku = "";
  Both(MakeEvidence(tpm_, ca_, kNonce, no_eku), cache);
  Both(MakeEvidence(tpm_, ca_, kNonce, no_eku), cache);
  EvidenceParts bad_ek;
  bad_ek.ek_cert.eku = "";
  Both(MakeEvidence(tpm_, ca_, kNonce, bad_ek), cache);
  EvidenceParts expired;
  expired.ak_cert.not_after = -60;
  Both(MakeEvidence(tpm_, ca_, kNonce, expired), cache);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.hits(), 0u);
}

TEST_F(ChainCacheTest, QuoteFailuresWithACachedChainAreTheSame) {
  ChainCache cache;
  Evidence good = MakeEvidence(tpm_, ca_, kNonce);
  Both(good, cache);
  Evidence bad_sig = good;
  FakeTpm other;
  bad_sig.signature = other.Sign(good.attest);
  Evidence bad_pcr = good;
  bad_pcr.pcrs.begin()->second.begin()->second[0] ^= 1;
  Evidence bad_log = good;
  bad_log.event_log.pop_back();  // a truncated last record
  for (const Evidence* e : {&bad_sig, &bad_pcr, &bad_log}) {
    VerifyResult r = Both(*e, cache);
    EXPECT_EQ(r.status, EarStatus::kContraindicated) << ResultToText(r);
  }
  EXPECT_EQ(cache.hits(), 3u);
  VerifyOptions wrong_nonce = Options(&cache);
  wrong_nonce.nonce[0] ^= 1;
  VerifyResult r = Verify(good, wrong_nonce);
  EXPECT_EQ(Find(r, "nonce").status, CheckStatus::kFail);
  EXPECT_EQ(Find(r, "ca-chain").status, CheckStatus::kPass);
}

TEST_F(ChainCacheTest, FullCacheMakesRoomForTheNewEntry) {
  ChainCache cache(1);
  FakeTpm other;
  Evidence a = MakeEvidence(tpm_, ca_, kNonce);
  Evidence b = MakeEvidence(other, ca_, kNonce);
  Both(a, cache);
  Both(b, cache);
  EXPECT_EQ(cache.size(), 1u);
  Both(b, cache);
  EXPECT_EQ(cache.hits(), 1u);
  Both(a, cache);  // evicted, so checked in full
  EXPECT_EQ(cache.hits(), 1u);
}

TEST_F(ChainCacheTest, KeyCoversEveryInput) {
  Evidence e = MakeEvidence(tpm_, ca_, kNonce);
  const ChainCache::Key base = ChainCache::KeyOf(ca_.pem(), e);
  EXPECT_EQ(ChainCache::KeyOf(ca_.pem(), e), base);
  EXPECT_NE(ChainCache::KeyOf(ca_.pem() + "\n", e), base);
  auto changed = [&](auto mutate) {
    Evidence x = e;
    mutate(x);
    return ChainCache::KeyOf(ca_.pem(), x) != base;
  };
  EXPECT_TRUE(changed([](Evidence& x) { x.ak_public.back() ^= 1; }));
  EXPECT_TRUE(changed([](Evidence& x) { x.ak_certificate_pem += " "; }));
  EXPECT_TRUE(changed([](Evidence& x) { x.ek_certificate_pem.clear(); }));
  EXPECT_TRUE(changed([](Evidence& x) { x.ca_chain_pem.clear(); }));
  EXPECT_TRUE(changed([](Evidence& x) { x.ca_chain_pem.push_back(x.ca_chain_pem[0]); }));
  // A field's end moved into the next field is another key.
  EXPECT_TRUE(changed([](Evidence& x) {
    x.ek_certificate_pem = x.ak_certificate_pem.back() + x.ek_certificate_pem;
    x.ak_certificate_pem.pop_back();
  }));
  // What the certificate checks do not read is not in the key.
  EXPECT_FALSE(changed([](Evidence& x) { x.signature.back() ^= 1; }));
}

}  // namespace
}  // namespace vmm::attestation
