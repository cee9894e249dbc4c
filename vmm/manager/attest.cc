#include "vmm/manager/attest.h"

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>

#include "base/tpm_alg.h"
#include "vtpm/provision/ak_provision.h"
#include "vtpm/provision/ak_template.h"
#include "vtpm/provision/ek_provision.h"
#include "vtpm/provision/ossl.h"
#include "vtpm/tcti/esys_context.h"

namespace vmm {
namespace {

using vtpm::TssError;

Result<uint16_t> BankByName(std::string_view name) {
  std::optional<uint16_t> alg = TpmAlgByKnownName(name);
  if (alg && *alg != kTpmAlgSm3_256) return *alg;
  return InvalidArgument("unknown PCR bank '" + std::string(name) +
                         "' (sha1, sha256, sha384, sha512)");
}

Result<uint32_t> PcrNumber(std::string_view s) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > 23 ||
      (s.size() > 1 && s[0] == '0')) {
    return InvalidArgument("bad PCR number '" + std::string(s) + "' (0-23)");
  }
  return v;
}

template <typename Fn>
void ForEachPart(std::string_view text, char sep, Fn fn) {
  size_t start = 0;
  for (;;) {
    size_t end = text.find(sep, start);
    fn(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
}

Result<TPML_PCR_SELECTION> ToTpml(const PcrSelection& sel) {
  TPML_PCR_SELECTION out{};
  if (sel.banks.size() > TPM2_NUM_PCR_BANKS) return InvalidArgument("too many PCR banks");
  for (const PcrSelection::Bank& b : sel.banks) {
    TPMS_PCR_SELECTION& s = out.pcrSelections[out.count++];
    s.hash = b.alg;
    s.sizeofSelect = 3;
    for (uint32_t pcr : b.pcrs) s.pcrSelect[pcr / 8] |= static_cast<uint8_t>(1u << (pcr % 8));
  }
  return out;
}

// Frees ESYS-allocated results.
struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

// Every selected PCR's value, in selection order (TPM2_PCR_Read returns at most 8 digests per
// call: read until the selection is exhausted).
Result<std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>> ReadPcrs(
    ESYS_CONTEXT* esys, const PcrSelection& sel) {
  std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>> values;
  for (const PcrSelection::Bank& b : sel.banks) {
    for (size_t i = 0; i < b.pcrs.size(); i += 8) {
      PcrSelection part;
      part.banks.push_back({b.alg, {}});
      for (size_t j = i; j < b.pcrs.size() && j < i + 8; ++j)
        part.banks[0].pcrs.push_back(b.pcrs[j]);
      ASSIGN_OR_RETURN(TPML_PCR_SELECTION in, ToTpml(part));
      UINT32 counter = 0;
      TPML_PCR_SELECTION* out_sel = nullptr;
      TPML_DIGEST* digests = nullptr;
      TSS2_RC rc = Esys_PCR_Read(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, &counter,
                                 &out_sel, &digests);
      EsysPtr<TPML_PCR_SELECTION> out_owner(out_sel);
      EsysPtr<TPML_DIGEST> digest_owner(digests);
      if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_PCR_Read");
      if (digests->count != part.banks[0].pcrs.size()) {
        return Error(ErrorKind::kProtocol, "TPM2_PCR_Read of " +
                                               std::string(TpmAlgKnownName(b.alg)) + " returned " +
                                               std::to_string(digests->count) + " digests for " +
                                               std::to_string(part.banks[0].pcrs.size()) +
                                               " PCRs (is the bank allocated?)");
      }
      for (size_t k = 0; k < digests->count; ++k) {
        const TPM2B_DIGEST& d = digests->digests[k];
        if (d.size != TpmAlgDigestSize(b.alg)) {
          return Error(ErrorKind::kProtocol, "TPM2_PCR_Read: a digest of the wrong size");
        }
        values[b.alg][part.banks[0].pcrs[k]] = std::vector<uint8_t>(d.buffer, d.buffer + d.size);
      }
    }
  }
  return values;
}

// SHA-256 over the values in selection order: the quote's pcrDigest for a SHA-256 AK.
std::vector<uint8_t> PcrDigest(
    const PcrSelection& sel,
    const std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>& values) {
  std::vector<uint8_t> all;
  for (const PcrSelection::Bank& b : sel.banks) {
    for (uint32_t pcr : b.pcrs) {
      const std::vector<uint8_t>& v = values.at(b.alg).at(pcr);
      all.insert(all.end(), v.begin(), v.end());
    }
  }
  std::vector<uint8_t> md(32);
  unsigned len = 0;
  EVP_Digest(all.data(), all.size(), md.data(), &len, EVP_sha256(), nullptr);
  return md;
}

template <typename T, typename Fn>
std::vector<uint8_t> Marshal(const T& value, Fn fn) {
  std::vector<uint8_t> out(sizeof(T) + 16);
  size_t off = 0;
  if (fn(&value, out.data(), out.size(), &off) != TSS2_RC_SUCCESS) return {};
  out.resize(off);
  return out;
}

// The certificate as PEM, or "" if `der` is not one X.509 certificate.
std::string PemOfDer(const std::vector<uint8_t>& der) {
  auto cert = vtpm::CertFromDer(der);
  if (!cert) return {};
  auto pem = vtpm::CertToPem(cert->get());
  return pem ? *pem : std::string();
}

// The quote itself, into `ev`: the AK recreated (and flushed when `ak` goes), the PCRs read,
// TPM2_Quote, and its PCR digest compared with what was read.
Result<void> QuoteInto(ESYS_CONTEXT* esys, const QuoteRequest& request,
                       const TPML_PCR_SELECTION& tpml, attestation::Evidence& ev) {
  ASSIGN_OR_RETURN(vtpm::PrimaryKey ak, vtpm::CreateAk(esys));
  ASSIGN_OR_RETURN(ev.ak_public, vtpm::MarshalPublicArea(ak.public_area()));
  Result<void> quoted = Error(ErrorKind::kInternal, "no quote attempted");
  for (int attempt = 0; attempt < kQuoteAttempts; ++attempt) {
    auto before = ReadPcrs(esys, request.pcrs);
    if (!before) {
      quoted = before.error();
      break;
    }
    TPM2B_DATA qualifying{};
    qualifying.size = static_cast<UINT16>(request.nonce.size());
    std::copy(request.nonce.begin(), request.nonce.end(), qualifying.buffer);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // the AK's own: ECDSA with SHA-256
    TPM2B_ATTEST* attest = nullptr;
    TPMT_SIGNATURE* signature = nullptr;
    TSS2_RC rc = Esys_Quote(esys, ak.handle(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                            &qualifying, &scheme, &tpml, &attest, &signature);
    EsysPtr<TPM2B_ATTEST> attest_owner(attest);
    EsysPtr<TPMT_SIGNATURE> signature_owner(signature);
    if (rc != TSS2_RC_SUCCESS) {
      quoted = TssError(rc, "TPM2_Quote");
      break;
    }
    TPMS_ATTEST parsed{};
    size_t off = 0;
    if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest->attestationData, attest->size, &off, &parsed) !=
        TSS2_RC_SUCCESS) {
      quoted = Error(ErrorKind::kProtocol, "TPM2_Quote returned a TPMS_ATTEST we cannot read");
      break;
    }
    const TPM2B_DIGEST& quoted_digest = parsed.attested.quote.pcrDigest;
    const std::vector<uint8_t> expect = PcrDigest(request.pcrs, *before);
    if (quoted_digest.size != expect.size() ||
        !std::equal(expect.begin(), expect.end(), quoted_digest.buffer)) {
      quoted = Error(ErrorKind::kProtocol,
                     "the PCRs changed while quoting (the guest extended them); tried " +
                         std::to_string(kQuoteAttempts) + " times");
      continue;
    }
    ev.attest.assign(attest->attestationData, attest->attestationData + attest->size);
    ev.signature = Marshal(*signature, Tss2_MU_TPMT_SIGNATURE_Marshal);
    ev.pcrs = std::move(*before);
    quoted = Ok();
    break;
  }
  return quoted;
}

}  // namespace

