#include "vtpm/provision/ak_template.h"

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#include <array>

#include "vtpm/provision/ossl.h"

namespace vmm::vtpm {

namespace {

// ak_template.h's byte table, spelled out.
constexpr std::array<uint8_t, 90> kAkTemplate = [] {
  std::array<uint8_t, 90> b{};
  const uint8_t head[] = {
      0x00, 0x58,              // size
      0x00, 0x23,              // TPM_ALG_ECC
      0x00, 0x0b,              // TPM_ALG_SHA256
      0x00, 0x05, 0x04, 0x72,  // objectAttributes
      0x00, 0x00,              // authPolicy
      0x00, 0x10,              // symmetric: TPM_ALG_NULL
      0x00, 0x18, 0x00, 0x0b,  // ECDSA, SHA-256
      0x00, 0x03,              // NIST P-256
      0x00, 0x10,              // kdf: TPM_ALG_NULL
      0x00, 0x20,              // unique.x size, 32 zeros follow
  };
  size_t i = 0;
  for (uint8_t v : head) b[i++] = v;
  i += 32;
  b[i++] = 0x00;  // unique.y size, 32 zeros follow
  b[i++] = 0x20;
  return b;
}();

}  // namespace

TPM2B_PUBLIC AkTemplate() {
  TPM2B_PUBLIC in = {};
  TPMT_PUBLIC& p = in.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kAkAttributes;
  p.authPolicy.size = 0;
  p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  p.unique.ecc.x.size = 32;  // zeros
  p.unique.ecc.y.size = 32;
  return in;
}

std::span<const uint8_t> AkTemplateBytes() { return kAkTemplate; }

Result<std::vector<uint8_t>> MarshalPublicArea(const TPMT_PUBLIC& pub) {
  std::vector<uint8_t> out(sizeof(TPMT_PUBLIC));
  size_t offset = 0;
  TSS2_RC rc = Tss2_MU_TPMT_PUBLIC_Marshal(&pub, out.data(), out.size(), &offset);
  if (rc != TSS2_RC_SUCCESS) {
    return Error(ErrorKind::kInternal, "marshalling a TPMT_PUBLIC: rc " + std::to_string(rc));
  }
  out.resize(offset);
  return out;
}

Result<TPMT_PUBLIC> UnmarshalPublicArea(std::span<const uint8_t> bytes) {
  TPMT_PUBLIC pub = {};
  size_t offset = 0;
  TSS2_RC rc = Tss2_MU_TPMT_PUBLIC_Unmarshal(bytes.data(), bytes.size(), &offset, &pub);
  if (rc != TSS2_RC_SUCCESS || offset != bytes.size()) {
    return Error(ErrorKind::kProtocol, "not a TPMT_PUBLIC (" + std::to_string(bytes.size()) +
                                           " bytes, " + std::to_string(offset) + " used)");
  }
  return pub;
}

Result<std::vector<uint8_t>> ObjectName(const TPMT_PUBLIC& pub) {
  if (pub.nameAlg != TPM2_ALG_SHA256) {
    return Error(ErrorKind::kUnsupported, "object name: nameAlg is not SHA-256");
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> marshalled, MarshalPublicArea(pub));
  std::vector<uint8_t> name = {0x00, 0x0b};
  name.resize(2 + 32);
  unsigned int len = 0;
  if (EVP_Digest(marshalled.data(), marshalled.size(), name.data() + 2, &len, EVP_sha256(),
                 nullptr) != 1 ||
      len != 32) {
    return OpenSslError("hashing the public area");
  }
  return name;
}

}  // namespace vmm::vtpm
