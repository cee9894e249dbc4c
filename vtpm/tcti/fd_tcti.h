// A TSS2 TCTI over the vTPM's data channel: a connected stream fd carrying raw TPM 2.0
// commands and responses (swtpm's data socket, no framing beyond the TPM header).
//
//   ASSIGN_OR_RETURN(TctiContext tcti, TctiOverFd(std::move(data_fd)));
//   Esys_Initialize(&esys, tcti.get(), nullptr);   // or use OpenEsys (esys_context.h)
//
// Ownership: the TctiContext owns the fd and the TSS2_TCTI_CONTEXT memory; its destructor
// finalizes the TCTI (closing the fd) and frees it. Whatever borrows tcti.get() (an ESYS
// context) must be finalized first.
//
// Behaviour (TCG TSS 2.0 TCTI spec, TSS2_TCTI_CONTEXT_COMMON_V2):
// - transmit: one whole command (10..kMaxTpmCommandSize bytes, header size == length),
//   then one receive must follow (TSS2_TCTI_RC_BAD_SEQUENCE otherwise).
// - receive: response == NULL asks for the response size (reads the header only). A buffer
//   smaller than the response gives TSS2_TCTI_RC_INSUFFICIENT_BUFFER with *size set.
//   A finite timeout that expires gives TSS2_TCTI_RC_TRY_AGAIN and keeps what was read.
//   TSS2_TCTI_TIMEOUT_BLOCK waits at most TctiOptions::max_block (a dead vTPM must not
//   hang the host forever) and then fails with TSS2_TCTI_RC_IO_ERROR.
// - A response with a bad header (tag, size < 10 or > kMaxTpmCommandSize), a peer that
//   closes mid-response, or an I/O error fails the call and breaks the context: the
//   stream is out of step, so every later call returns TSS2_TCTI_RC_IO_ERROR.
// - cancel, setLocality, makeSticky: TSS2_TCTI_RC_NOT_IMPLEMENTED (cancel and locality
//   belong to swtpm's control channel, which this TCTI does not speak).
// - getPollHandles: the fd, POLLIN.
#pragma once

#include <tss2/tss2_tcti.h>

#include <chrono>
#include <memory>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm::vtpm {

struct TctiOptions {
  // Upper bound of a TSS2_TCTI_TIMEOUT_BLOCK receive and of every transmit. libtpms
  // creates an RSA 2048 primary in well under a few seconds on this class of host.
  std::chrono::milliseconds max_block{std::chrono::seconds(60)};
};

struct FdTctiState;  // fd_tcti.cc

class TctiContext {
 public:
  TctiContext(TctiContext&&) noexcept;
  TctiContext& operator=(TctiContext&&) noexcept;
  ~TctiContext();

  TSS2_TCTI_CONTEXT* get() const;

 private:
  friend Result<TctiContext> TctiOverFd(UniqueFd fd, const TctiOptions& options);
  explicit TctiContext(std::unique_ptr<FdTctiState> state);
  std::unique_ptr<FdTctiState> state_;
};

// Fails only for an invalid fd.
Result<TctiContext> TctiOverFd(UniqueFd fd, const TctiOptions& options);
inline Result<TctiContext> TctiOverFd(UniqueFd fd) { return TctiOverFd(std::move(fd), {}); }

}  // namespace vmm::vtpm
