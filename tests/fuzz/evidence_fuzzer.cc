// Arbitrary bytes as an evidence bundle (attestation/evidence.h), the way vmm-verify reads a
// file a host sent it. Checked: no crash; a bundle that parses serializes to a document that
// parses to the same bundle and serializes to the same text; what parsed respects the limits.
#include <cstdint>
#include <span>
#include <string>

#include "attestation/evidence.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace vmm::attestation;

bool Same(const Evidence& a, const Evidence& b) {
  return a.source == b.source && a.nonce == b.nonce && a.attest == b.attest &&
         a.signature == b.signature && a.pcrs == b.pcrs && a.event_log == b.event_log &&
         a.ak_public == b.ak_public && a.ak_certificate_pem == b.ak_certificate_pem &&
         a.ek_certificate_pem == b.ek_certificate_pem && a.ca_chain_pem == b.ca_chain_pem;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = ParseEvidence(std::span<const uint8_t>(data, size));
  if (RefusedWithAReason(parsed)) return 0;
  CHECK(size <= kMaxEvidenceBytes);
  CHECK(parsed->event_log.size() <= kMaxEventLogBytes);
  CHECK(parsed->ca_chain_pem.size() <= kMaxCaChain);
  std::string text = SerializeEvidence(*parsed);
  auto again = ParseEvidence(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  CHECK(again.has_value());
  CHECK(Same(*parsed, *again));
  CHECK(SerializeEvidence(*again) == text);
  return 0;
}
