#include "attestation/broker_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "attestation/broker_io.h"
#include "base/unix_socket.h"

namespace vmm::attestation {
namespace {

void AppendLog(int log_fd, const std::string& line) {
  if (log_fd < 0 || line.empty()) return;
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = write(log_fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

Result<void> ServeBroker(int listener, KeyBroker& broker, int log_fd, const std::atomic<bool>& stop,
                         const ServeLimits& limits) {
  while (!stop.load()) {
    pollfd p{listener, POLLIN, 0};
    const int n = poll(&p, 1, 200);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("poll on the broker's socket");
    if (n == 0) continue;
    UniqueFd conn = AcceptConnection(listener, /*nonblocking=*/true);
    if (!conn.valid()) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED || errno == EMFILE ||
          errno == ENFILE) {
        continue;
      }
      return ErrnoError("accept on the broker's socket");
    }
    const Deadline deadline = std::chrono::steady_clock::now() + limits.connection_timeout;
    const std::string peer = DescribePeer(conn.get());
    auto frame = ReadFrame(conn.get(), limits.max_frame, deadline);
    if (!frame) {
      // Nothing a client could use is in the answer; the log says what went wrong.
      const std::string reason = "unreadable message: " + frame.error().message();
      AppendLog(log_fd,
                BrokerLogLine(KeyBroker::Clock::now(), peer, "", {}, "refused", reason, ""));
      (void)WriteFrame(conn.get(), SerializeRefused({reason}), deadline);
      continue;
    }
    BrokerAnswer answer =
        broker.Handle(std::span(reinterpret_cast<const uint8_t*>(frame->data()), frame->size()),
                      peer, KeyBroker::Clock::now());
    AppendLog(log_fd, answer.log_line);
    (void)WriteFrame(conn.get(), answer.body, deadline);
  }
  return Ok();
}

}  // namespace vmm::attestation
