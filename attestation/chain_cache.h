// A verifier's memory of certificate checks that passed (ARCHITECTURE.md §6): a tenant that
// verifies many quotes of the same vTPM need not re-verify its AK's certificate chain, profile
// and EK binding each time. Verify consults it through VerifyOptions::chain_cache.
//
//   ChainCache cache;  // one per verifier, shared by its threads
//   VerifyOptions options{.ca_pem = ca, .nonce = nonce, .policy = &policy, .chain_cache = &cache};
//   VerifyResult r = VerifyBundle(bundle, options);  // the same result as without the cache
//
// What is remembered: the outcome (status and reason) of the checks ca-chain, ak-public,
// ak-certificate, ak-binding and ek-certificate, the vm-id and the parsed AK (so its key is not
// built again), only when none of them failed. The key is
// SHA-256 over exactly the inputs those checks read: the tenant's CA PEM, the bundle's ca_chain
// PEMs, the AK's TPMT_PUBLIC and the AK and EK certificate PEMs (the text, not the DER: a PEM
// with trailing text fails where its DER would not). An entry serves only a verification time
// strictly inside every one of those certificates' validity periods, so an expired (or not yet
// valid) entry is checked again in full, and removed. Nothing else the checks read varies: no
// CRLs, no network, the same strict flags.
#pragma once

#include <array>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attestation/appraisal.h"
#include "attestation/evidence.h"
#include "attestation/quote.h"

namespace vmm::attestation {

class ChainCache {
 public:
  using Key = std::array<uint8_t, 32>;
  struct Entry {
    std::vector<Check> checks;  // ca-chain, ak-public, ak-certificate, ak-binding, ek-certificate
    std::string vm_id;
    std::shared_ptr<const AkPublic> ak;  // the parsed AK (its EVP_PKEY is only read)
    time_t not_before = 0;               // the latest notBefore of the certificates checked
    time_t not_after = 0;                // the earliest notAfter
  };

  explicit ChainCache(size_t max_entries = 4096) : max_entries_(max_entries) {}

  // The key of `evidence` checked against `ca_pem`.
  static Key KeyOf(std::string_view ca_pem, const Evidence& evidence);

  // The entry for `key` if `at` lies strictly inside its validity, else nullptr; an entry that
  // does not serve `at` is dropped. The entry is shared, never changed: Store replaces it.
  std::shared_ptr<const Entry> Find(const Key& key, time_t at);
  // Remembers a passed result (Verify only calls it when no certificate check failed). When
  // full, the entry that expires first makes room.
  void Store(const Key& key, Entry entry);

  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  const size_t max_entries_;
  mutable std::mutex mu_;
  std::map<Key, std::shared_ptr<const Entry>> entries_;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace vmm::attestation