Result<PcrSelection> ParsePcrSelection(std::string_view text) {
  PcrSelection sel;
  std::optional<Error> error;
  ForEachPart(text, '+', [&](std::string_view bank) {
    if (error) return;
    const size_t colon = bank.find(':');
    if (colon == std::string_view::npos) {
      error = InvalidArgument("PCR selection '" + std::string(bank) +
                              "': expected BANK:PCRS, e.g. sha256:0,1,4-9");
      return;
    }
    auto alg = BankByName(bank.substr(0, colon));
    if (!alg) {
      error = alg.error();
      return;
    }
    for (const PcrSelection::Bank& b : sel.banks) {
      if (b.alg == *alg)
        error =
            InvalidArgument("PCR bank '" + std::string(bank.substr(0, colon)) + "' named twice");
    }
    uint32_t mask = 0;
    ForEachPart(bank.substr(colon + 1), ',', [&](std::string_view item) {
      if (error) return;
      const size_t dash = item.find('-');
      auto first = PcrNumber(item.substr(0, dash));
      auto last = dash == std::string_view::npos ? first : PcrNumber(item.substr(dash + 1));
      if (!first || !last) {
        error = (!first ? first : last).error();
        return;
      }
      if (*last < *first) {
        error = InvalidArgument("PCR range '" + std::string(item) + "' runs backwards");
        return;
      }
      for (uint32_t p = *first; p <= *last; ++p) mask |= 1u << p;
    });
    if (error) return;
    PcrSelection::Bank b{*alg, {}};
    for (uint32_t p = 0; p < 24; ++p) {
      if (mask & (1u << p)) b.pcrs.push_back(p);
    }
    sel.banks.push_back(std::move(b));
  });
  if (error) return *error;
  if (sel.banks.size() > 4) return InvalidArgument("more than 4 PCR banks");
  return sel;
}

