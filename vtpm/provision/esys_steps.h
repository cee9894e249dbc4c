// ESYS steps shared by EK and AK provisioning (ek_provision.h, ak_provision.h): properties,
// primary keys of the endorsement hierarchy, and certificates in platform NV indices.
//
//   ASSIGN_OR_RETURN(PrimaryKey ak, CreateEndorsementPrimary(esys, AkTemplate(), "AK"));
//   RETURN_IF_ERROR(StoreCertificate(esys, kAkCertNvIndex, der, chunk));
//
// All borrow `esys`. Every call uses password sessions with empty auth, as a freshly
// provisioned TPM's platform and endorsement hierarchies have it.
#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace vmm::vtpm {

struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

std::string Hex32(uint32_t v);  // "0x01c00002"

Result<uint32_t> GetProperty(ESYS_CONTEXT* esys, TPM2_PT property);
Result<bool> IndexDefined(ESYS_CONTEXT* esys, uint32_t index);
// The chunk size for NV reads and writes: what the TPM accepts, and what fits in the TSS type.
Result<uint16_t> NvChunkSize(ESYS_CONTEXT* esys);

// A loaded primary key; the destructor flushes it (the handle is the TPM's, a transient slot).
class PrimaryKey {
 public:
  PrimaryKey(ESYS_CONTEXT* esys, ESYS_TR handle, TPM2B_PUBLIC pub)
      : esys_(esys), handle_(handle), public_(pub) {}
  PrimaryKey(PrimaryKey&& o) noexcept
      : esys_(o.esys_), handle_(std::exchange(o.handle_, ESYS_TR_NONE)), public_(o.public_) {}
  PrimaryKey& operator=(PrimaryKey&&) = delete;
  ~PrimaryKey() {
    if (handle_ != ESYS_TR_NONE) Esys_FlushContext(esys_, handle_);
  }
  ESYS_TR handle() const { return handle_; }
  const TPMT_PUBLIC& public_area() const { return public_.publicArea; }

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR handle_;
  TPM2B_PUBLIC public_;
};

// TPM2_CreatePrimary in the endorsement hierarchy (the same key every time for the same EPS
// and template). `what` names the key in errors.
Result<PrimaryKey> CreateEndorsementPrimary(ESYS_CONTEXT* esys, const TPM2B_PUBLIC& in_public,
                                            const std::string& what);

// TPM2_NV_UndefineSpace with platform authority.
Result<void> UndefineIndex(ESYS_CONTEXT* esys, uint32_t index);

// Defines `index` under TPM_RH_PLATFORM with `attributes` and the certificate's size, writes
// it in chunks, then TPM2_NV_WriteLock.
Result<void> StoreCertificate(ESYS_CONTEXT* esys, uint32_t index, TPMA_NV attributes,
                              std::span<const uint8_t> der, uint16_t chunk);

// The bytes of a certificate index (TPM2_NV_ReadPublic, then TPM2_NV_Read with the index's
// own empty auth); `description` names it in errors. kNotFound if the index is not defined;
// an index without TPMA_NV_PLATFORMCREATE (an owner could define one there) is an Error.
Result<std::vector<uint8_t>> ReadCertificate(ESYS_CONTEXT* esys, uint32_t index,
                                             const std::string& description);

}  // namespace vmm::vtpm
