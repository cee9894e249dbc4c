// ExpectSameContent: two evidence bundles carry the same quote, PCRs, log, keys and
// certificates, each field checked on its own so that a failure names it. FindCheck: one check
// of a verification or appraisal by name.
//
//   ExpectSameContent(*parsed, sent);   // and the caller checks `source` as it expects
//   EXPECT_EQ(FindCheck(result.checks, "nonce").status, CheckStatus::kPass);
#pragma once

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/evidence.h"

namespace vmm::attestation {

inline void ExpectSameContent(const Evidence& got, const Evidence& want) {
  EXPECT_EQ(got.nonce, want.nonce);
  EXPECT_EQ(got.attest, want.attest);
  EXPECT_EQ(got.signature, want.signature);
  EXPECT_EQ(got.pcrs, want.pcrs);
  EXPECT_EQ(got.event_log, want.event_log);
  EXPECT_EQ(got.ak_public, want.ak_public);
  EXPECT_EQ(got.ak_certificate_pem, want.ak_certificate_pem);
  EXPECT_EQ(got.ek_certificate_pem, want.ek_certificate_pem);
  EXPECT_EQ(got.ca_chain_pem, want.ca_chain_pem);
}

// The check named `name`; a test failure (and an empty skipped check) when there is none.
inline const Check& FindCheck(const std::vector<Check>& checks, std::string_view name) {
  for (const Check& c : checks) {
    if (c.name == name) return c;
  }
  static const Check none{"(absent)", CheckStatus::kSkip, "", Claim::kNone, {}, {}};
  ADD_FAILURE() << "no check " << name;
  return none;
}

}  // namespace vmm::attestation
