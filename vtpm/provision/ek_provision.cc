#include "vtpm/provision/ek_provision.h"

#include "vtpm/provision/esys_steps.h"

namespace vmm::vtpm {

namespace {

std::string IndexName(EkKind kind) {
  return "NV index " + Hex32(EkCertNvIndex(kind)) + " (" + EkKindName(kind) + " EK certificate)";
}

Result<EvpPkeyPtr> CreateEkPublic(ESYS_CONTEXT* esys, EkKind kind) {
  ASSIGN_OR_RETURN(PrimaryKey ek, CreateEndorsementPrimary(esys, EkTemplate(kind),
                                                           std::string(EkKindName(kind)) + " EK"));
  return PublicAreaToKey(ek.public_area());
}

std::string VendorString(std::span<const uint32_t> words) {
  std::string s;
  for (uint32_t w : words) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      char c = char((w >> shift) & 0xff);
      if (c >= 0x20 && c < 0x7f) s += c;  // NUL padding and anything unprintable dropped
    }
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}

}  // namespace

Result<TpmIdentity> ReadTpmIdentity(ESYS_CONTEXT* esys) {
  TpmIdentity id;
  ASSIGN_OR_RETURN(id.manufacturer, GetProperty(esys, TPM2_PT_MANUFACTURER));
  ASSIGN_OR_RETURN(id.firmware_version, GetProperty(esys, TPM2_PT_FIRMWARE_VERSION_1));
  uint32_t words[4] = {};
  for (uint32_t i = 0; i < 4; ++i) {
    ASSIGN_OR_RETURN(words[i], GetProperty(esys, TPM2_PT_VENDOR_STRING_1 + i));
  }
  id.model = VendorString(words);
  return id;
}

Result<std::vector<ProvisionedEk>> ProvisionEks(ESYS_CONTEXT* esys, const HostCa& ca,
                                                const ProvisionOptions& options) {
  std::vector<bool> defined;
  for (EkKind kind : options.kinds) {
    ASSIGN_OR_RETURN(bool exists, IndexDefined(esys, EkCertNvIndex(kind)));
    if (exists && !options.force) {
      return InvalidArgument("vTPM is already provisioned: " + IndexName(kind) +
                             " exists; use force to replace its EK certificates");
    }
    defined.push_back(exists);
  }
  ASSIGN_OR_RETURN(TpmIdentity identity, ReadTpmIdentity(esys));
  ASSIGN_OR_RETURN(uint16_t chunk, NvChunkSize(esys));
  ASSIGN_OR_RETURN(uint32_t index_max, GetProperty(esys, TPM2_PT_NV_INDEX_MAX));

  std::vector<ProvisionedEk> out;
  for (size_t i = 0; i < options.kinds.size(); ++i) {
    EkKind kind = options.kinds[i];
    ASSIGN_OR_RETURN(EvpPkeyPtr ek, CreateEkPublic(esys, kind));
    ASSIGN_OR_RETURN(std::vector<uint8_t> der,
                     IssueEkCertificate(ca, ek.get(), kind, identity, options.vm_id));
    if (der.size() > index_max) {
      return Error(ErrorKind::kUnsupported,
                   IndexName(kind) + ": the certificate (" + std::to_string(der.size()) +
                       " bytes) exceeds TPM_PT_NV_INDEX_MAX (" + std::to_string(index_max) + ")");
    }
    if (defined[i]) RETURN_IF_ERROR(UndefineIndex(esys, EkCertNvIndex(kind)));
    auto stored = StoreCertificate(esys, EkCertNvIndex(kind), kEkCertNvAttributes, der, chunk);
    if (!stored) return stored.error().Wrap("storing the " + IndexName(kind));
    ASSIGN_OR_RETURN(std::string pem, PublicKeyToPem(ek.get()));
    out.push_back(ProvisionedEk{kind, EkCertNvIndex(kind), std::move(der), std::move(pem)});
  }
  return out;
}

Result<std::vector<uint8_t>> ReadEkCertificate(ESYS_CONTEXT* esys, EkKind kind) {
  return ReadCertificate(esys, EkCertNvIndex(kind), IndexName(kind));
}

Result<std::string> ReadEkPublic(ESYS_CONTEXT* esys, EkKind kind) {
  ASSIGN_OR_RETURN(EvpPkeyPtr ek, CreateEkPublic(esys, kind));
  return PublicKeyToPem(ek.get());
}

}  // namespace vmm::vtpm
