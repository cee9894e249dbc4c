// An ESYS context over the vTPM data channel, owning its TCTI and the fd.
//
//   ASSIGN_OR_RETURN(EsysContext esys, OpenEsys(std::move(data_fd)));
//   TSS2_RC rc = Esys_GetRandom(esys.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 16, &r);
//   if (rc != TSS2_RC_SUCCESS) return TssError(rc, "TPM2_GetRandom");
//
// Ownership: Esys_Finalize runs before the TCTI is finalized (it closes the fd). The
// context is single-threaded, like ESYS itself.
#pragma once

#include <tss2/tss2_esys.h>

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vtpm/tcti/fd_tcti.h"

namespace vmm::vtpm {

class EsysContext {
 public:
  EsysContext(EsysContext&& other) noexcept;
  EsysContext& operator=(EsysContext&& other) noexcept;
  ~EsysContext();

  ESYS_CONTEXT* get() const { return esys_; }
  // The TCTI under it (borrowed), e.g. for Tss2_Tcti_GetPollHandles.
  TSS2_TCTI_CONTEXT* tcti() const { return tcti_.get(); }

 private:
  friend Result<EsysContext> OpenEsys(UniqueFd data_fd, const TctiOptions& options);
  EsysContext(TctiContext tcti, ESYS_CONTEXT* esys) : tcti_(std::move(tcti)), esys_(esys) {}
  void Reset();

  TctiContext tcti_;
  ESYS_CONTEXT* esys_ = nullptr;
};

// TctiOverFd + Esys_Initialize. Sends no command.
Result<EsysContext> OpenEsys(UniqueFd data_fd, const TctiOptions& options);
inline Result<EsysContext> OpenEsys(UniqueFd data_fd) { return OpenEsys(std::move(data_fd), {}); }

// An Error (ErrorKind::kProtocol) for a failed TSS or TPM call: "<what>: <decoded rc>
// (0x...)", e.g. "TPM2_NV_DefineSpace: tpm:error(2.0): NV Index or persistent object
// already defined (0x0000014c)".
Error TssError(TSS2_RC rc, const std::string& what);

}  // namespace vmm::vtpm
