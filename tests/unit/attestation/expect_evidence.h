// ExpectSameContent: two evidence bundles carry the same quote, PCRs, log, keys and
// certificates, each field checked on its own so that a failure names it.
//
//   ExpectSameContent(*parsed, sent);   // and the caller checks `source` as it expects
#pragma once

#include <gtest/gtest.h>

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

}  // namespace vmm::attestation
