// TpmFrontend: the VM process's side of the vTPM (ARCHITECTURE.md §1, §6). The guest sees a TPM 2.0
// CRB interface (vmm/vm/tpm_crb/crb_device.h); each command it STARTs is copied out of the CRB
// buffer and sent, as raw TPM bytes, on a swtpm data channel to the vmm-vtpm process, which
// pins that channel to locality 0. The answer comes back on the same socket and is copied
// into the buffer, and START clears.
//
//   ASSIGN_OR_RETURN(auto tpm, TpmFrontend::Create(std::move(data_fd), buffer_page));
//   mmio.Insert(vtpm::kCrbBaseGpa, vtpm::kCrbWindowSize, tpm.get());
//   ... main loop: poll tpm->fd() for POLLIN, then tpm->OnReadable() ...
//
// A command never blocks a vCPU: the vCPU that writes START only sends the command (a few
// KiB into a socket that holds one command at a time) and returns to the guest, which polls
// START. The response is read by the VM's main loop, so other vCPUs, ring errors and a
// stop request are served while the vTPM works, and shutdown never waits for it.
//
// The vTPM process is a peer, not trusted: a response is bounded by the buffer (the header
// size is checked before it is read), a broken one or a closed socket makes the CRB report
// fatal (CTRL_STS.tpmSts) rather than touching anything else. The manager, which supervises
// the vTPM process, stops the VM if that process dies.
//
// Threads: the bus (vCPU threads) calls Read/Write; the main loop calls OnReadable.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/vm/devices/io_bus.h"
#include "vmm/vm/tpm_crb/crb_device.h"

namespace vmm {

class TpmFrontend : public devices::BusDevice, private vtpm::CrbBackend {
 public:
  // `data` is a connected stream socket to the vTPM's guest data channel (made non-blocking
  // here). `buffer` is the VM process's view of the CRB buffer page the guest sees at
  // `buffer_gpa`; it must outlive the front end.
  static Result<std::unique_ptr<TpmFrontend>> Create(UniqueFd data, uint64_t buffer_gpa,
                                                     std::span<uint8_t> buffer);
  ~TpmFrontend() override;

  // MMIO at vtpm::kCrbBaseGpa + offset.
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  int fd() const { return data_.get(); }
  // The data socket is readable (or hung up): takes what arrived; completes the command
  // once its whole response is in. Returns an error, once, when the channel broke (the CRB
  // is then fatal); later calls do nothing.
  Result<void> OnReadable();
  bool broken() const;

  const vtpm::CrbDevice& crb() const { return *crb_; }
  uint64_t commands_completed() const;

 private:
  explicit TpmFrontend(UniqueFd data) : data_(std::move(data)) {}
  void Submit(std::span<const uint8_t> command) override;
  void Cancel() override;
  void Break(std::unique_lock<std::mutex>& lock, std::string why);

  UniqueFd data_;
  std::unique_ptr<vtpm::CrbDevice> crb_;
  mutable std::mutex mu_;
  bool waiting_ = false;           // a command was sent, its response is not complete
  std::vector<uint8_t> response_;  // bytes of the response received so far
  bool broken_ = false;
  std::string broken_why_;
  bool broken_reported_ = false;
  uint64_t completed_ = 0;
};

}  // namespace vmm
