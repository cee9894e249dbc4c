#include "vtpm/protocol/swtpm_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "base/event_loop.h"
#include "base/unix_socket.h"
#include "vtpm/engine/tpm_engine.h"

namespace vmm::vtpm {
namespace {

using Clock = std::chrono::steady_clock;
using swtpm::Command;

Error ProtocolError(std::string m) { return Error(ErrorKind::kProtocol, std::move(m)); }

Result<void> WaitFor(int fd, uint32_t events, Clock::time_point deadline, const char* what) {
  while (true) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0)
      return Error(ErrorKind::kSystem, std::string("swtpm: timed out ") + what, ETIMEDOUT);
    ASSIGN_OR_RETURN(
        uint32_t ready,
        EventLoop::WaitFd(fd, events, static_cast<int>(std::min<long long>(left, INT_MAX))));
    if (ready != 0) return Ok();  // else timed out or interrupted: the deadline decides
  }
}

Result<void> SendAll(int fd, std::span<const uint8_t> bytes, std::span<const int> fds,
                     Clock::time_point deadline) {
  size_t sent = 0;
  bool is_socket = true;
  while (sent < bytes.size()) {
    RETURN_IF_ERROR(WaitFor(fd, EPOLLOUT, deadline, "sending"));
    ssize_t n;
    if (is_socket) {
      if (sent == 0 && fds.size() > 4) return Error(ErrorKind::kInternal, "swtpm: too many fds");
      // The fds ride on the first byte, once.
      n = SendWithFds(fd, bytes.subspan(sent), sent == 0 ? fds : std::span<const int>(),
                      MSG_DONTWAIT);
      if (n < 0 && errno == ENOTSOCK && fds.empty()) {
        is_socket = false;
        continue;
      }
    } else {
      n = ::write(fd, bytes.data() + sent, bytes.size() - sent);
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return ErrnoError("swtpm: send");
    }
    sent += static_cast<size_t>(n);
  }
  return Ok();
}

// Appends exactly `n` bytes to `out`.
Result<void> ReadExactly(int fd, size_t n, std::vector<uint8_t>& out, Clock::time_point deadline) {
  size_t got = 0;
  const size_t base = out.size();
  out.resize(base + n);
  while (got < n) {
    RETURN_IF_ERROR(WaitFor(fd, EPOLLIN, deadline, "waiting for the answer"));
    const ssize_t r = ::read(fd, out.data() + base + got, n - got);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return ErrnoError("swtpm: read");
    }
    if (r == 0) {
      return ProtocolError("swtpm: the peer closed the channel after " +
                           std::to_string(base + got) + " bytes of an answer");
    }
    got += static_cast<size_t>(r);
  }
  return Ok();
}

}  // namespace

Result<std::vector<uint8_t>> Transmit(int data_fd, std::span<const uint8_t> command,
                                      std::chrono::milliseconds timeout) {
  if (command.size() < kTpmHeaderSize || command.size() > kMaxTpmCommandSize ||
      LoadBe<uint32_t>(command, 2) != command.size()) {
    return InvalidArgument("swtpm: a TPM command must be 10.." +
                           std::to_string(kMaxTpmCommandSize) +
                           " bytes with a matching size field");
  }
  const Clock::time_point deadline = Clock::now() + timeout;
  RETURN_IF_ERROR(SendAll(data_fd, command, {}, deadline));
  std::vector<uint8_t> rsp;
  RETURN_IF_ERROR(ReadExactly(data_fd, kTpmHeaderSize, rsp, deadline));
  const uint32_t size = *LoadBe<uint32_t>(rsp, 2);
  if (size < kTpmHeaderSize || size > kMaxTpmCommandSize) {
    return ProtocolError("swtpm: a TPM response announces " + std::to_string(size) + " bytes");
  }
  RETURN_IF_ERROR(ReadExactly(data_fd, size - kTpmHeaderSize, rsp, deadline));
  return rsp;
}

SwtpmClient::SwtpmClient(int control_fd, std::chrono::milliseconds timeout)
    : fd_(control_fd), timeout_(timeout) {}

Result<std::vector<uint8_t>> SwtpmClient::Call(const swtpm::Request& request,
                                               std::span<const int> fds) {
  const Clock::time_point deadline = Clock::now() + timeout_;
  const std::vector<uint8_t> bytes = swtpm::EncodeRequest(request);
  RETURN_IF_ERROR(SendAll(fd_, bytes, fds, deadline));
  std::vector<uint8_t> answer;
  while (true) {
    swtpm::ResponseFrame f = swtpm::FrameResponse(request.command, answer);
    if (!f.error.empty()) return ProtocolError("swtpm: " + f.error);
    const size_t want = f.total ? *f.total : f.need;
    if (want < answer.size())
      return Error(ErrorKind::kInternal, "swtpm: response framing went backwards");
    if (want == answer.size()) {
      if (f.total) break;
      return Error(ErrorKind::kInternal, "swtpm: response framing made no progress");
    }
    RETURN_IF_ERROR(ReadExactly(fd_, want - answer.size(), answer, deadline));
  }
  last_result_ = *LoadBe<uint32_t>(answer, 0);
  return answer;
}

Result<std::vector<uint8_t>> SwtpmClient::CallOk(const swtpm::Request& request,
                                                 std::span<const int> fds) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> answer, Call(request, fds));
  if (last_result_ != swtpm::kResSuccess) {
    return ProtocolError("swtpm: " + swtpm::CommandName(request.command) +
                         " failed: " + swtpm::ResultName(last_result_));
  }
  return answer;
}

