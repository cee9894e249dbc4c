#include "attestation/tpm2_files.h"

#include <tss2/tss2_mu.h>

#include <bit>
#include <cstring>

#include "attestation/event_log.h"
#include "attestation/ossl.h"
#include "base/hex.h"

namespace vmm::attestation {
namespace {

// tpm2-tools writes the structs as they lie in memory after converting the integers to little
// endian; on a little-endian host that is the struct itself.
static_assert(std::endian::native == std::endian::little, "the pcrs file format is little-endian");
static_assert(sizeof(TPML_PCR_SELECTION) == 132 && sizeof(TPML_DIGEST) == 532,
              "tpm2-tools' pcrs file layout");
constexpr uint32_t kMaxDigestLists = 32;  // tpm2-tools' tpm2_pcrs.pcr_values[TPM2_MAX_PCRS]

Error Bad(const std::string& what) { return Error(ErrorKind::kProtocol, what); }

std::vector<uint8_t> Bytes(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string Text(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

Result<TPMS_ATTEST> UnmarshalAttest(std::span<const uint8_t> attest) {
  TPMS_ATTEST a{};
  size_t offset = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest.data(), attest.size(), &offset, &a) != TSS2_RC_SUCCESS ||
      offset != attest.size()) {
    return Bad("quote.msg is not a TPMS_ATTEST");
  }
  if (a.type != TPM2_ST_ATTEST_QUOTE) return Bad("quote.msg is not a quote");
  return a;
}

}  // namespace

Result<std::vector<uint8_t>> WritePcrsFile(
    std::span<const uint8_t> attest,
    const std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>& pcrs) {
  ASSIGN_OR_RETURN(TPMS_ATTEST a, UnmarshalAttest(attest));
  // Field by field into a zeroed struct, so that the padding written to the file is zero.
  TPML_PCR_SELECTION sel;
  std::memset(&sel, 0, sizeof(sel));
  const TPML_PCR_SELECTION& quoted = a.attested.quote.pcrSelect;
  sel.count = quoted.count;
  for (uint32_t i = 0; i < quoted.count && i < TPM2_NUM_PCR_BANKS; ++i) {
    sel.pcrSelections[i].hash = quoted.pcrSelections[i].hash;
    sel.pcrSelections[i].sizeofSelect = quoted.pcrSelections[i].sizeofSelect;
    std::memcpy(sel.pcrSelections[i].pcrSelect, quoted.pcrSelections[i].pcrSelect,
                sizeof(sel.pcrSelections[i].pcrSelect));
  }
  ASSIGN_OR_RETURN(QuoteInfo q, ParseQuote(attest));
  std::vector<TPML_DIGEST> lists;
  for (const PcrSelection& bank : q.selection) {
    for (uint32_t pcr : bank.pcrs) {
      auto values = pcrs.find(bank.alg);
      if (values == pcrs.end() || values->second.count(pcr) == 0) {
        return Bad("the bundle has no value for " + AlgName(bank.alg) + " PCR " +
                   std::to_string(pcr) + ", which the quote selects");
      }
      const std::vector<uint8_t>& v = values->second.at(pcr);
      if (lists.empty() || lists.back().count == 8) {
        TPML_DIGEST empty;
        std::memset(&empty, 0, sizeof(empty));
        lists.push_back(empty);
      }
      if (lists.size() > kMaxDigestLists || v.size() > sizeof(TPMU_HA)) {
        return Bad("too many PCR values for tpm2-tools' pcrs file");
      }
      TPM2B_DIGEST& d = lists.back().digests[lists.back().count++];
      d.size = static_cast<uint16_t>(v.size());
      std::memcpy(d.buffer, v.data(), v.size());
    }
  }
  std::vector<uint8_t> out(sizeof(sel) + 4 + lists.size() * sizeof(TPML_DIGEST));
  std::memcpy(out.data(), &sel, sizeof(sel));
  uint32_t count = static_cast<uint32_t>(lists.size());
  std::memcpy(out.data() + sizeof(sel), &count, 4);
  for (size_t i = 0; i < lists.size(); ++i) {
    std::memcpy(out.data() + sizeof(sel) + 4 + i * sizeof(TPML_DIGEST), &lists[i],
                sizeof(TPML_DIGEST));
  }
  return out;
}

Result<std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>>> ReadPcrsFile(
    std::span<const uint8_t> bytes, std::vector<PcrSelection>* selection) {
  if (bytes.size() < sizeof(TPML_PCR_SELECTION) + 4) return Bad("quote.pcrs is truncated");
  TPML_PCR_SELECTION sel;
  std::memcpy(&sel, bytes.data(), sizeof(sel));
  uint32_t count;
  std::memcpy(&count, bytes.data() + sizeof(sel), 4);
  if (count > kMaxDigestLists) return Bad("quote.pcrs holds more than 32 digest lists");
  if (bytes.size() != sizeof(sel) + 4 + size_t{count} * sizeof(TPML_DIGEST)) {
    return Bad("quote.pcrs is " + std::to_string(bytes.size()) + " bytes, not the " +
               std::to_string(sizeof(sel) + 4 + size_t{count} * sizeof(TPML_DIGEST)) +
               " its count of " + std::to_string(count) + " digest lists needs");
  }
  if (sel.count > TPM2_NUM_PCR_BANKS) return Bad("quote.pcrs selects too many banks");
  std::vector<TPML_DIGEST> lists(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::memcpy(&lists[i], bytes.data() + sizeof(sel) + 4 + i * sizeof(TPML_DIGEST),
                sizeof(TPML_DIGEST));
    if (lists[i].count > 8) return Bad("quote.pcrs: a digest list holds more than 8 digests");
  }
  std::map<uint16_t, std::map<uint32_t, std::vector<uint8_t>>> out;
  uint32_t vi = 0, di = 0;
  for (uint32_t b = 0; b < sel.count; ++b) {
    const TPMS_PCR_SELECTION& s = sel.pcrSelections[b];
    if (s.sizeofSelect > sizeof(s.pcrSelect)) return Bad("quote.pcrs: a selection is too large");
    size_t size = TpmAlgDigestSize(s.hash);
    if (size == 0) return Bad("quote.pcrs: unknown bank " + Hex(s.hash, 4));
    PcrSelection bank{s.hash, {}};
    for (uint32_t pcr = 0; pcr < s.sizeofSelect * 8u; ++pcr) {
      if (!(s.pcrSelect[pcr / 8] & (1u << (pcr % 8)))) continue;
      if (pcr >= kNumPcrs) return Bad("quote.pcrs selects PCR " + std::to_string(pcr));
      while (vi < count && di >= lists[vi].count) {
        ++vi;
        di = 0;
      }
      if (vi >= count) return Bad("quote.pcrs has fewer values than PCRs selected");
      const TPM2B_DIGEST& d = lists[vi].digests[di++];
      if (d.size != size) {
        return Bad("quote.pcrs: " + AlgName(s.hash) + " PCR " + std::to_string(pcr) + " has " +
                   std::to_string(d.size) + " bytes");
      }
      out[s.hash][pcr].assign(d.buffer, d.buffer + d.size);
      bank.pcrs.push_back(pcr);
    }
    if (selection) selection->push_back(std::move(bank));
  }
  while (vi < count && di >= lists[vi].count) {
    ++vi;
    di = 0;
  }
  if (vi < count) return Bad("quote.pcrs has more values than PCRs selected");
  return out;
}

Result<FileSet> UnpackEvidence(const Evidence& e) {
  FileSet files;
  files["quote.msg"] = e.attest;
  files["quote.sig"] = e.signature;
  ASSIGN_OR_RETURN(files["quote.pcrs"], WritePcrsFile(e.attest, e.pcrs));
  ASSIGN_OR_RETURN(AkPublic ak, ParseAkPublic(e.ak_public));
  if (e.ak_public.size() > 0xffff) return Bad("the AK public area is too large");
  std::vector<uint8_t> tpm2b = {static_cast<uint8_t>(e.ak_public.size() >> 8),
                                static_cast<uint8_t>(e.ak_public.size())};
  tpm2b.insert(tpm2b.end(), e.ak_public.begin(), e.ak_public.end());
  files["ak.pub"] = std::move(tpm2b);
  ASSIGN_OR_RETURN(std::string pem, PublicKeyToPem(ak.key.get()));
  files["ak.pub.pem"] = Bytes(pem);
  if (!e.ak_certificate_pem.empty()) files["ak.crt.pem"] = Bytes(e.ak_certificate_pem);
  if (!e.ek_certificate_pem.empty()) files["ek.crt.pem"] = Bytes(e.ek_certificate_pem);
  if (!e.ca_chain_pem.empty()) {
    std::string chain;
    for (const std::string& c : e.ca_chain_pem) {
      chain += c;
      if (!c.empty() && c.back() != '\n') chain += '\n';
    }
    files["ca-chain.pem"] = Bytes(chain);
  }
  files["eventlog.bin"] = e.event_log;
  return files;
}

Result<Evidence> PackEvidence(const FileSet& files, EvidenceSource source) {
  for (const char* name : kPackRequired) {
    if (files.count(name) == 0) return Bad(std::string(name) + " is missing");
  }
  Evidence e;
  e.source = source;
  e.attest = files.at("quote.msg");
  ASSIGN_OR_RETURN(TPMS_ATTEST a, UnmarshalAttest(e.attest));
  e.nonce.assign(a.extraData.buffer, a.extraData.buffer + a.extraData.size);
  e.signature = files.at("quote.sig");
  RETURN_IF_ERROR(ParseSignature(e.signature));
  ASSIGN_OR_RETURN(e.pcrs, ReadPcrsFile(files.at("quote.pcrs")));
  const std::vector<uint8_t>& pub = files.at("ak.pub");
  if (pub.size() < 2 || ((size_t{pub[0]} << 8) | pub[1]) != pub.size() - 2) {
    return Bad("ak.pub is not a TPM2B_PUBLIC (its size field disagrees with the file)");
  }
  e.ak_public.assign(pub.begin() + 2, pub.end());
  RETURN_IF_ERROR(ParseAkPublic(e.ak_public));
  e.event_log = files.at("eventlog.bin");
  if (e.event_log.size() > kMaxEventLogBytes) return Bad("eventlog.bin is too large");
  if (auto it = files.find("ak.crt.pem"); it != files.end()) {
    ASSIGN_OR_RETURN(X509Ptr c, CertFromPem(Text(it->second), "ak.crt.pem"));
    ASSIGN_OR_RETURN(e.ak_certificate_pem, CertToPem(c.get()));
  }
  if (auto it = files.find("ek.crt.pem"); it != files.end()) {
    ASSIGN_OR_RETURN(X509Ptr c, CertFromPem(Text(it->second), "ek.crt.pem"));
    ASSIGN_OR_RETURN(e.ek_certificate_pem, CertToPem(c.get()));
  }
  if (auto it = files.find("ca-chain.pem"); it != files.end()) {
    ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, CertsFromPem(Text(it->second), "ca-chain.pem"));
    if (certs.size() > kMaxCaChain) return Bad("ca-chain.pem holds too many certificates");
    for (const X509Ptr& c : certs) {
      ASSIGN_OR_RETURN(std::string pem, CertToPem(c.get()));
      e.ca_chain_pem.push_back(std::move(pem));
    }
  }
  return e;
}

}  // namespace vmm::attestation
