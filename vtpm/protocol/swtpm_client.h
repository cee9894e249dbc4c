// A small blocking client of swtpm's socket protocol, over connected fds: our VM process
// (CRB front end), our manager and tests. Works against SwtpmServer and against swtpm.
//
//   SwtpmClient ctl(control_fd);
//   RETURN_IF_ERROR(ctl.Init());
//   ASSIGN_OR_RETURN(std::vector<uint8_t> rsp, Transmit(data_fd, command, 5s));
//
// Every call is bounded by its timeout (poll before each read and write; EINTR retried),
// so a server that stalls cannot hang the caller. Answers are checked as strictly as
// requests are on the server side: a TPM response outside 10..kMaxTpmCommandSize bytes, a
// state blob above swtpm::kMaxStateBlob, a short answer, are Errors (kProtocol). A control
// call the server answers with a result other than TPM_SUCCESS is an Error naming the
// command and the result; last_result() keeps the code. The fds are borrowed.
// Syscalls: poll, sendmsg (MSG_NOSIGNAL; write for non-sockets), read.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "vtpm/protocol/swtpm_protocol.h"

namespace vmm::vtpm {

// Sends one TPM command on a data channel and reads its response.
Result<std::vector<uint8_t>> Transmit(int data_fd, std::span<const uint8_t> command,
                                      std::chrono::milliseconds timeout);

class SwtpmClient {
 public:
  explicit SwtpmClient(int control_fd,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

  Result<void> Init(uint32_t flags = 0);
  Result<void> SetLocality(uint8_t locality);
  Result<void> Cancel();
  Result<uint32_t> GetCapability();  // swtpm::kCap* bits
  Result<bool> GetEstablished();
  Result<void> ResetEstablished(uint8_t locality);
  Result<void> Shutdown();
  Result<void> Stop();
  Result<uint32_t> GetConfig();  // swtpm::kConfigFlag*
  Result<void> StoreVolatile();
  Result<void> HashStart();
  Result<void> HashData(std::span<const uint8_t> data);  // at most swtpm::kMaxHashData
  Result<void> HashEnd();
  // Passes `fd` (borrowed; the server gets its own copy) as the data channel.
  Result<void> SetDataFd(int fd);
  Result<swtpm::BufferSizes> SetBufferSize(uint32_t wanted);  // 0 queries
  Result<std::vector<uint8_t>> GetStateBlob(swtpm::BlobType type);
  Result<void> SetStateBlob(swtpm::BlobType type, std::span<const uint8_t> blob,
                            uint32_t state_flags = swtpm::kStateFlagEncrypted);
  Result<std::string> GetInfo(uint64_t flags);

  // One request and its whole answer (the result code not yet judged).
  Result<std::vector<uint8_t>> Call(const swtpm::Request& request, std::span<const int> fds = {});
  uint32_t last_result() const { return last_result_; }

 private:
  Result<std::vector<uint8_t>> CallOk(const swtpm::Request& request, std::span<const int> fds = {});

  int fd_;
  std::chrono::milliseconds timeout_;
  uint32_t last_result_ = 0;
};

}  // namespace vmm::vtpm