namespace {
swtpm::Request Req(Command c) {
  swtpm::Request r;
  r.command = c;
  return r;
}

// For the commands whose answer holds nothing past the result code that CallOk checked.
Result<void> Done(const Result<std::vector<uint8_t>>& answer) {
  if (!answer) return answer.error();
  return Ok();
}
}  // namespace

Result<void> SwtpmClient::Init(uint32_t flags) {
  swtpm::Request r = Req(Command::kInit);
  r.init_flags = flags;
  return Done(CallOk(r));
}

Result<void> SwtpmClient::SetLocality(uint8_t locality) {
  swtpm::Request r = Req(Command::kSetLocality);
  r.locality = locality;
  return Done(CallOk(r));
}

Result<void> SwtpmClient::Cancel() { return Done(CallOk(Req(Command::kCancelTpmCmd))); }

Result<uint32_t> SwtpmClient::GetCapability() {
  ASSIGN_OR_RETURN(std::vector<uint8_t> a, CallOk(Req(Command::kGetCapability)));
  return *LoadBe<uint32_t>(a, 4);
}

Result<bool> SwtpmClient::GetEstablished() {
  ASSIGN_OR_RETURN(std::vector<uint8_t> a, CallOk(Req(Command::kGetTpmEstablished)));
  return a[4] != 0;
}

Result<void> SwtpmClient::ResetEstablished(uint8_t locality) {
  swtpm::Request r = Req(Command::kResetTpmEstablished);
  r.locality = locality;
  return Done(CallOk(r));
}

Result<void> SwtpmClient::Shutdown() { return Done(CallOk(Req(Command::kShutdown))); }

Result<void> SwtpmClient::Stop() { return Done(CallOk(Req(Command::kStop))); }

Result<uint32_t> SwtpmClient::GetConfig() {
  ASSIGN_OR_RETURN(std::vector<uint8_t> a, CallOk(Req(Command::kGetConfig)));
  return *LoadBe<uint32_t>(a, 4);
}

Result<void> SwtpmClient::StoreVolatile() { return Done(CallOk(Req(Command::kStoreVolatile))); }

Result<void> SwtpmClient::HashStart() { return Done(CallOk(Req(Command::kHashStart))); }

Result<void> SwtpmClient::HashData(std::span<const uint8_t> data) {
  if (data.size() > swtpm::kMaxHashData)
    return InvalidArgument("swtpm: HASH_DATA takes at most 4096 bytes");
  swtpm::Request r = Req(Command::kHashData);
  r.data.assign(data.begin(), data.end());
  return Done(CallOk(r));
}

Result<void> SwtpmClient::HashEnd() { return Done(CallOk(Req(Command::kHashEnd))); }

Result<void> SwtpmClient::SetDataFd(int fd) {
  const int fds[1] = {fd};
  return Done(CallOk(Req(Command::kSetDataFd), fds));
}

Result<swtpm::BufferSizes> SwtpmClient::SetBufferSize(uint32_t wanted) {
  swtpm::Request r = Req(Command::kSetBufferSize);
  r.buffer_size = wanted;
  ASSIGN_OR_RETURN(std::vector<uint8_t> a, CallOk(r));
  return swtpm::BufferSizes{*LoadBe<uint32_t>(a, 4), *LoadBe<uint32_t>(a, 8),
                            *LoadBe<uint32_t>(a, 12)};
}

Result<std::vector<uint8_t>> SwtpmClient::GetStateBlob(swtpm::BlobType type) {
  swtpm::Request r = Req(Command::kGetStateBlob);
  r.blob_type = type;
  ASSIGN_OR_RETURN(std::vector<uint8_t> a, CallOk(r));
  const uint32_t total = *LoadBe<uint32_t>(a, 8);
  if (total != a.size() - 16) {
    return ProtocolError("swtpm: GET_STATEBLOB sent " + std::to_string(a.size() - 16) + " of " +
                         std::to_string(total) + " bytes in one answer");
  }
  return std::vector<uint8_t>(a.begin() + 16, a.end());
}

Result<void> SwtpmClient::SetStateBlob(swtpm::BlobType type, std::span<const uint8_t> blob,
                                       uint32_t state_flags) {
  if (blob.size() > swtpm::kMaxStateBlob) return InvalidArgument("swtpm: state blob too large");
  swtpm::Request r = Req(Command::kSetStateBlob);
  r.blob_type = type;
  r.state_flags = state_flags;
  r.data.assign(blob.begin(), blob.end());
  return Done(CallOk(r));
}

Result<std::string> SwtpmClient::GetInfo(uint64_t flags) {
  std::string text;
  swtpm::Request r = Req(Command::kGetInfo);
  r.info_flags = flags;
  while (true) {
    r.offset = static_cast<uint32_t>(text.size());
    ASSIGN_OR_RETURN(std::vector<uint8_t> a, CallOk(r));
    const uint32_t total = *LoadBe<uint32_t>(a, 4);
    if (a.size() == 12 || total > 64 * 1024)
      return ProtocolError("swtpm: GET_INFO made no progress");
    text.append(a.begin() + 12, a.end());
    if (text.size() + 1 >= total) break;  // the NUL may be all that is left
  }
  while (!text.empty() && text.back() == '\0') text.pop_back();
  return text;
}

}  // namespace vmm::vtpm
