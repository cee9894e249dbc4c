// Arbitrary bytes as a guest's console output (attestation/guest_evidence.h), the way
// `vmm-verify from-guest` reads it. Checked: no crash; what parses respects the limits; the
// pieces written back in the guest's format parse to the same pieces; a bundle assembled from
// them (with the guest's own nonce) serializes to a document that parses, "source": "guest".
#include <cstdint>
#include <span>
#include <string>

#include "attestation/guest_evidence.h"
#include "base/tpm_alg.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/unit/attestation/guest_lines.h"

namespace {

using namespace vmm::attestation;

std::string Render(const GuestPieces& g) {
  std::string s = GuestPieceLines("nonce", g.nonce) + GuestPieceLines("ak-public", g.ak_public) +
                  GuestPieceLines("quote", g.attest) + GuestPieceLines("signature", g.signature) +
                  GuestPieceLines("ak-cert", g.ak_cert_der);
  if (g.ek_cert_der) s += GuestPieceLines("ek-cert", *g.ek_cert_der);
  return s + GuestPcrLines(g.pcrs);
}

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool Piece(const std::vector<uint8_t>& b) { return !b.empty() && b.size() <= kMaxGuestPieceBytes; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = ParseGuestAttestLines(std::span<const uint8_t>(data, size));
  if (RefusedWithAReason(parsed)) return 0;
  const GuestPieces& g = *parsed;
  CHECK(Piece(g.nonce) && Piece(g.ak_public) && Piece(g.attest) && Piece(g.signature) &&
        Piece(g.ak_cert_der) && (!g.ek_cert_der || Piece(*g.ek_cert_der)));
  CHECK(!g.pcrs.empty());
  for (const auto& [alg, values] : g.pcrs) {
    for (const auto& [pcr, value] : values) {
      CHECK(pcr <= 23 && !value.empty() && value.size() == vmm::TpmAlgDigestSize(alg));
    }
  }
  const std::string again_text = Render(g);
  auto again = ParseGuestAttestLines(Span(again_text));
  CHECK(again.has_value());
  CHECK(again->nonce == g.nonce && again->ak_public == g.ak_public && again->attest == g.attest &&
        again->signature == g.signature && again->pcrs == g.pcrs &&
        again->ak_cert_der == g.ak_cert_der && again->ek_cert_der == g.ek_cert_der);

  auto bundle = EvidenceFromGuest(std::span<const uint8_t>(data, size), {{}, g.nonce, {}});
  if (!bundle) return 0;
  CHECK(bundle->source == EvidenceSource::kGuest && bundle->nonce == g.nonce);
  const std::string json = SerializeEvidence(*bundle);
  auto read = ParseEvidence(Span(json));
  CHECK(read.has_value() && read->source == EvidenceSource::kGuest);
  return 0;
}