std::string PcrSelectionToString(const PcrSelection& selection) {
  std::string out;
  for (const PcrSelection::Bank& b : selection.banks) {
    if (!out.empty()) out += '+';
    out += std::string(TpmAlgKnownName(b.alg)) + ':';
    for (size_t i = 0; i < b.pcrs.size(); ++i) out += (i ? "," : "") + std::to_string(b.pcrs[i]);
  }
  return out;
}

PcrSelection DefaultQuoteSelection() {
  PcrSelection sel;
  for (uint16_t alg : {kTpmAlgSha256, kTpmAlgSha384}) {
    PcrSelection::Bank b{alg, {}};
    for (uint32_t p = 0; p <= 9; ++p) b.pcrs.push_back(p);
    sel.banks.push_back(std::move(b));
  }
  return sel;
}

Result<void> CheckQuoteRequest(const QuoteRequest& request) {
  if (request.nonce.empty() || request.nonce.size() > kMaxNonceBytes) {
    return InvalidArgument("the nonce must be 1 to " + std::to_string(kMaxNonceBytes) +
                           " bytes (given " + std::to_string(request.nonce.size()) + ")");
  }
  if (request.pcrs.banks.empty()) return InvalidArgument("no PCR bank selected");
  for (const PcrSelection::Bank& b : request.pcrs.banks) {
    if (b.pcrs.empty()) {
      return InvalidArgument("no PCR selected in bank " + std::string(TpmAlgKnownName(b.alg)));
    }
  }
  return Ok();
}

Result<attestation::Evidence> QuoteVm(ESYS_CONTEXT* esys, const QuoteRequest& request,
                                      std::span<const uint8_t> event_log) {
  RETURN_IF_ERROR(CheckQuoteRequest(request));
  ASSIGN_OR_RETURN(TPML_PCR_SELECTION tpml, ToTpml(request.pcrs));
  attestation::Evidence ev;
  ev.source = attestation::EvidenceSource::kManager;
  ev.nonce = request.nonce;
  RETURN_IF_ERROR(QuoteInto(esys, request, tpml, ev));
  ev.event_log.assign(event_log.begin(), event_log.end());
  auto ak_cert = vtpm::ReadAkCertificate(esys);
  if (!ak_cert && ak_cert.error().kind() == ErrorKind::kNotFound) {
    return Error(ErrorKind::kNotFound,
                 "the vTPM holds no AK certificate: provision it first (vmm vtpm provision "
                 "--vm state=DIR,key=FILE); an ephemeral vTPM has none");
  }
  if (!ak_cert) return ak_cert.error();
  ev.ak_certificate_pem = PemOfDer(*ak_cert);
  if (ev.ak_certificate_pem.empty()) {
    return Error(ErrorKind::kProtocol, "the AK certificate in the vTPM's NV is not X.509 DER");
  }
  auto ek_cert = vtpm::ReadEkCertificate(esys, vtpm::EkKind::kRsa2048);
  if (ek_cert) {
    ev.ek_certificate_pem = PemOfDer(*ek_cert);
  } else if (ek_cert.error().kind() != ErrorKind::kNotFound) {
    return ek_cert.error();
  }
  return ev;
}

}  // namespace vmm
