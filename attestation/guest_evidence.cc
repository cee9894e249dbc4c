#include "attestation/guest_evidence.h"

#include <openssl/x509.h>

#include <charconv>
#include <set>
#include <string_view>

#include "attestation/codec.h"
#include "attestation/ossl.h"
#include "attestation/quote.h"
#include "base/hex.h"
#include "base/tpm_alg.h"

namespace vmm::attestation {
namespace {

constexpr std::string_view kPrefix = "attest: ";

Error Bad(const std::string& what) { return Error(ErrorKind::kProtocol, "guest output: " + what); }
Error BadLine(size_t line, const std::string& what) {
  return Bad("line " + std::to_string(line) + ": " + what);
}

// Lowercase hex only (the guest's hex_encode writes nothing else), at least one byte.
std::optional<std::vector<uint8_t>> LowerHex(std::string_view text) {
  Result<std::vector<uint8_t>> bytes = DecodeLowerHex(text);
  if (text.empty() || !bytes) return std::nullopt;
  return std::move(*bytes);
}

// A decimal number without sign or leading zeros, at most `max`.
std::optional<uint32_t> Decimal(std::string_view s, uint32_t max) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > max ||
      (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  return v;
}

// Splits on single spaces into exactly `n` fields.
bool Fields(std::string_view text, size_t n, std::vector<std::string_view>* out) {
  out->clear();
  size_t start = 0;
  for (;;) {
    size_t sp = text.find(' ', start);
    out->push_back(text.substr(start, sp == std::string_view::npos ? sp : sp - start));
    if (out->back().empty() || out->size() > n) return false;
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  return out->size() == n;
}

struct Piece {
  std::vector<uint8_t>* out;
  size_t parts = 0;  // announced by chunk 1; 0 = not started
  size_t next = 1;   // the chunk expected next
};

Result<uint16_t> BankByName(std::string_view name, size_t line) {
  std::optional<uint16_t> alg = TpmAlgByKnownName(name);
  if (alg && *alg != kTpmAlgSm3_256) return *alg;  // the banks a vTPM of ours can have
  return BadLine(line, "unknown PCR bank '" + std::string(name) + "'");
}

Result<std::string> PemOfDer(const std::vector<uint8_t>& der, const std::string& what) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) return OpenSslError(ErrorKind::kProtocol, "guest output: " + what + " is not X.509");
  if (p != der.data() + der.size()) {
    return Bad(what + ": " + std::to_string(der.data() + der.size() - p) +
               " bytes after the certificate");
  }
  return CertToPem(cert.get());
}

}  // namespace

Result<GuestPieces> ParseGuestAttestLines(std::span<const uint8_t> serial) {
  if (serial.size() > kMaxGuestSerialBytes) {
    return Bad("more than " + std::to_string(kMaxGuestSerialBytes) + " bytes");
  }
  GuestPieces g;
  std::vector<uint8_t> ek;
  std::map<std::string_view, Piece> pieces = {
      {"nonce", {&g.nonce}},         {"ak-public", {&g.ak_public}}, {"quote", {&g.attest}},
      {"signature", {&g.signature}}, {"ak-cert", {&g.ak_cert_der}}, {"ek-cert", {&ek}},
  };
  const std::string_view text(reinterpret_cast<const char*>(serial.data()), serial.size());
  std::vector<std::string_view> f;
  size_t line_no = 0;
  for (size_t at = 0; at < text.size();) {
    size_t nl = text.find('\n', at);
    const bool last = nl == std::string_view::npos;
    std::string_view line = text.substr(at, last ? std::string_view::npos : nl - at);
    at = last ? text.size() : nl + 1;
    ++line_no;
    if (!line.starts_with(kPrefix)) continue;
    if (last) return BadLine(line_no, "an `attest:` line without its newline (cut off?)");
    if (line.size() > kMaxGuestLineBytes) {
      return BadLine(line_no, "longer than " + std::to_string(kMaxGuestLineBytes) + " bytes");
    }
    std::string_view rest = line.substr(kPrefix.size());
    if (rest.starts_with("pcr ")) {
      if (!Fields(rest, 4, &f)) return BadLine(line_no, "want `attest: pcr <bank> <n> <hex>`");
      ASSIGN_OR_RETURN(uint16_t alg, BankByName(f[1], line_no));
      auto pcr = Decimal(f[2], 23);
      if (!pcr) return BadLine(line_no, "PCR index '" + std::string(f[2]) + "' (want 0..23)");
      auto value = LowerHex(f[3]);
      if (!value || value->size() != TpmAlgDigestSize(alg)) {
        return BadLine(line_no, "want " + std::to_string(TpmAlgDigestSize(alg)) +
                                    " bytes of lowercase hex for " + std::string(f[1]));
      }
      if (!g.pcrs[alg].emplace(*pcr, std::move(*value)).second) {
        return BadLine(line_no, "PCR " + std::string(f[1]) + ":" + std::string(f[2]) + " again");
      }
      continue;
    }
    if (!Fields(rest, 3, &f)) return BadLine(line_no, "want `attest: <piece> <i>/<n> <hex>`");
    auto piece = pieces.find(f[0]);
    if (piece == pieces.end()) {
      return BadLine(line_no, "unknown piece '" + std::string(f[0]) + "'");
    }
    Piece& p = piece->second;
    const size_t slash = f[1].find('/');
    auto i = Decimal(f[1].substr(0, slash), kMaxGuestChunks);
    auto n = slash == std::string_view::npos ? std::nullopt
                                             : Decimal(f[1].substr(slash + 1), kMaxGuestChunks);
    if (!i || !n || *i == 0 || *i > *n) {
      return BadLine(line_no, "chunk '" + std::string(f[1]) + "' (want i/n, 1 <= i <= n <= " +
                                  std::to_string(kMaxGuestChunks) + ")");
    }
    if (p.parts == 0 && *i == 1 && p.out->empty()) {
      p.parts = *n;
    } else if (p.parts == 0 || *i != p.next || *n != p.parts) {
      return BadLine(line_no, std::string(f[0]) + " chunk " + std::string(f[1]) +
                                  (p.parts == 0 && !p.out->empty()
                                       ? ": the piece was given already"
                                       : ": out of order (want " + std::to_string(p.next) + "/" +
                                             std::to_string(p.parts ? p.parts : *n) + ")"));
    }
    auto bytes = LowerHex(f[2]);
    if (!bytes) return BadLine(line_no, "not lowercase hex of at least one byte");
    if (bytes->size() > kMaxGuestPieceBytes - p.out->size()) {
      return BadLine(line_no,
                     std::string(f[0]) + " over " + std::to_string(kMaxGuestPieceBytes) + " bytes");
    }
    p.out->insert(p.out->end(), bytes->begin(), bytes->end());
    if (++p.next > p.parts) p.parts = 0;  // complete: any further chunk is a repeat
  }
  for (const auto& [name, p] : pieces) {
    if (p.parts != 0) {
      return Bad(std::string(name) + ": chunk " + std::to_string(p.next) + "/" +
                 std::to_string(p.parts) + " missing");
    }
    if (p.out->empty() && name != "ek-cert") {
      return Bad("no `attest: " + std::string(name) +
                 "` line (did the guest run its attest check, with attest_nonce=?)");
    }
  }
  if (g.pcrs.empty()) return Bad("no `attest: pcr` line");
  if (!ek.empty()) g.ek_cert_der = std::move(ek);
  return g;
}

