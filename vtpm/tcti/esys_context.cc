#include "vtpm/tcti/esys_context.h"

#include <tss2/tss2_rc.h>

#include <cstdio>
#include <utility>

namespace vmm::vtpm {

EsysContext::EsysContext(EsysContext&& other) noexcept
    : tcti_(std::move(other.tcti_)), esys_(std::exchange(other.esys_, nullptr)) {}

EsysContext& EsysContext::operator=(EsysContext&& other) noexcept {
  if (this != &other) {
    Reset();
    tcti_ = std::move(other.tcti_);
    esys_ = std::exchange(other.esys_, nullptr);
  }
  return *this;
}

EsysContext::~EsysContext() { Reset(); }

void EsysContext::Reset() {
  if (esys_ != nullptr) Esys_Finalize(&esys_);  // before tcti_ goes: ESYS borrows it
  esys_ = nullptr;
}

Result<EsysContext> OpenEsys(UniqueFd data_fd, const TctiOptions& options) {
  ASSIGN_OR_RETURN(TctiContext tcti, TctiOverFd(std::move(data_fd), options));
  ESYS_CONTEXT* esys = nullptr;
  TSS2_RC rc = Esys_Initialize(&esys, tcti.get(), nullptr);
  if (rc != TSS2_RC_SUCCESS) return TssError(rc, "Esys_Initialize");
  return EsysContext(std::move(tcti), esys);
}

Error TssError(TSS2_RC rc, const std::string& what) {
  char code[16];
  std::snprintf(code, sizeof code, "0x%08x", rc);
  return Error(ErrorKind::kProtocol, what + ": " + Tss2_RC_Decode(rc) + " (" + code + ")");
}

}  // namespace vmm::vtpm
