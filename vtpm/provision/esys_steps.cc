#include "vtpm/provision/esys_steps.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "vtpm/tcti/esys_context.h"

namespace vmm::vtpm {

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

Result<uint32_t> GetProperty(ESYS_CONTEXT* esys, TPM2_PT property) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  TSS2_RC rc = Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_TPM_PROPERTIES, property, 1, &more, &raw);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_GetCapability(" + Hex32(property) + ")");
  const TPML_TAGGED_TPM_PROPERTY& props = data->data.tpmProperties;
  if (props.count < 1 || props.tpmProperty[0].property != property) {
    return Error(ErrorKind::kProtocol, "TPM does not report property " + Hex32(property));
  }
  return props.tpmProperty[0].value;
}

Result<bool> IndexDefined(ESYS_CONTEXT* esys, uint32_t index) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  TSS2_RC rc = Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                  index, 1, &more, &raw);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_GetCapability(handles)");
  return data->data.handles.count >= 1 && data->data.handles.handle[0] == index;
}

Result<uint16_t> NvChunkSize(ESYS_CONTEXT* esys) {
  ASSIGN_OR_RETURN(uint32_t max, GetProperty(esys, TPM2_PT_NV_BUFFER_MAX));
  if (max == 0) return Error(ErrorKind::kProtocol, "TPM reports TPM_PT_NV_BUFFER_MAX = 0");
  return uint16_t(std::min<uint32_t>(max, sizeof(TPM2B_MAX_NV_BUFFER{}.buffer)));
}

Result<PrimaryKey> CreateEndorsementPrimary(ESYS_CONTEXT* esys, const TPM2B_PUBLIC& in_public,
                                            const std::string& what) {
  TPM2B_SENSITIVE_CREATE sensitive = {};
  TPM2B_DATA outside = {};
  TPML_PCR_SELECTION pcrs = {};
  ESYS_TR handle = ESYS_TR_NONE;
  TPM2B_PUBLIC* out_raw = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  TSS2_RC rc = Esys_CreatePrimary(esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &sensitive, &in_public, &outside, &pcrs, &handle,
                                  &out_raw, &creation_data, &creation_hash, &ticket);
  EsysPtr<TPM2B_PUBLIC> out(out_raw);
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_CreatePrimary(" + what + ")");
  return PrimaryKey(esys, handle, *out);
}

Result<void> UndefineIndex(ESYS_CONTEXT* esys, uint32_t index) {
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "loading " + Hex32(index));
  // On success ESYS releases the ESYS_TR itself.
  rc = Esys_NV_UndefineSpace(esys, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                             ESYS_TR_NONE);
  if (rc != TSS2_RC_SUCCESS) {
    Esys_TR_Close(esys, &nv);
    return TssError(rc, "TPM2_NV_UndefineSpace(" + Hex32(index) + ")");
  }
  return Ok();
}

Result<void> StoreCertificate(ESYS_CONTEXT* esys, uint32_t index, TPMA_NV attributes,
                              std::span<const uint8_t> der, uint16_t chunk) {
  TPM2B_AUTH no_auth = {};
  TPM2B_NV_PUBLIC pub = {};
  pub.nvPublic.nvIndex = index;
  pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
  pub.nvPublic.attributes = attributes;
  pub.nvPublic.dataSize = uint16_t(der.size());
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_NV_DefineSpace(esys, ESYS_TR_RH_PLATFORM, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, &no_auth, &pub, &nv);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_NV_DefineSpace(" + Hex32(index) + ")");
  struct Closer {
    ESYS_CONTEXT* esys;
    ESYS_TR* nv;
    ~Closer() { Esys_TR_Close(esys, nv); }  // forgets the handle; the index stays
  } closer{esys, &nv};

  for (size_t off = 0; off < der.size(); off += chunk) {
    TPM2B_MAX_NV_BUFFER data = {};
    data.size = uint16_t(std::min<size_t>(chunk, der.size() - off));
    std::memcpy(data.buffer, der.data() + off, data.size);
    rc = Esys_NV_Write(esys, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                       &data, uint16_t(off));
    if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_NV_Write(" + Hex32(index) + ")");
  }
  rc = Esys_NV_WriteLock(esys, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_NV_WriteLock(" + Hex32(index) + ")");
  return Ok();
}

Result<std::vector<uint8_t>> ReadCertificate(ESYS_CONTEXT* esys, uint32_t index,
                                             const std::string& description) {
  ASSIGN_OR_RETURN(bool exists, IndexDefined(esys, index));
  if (!exists) return Error(ErrorKind::kNotFound, "vTPM is not provisioned: no " + description);
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "loading " + description);
  struct Closer {
    ESYS_CONTEXT* esys;
    ESYS_TR* nv;
    ~Closer() { Esys_TR_Close(esys, nv); }
  } closer{esys, &nv};

  TPM2B_NV_PUBLIC* pub_raw = nullptr;
  TPM2B_NAME* name_raw = nullptr;
  rc = Esys_NV_ReadPublic(esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, &name_raw);
  EsysPtr<TPM2B_NV_PUBLIC> pub(pub_raw);
  EsysPtr<TPM2B_NAME> name(name_raw);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_NV_ReadPublic(" + Hex32(index) + ")");
  // Only the platform can create an index with PLATFORMCREATE: an index an owner defined
  // in the certificate range is not the platform's certificate.
  if ((pub->nvPublic.attributes & TPMA_NV_PLATFORMCREATE) == 0) {
    return Error(ErrorKind::kProtocol, description + " was not created by the platform");
  }
  uint16_t size = pub->nvPublic.dataSize;
  ASSIGN_OR_RETURN(uint16_t chunk, NvChunkSize(esys));

  std::vector<uint8_t> der;
  der.reserve(size);
  while (der.size() < size) {
    uint16_t n = uint16_t(std::min<size_t>(chunk, size - der.size()));
    TPM2B_MAX_NV_BUFFER* data_raw = nullptr;
    rc = Esys_NV_Read(esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                      uint16_t(der.size()), &data_raw);
    EsysPtr<TPM2B_MAX_NV_BUFFER> data(data_raw);
    if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_NV_Read(" + Hex32(index) + ")");
    if (data->size != n) {
      return Error(ErrorKind::kProtocol, "TPM2_NV_Read(" + Hex32(index) + ") returned " +
                                             std::to_string(data->size) + " bytes, not " +
                                             std::to_string(n));
    }
    der.insert(der.end(), data->buffer, data->buffer + data->size);
  }
  return der;
}

}  // namespace vmm::vtpm