Result<Evidence> EvidenceFromGuest(std::span<const uint8_t> serial,
                                   const GuestBundleInputs& inputs) {
  ASSIGN_OR_RETURN(GuestPieces g, ParseGuestAttestLines(serial));
  if (g.nonce != inputs.nonce) {
    return Bad("the guest quoted with nonce " + HexBytes(g.nonce) + ", not " +
               HexBytes(inputs.nonce));
  }
  ASSIGN_OR_RETURN(QuoteInfo q, ParseQuote(g.attest));
  if (q.magic != kTpmGeneratedValue || q.type != kTpmStAttestQuote) {
    return Bad("the quote piece is not a TPM-generated quote (magic " + Hex(q.magic, 8) +
               ", type " + Hex(q.type, 4) + ")");
  }
  if (q.extra_data != inputs.nonce) {
    return Bad("the quote's extraData is " + HexBytes(q.extra_data) + ", not the nonce " +
               HexBytes(inputs.nonce));
  }
  std::set<std::pair<uint16_t, uint32_t>> selected, printed;
  for (const PcrSelection& bank : q.selection) {
    for (uint32_t pcr : bank.pcrs) selected.insert({bank.alg, pcr});
  }
  for (const auto& [alg, values] : g.pcrs) {
    for (const auto& [pcr, value] : values) printed.insert({alg, pcr});
  }
  if (selected != printed) {
    return Bad("the PCR lines (" + std::to_string(printed.size()) +
               ") are not the quote's selection (" + std::to_string(selected.size()) + " PCRs)");
  }
  if (inputs.event_log.size() > kMaxEventLogBytes) {
    return Bad("the event log is over " + std::to_string(kMaxEventLogBytes) + " bytes");
  }
  if (inputs.ca_chain_pem.size() > kMaxCaChain) {
    return Bad("more than " + std::to_string(kMaxCaChain) + " CA certificates");
  }
  Evidence e;
  e.source = EvidenceSource::kGuest;
  e.nonce = inputs.nonce;
  e.attest = std::move(g.attest);
  e.signature = std::move(g.signature);
  e.pcrs = std::move(g.pcrs);
  e.event_log.assign(inputs.event_log.begin(), inputs.event_log.end());
  e.ak_public = std::move(g.ak_public);
  ASSIGN_OR_RETURN(e.ak_certificate_pem, PemOfDer(g.ak_cert_der, "ak-cert"));
  if (g.ek_cert_der) {
    ASSIGN_OR_RETURN(e.ek_certificate_pem, PemOfDer(*g.ek_cert_der, "ek-cert"));
  }
  e.ca_chain_pem = inputs.ca_chain_pem;
  return e;
}

}  // namespace vmm::attestation
