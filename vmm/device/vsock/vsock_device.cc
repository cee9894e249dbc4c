#include "vmm/device/vsock/vsock_device.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/bytes.h"
#include "base/unix_socket.h"
#include "vmm/formats/virtio/features.h"

namespace vmm::vsock {
namespace {

constexpr size_t kMaxConnectLine = 32;
constexpr size_t kReadChunk = 64 * 1024;

}  // namespace

Result<uint32_t> ParseConnectLine(std::string_view line) {
  constexpr std::string_view kVerb = "CONNECT ";
  auto bad = [&] {
    return Error(ErrorKind::kProtocol, "vsock: a host client's first line is not 'CONNECT <port>'");
  };
  if (line.size() > kMaxConnectLine || !line.starts_with(kVerb) || !line.ends_with('\n')) {
    return bad();
  }
  std::string_view digits = line.substr(kVerb.size(), line.size() - kVerb.size() - 1);
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) return bad();
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size()) return bad();
  return port;
}

VsockDevice::VsockDevice(VsockDeviceOptions options, UniqueFd listener)
    : options_(std::move(options)), engine_(options_.engine), listener_(std::move(listener)) {
  StoreLe<uint64_t>(config_, 0, options_.engine.guest_cid);
}

VsockDevice::~VsockDevice() {
  if (loop_ == nullptr) return;
  for (auto& [key, c] : conns_) {
    if (c.events) loop_->Remove(c.fd.get());
  }
  for (auto& [fd, p] : pending_) loop_->Remove(fd);
  if (listener_.valid()) loop_->Remove(listener_.get());
}

void VsockDevice::Log(const std::string& line) {
  // A guest or client that breaks rules in a loop must not flood the log.
  ++logged_;
  if (logged_ > 100 && logged_ % 1000 != 0) return;
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "vsock: %s\n", line.c_str());
  }
}

uint64_t VsockDevice::features() const {
  return virtio::kVirtioFVersion1 | virtio::kVirtioRingFEventIdx | virtio::kVirtioRingFIndirectDesc;
}

virtio::QueueLimits VsockDevice::queue_limits() const {
  return {.max_chain_bytes = kHeaderSize + options_.engine.max_payload + 4096};
}

uint64_t VsockDevice::PendingQueues() const {
  return engine_.HasToGuest() ? (uint64_t{1} << kRxQueue) : 0;
}

Result<virtio::QueueRun> VsockDevice::ProcessQueue(uint32_t index, virtio::SplitQueue& queue) {
  switch (index) {
    case kRxQueue:
      return FillRx(queue);
    case kTxQueue: {
      auto run = DrainTx(queue);
      Pump();
      return run;
    }
    default:
      // The event queue carries only TRANSPORT_RESET (§5.10.6.6), which a back-end that
      // keeps no state across a migration never sends: its buffers stay with us.
      return virtio::QueueRun{};
  }
}

Result<virtio::QueueRun> VsockDevice::FillRx(virtio::SplitQueue& queue) {
  virtio::QueueRun run;
  while (engine_.HasToGuest() && run.chains < queue.size()) {
    ASSIGN_OR_RETURN(std::optional<virtio::DescriptorChain> chain, queue.PopAvail());
    if (!chain) return run;
    uint32_t written = 0;
    if (chain->writable_len >= kHeaderSize) {
      const uint64_t room = std::min<uint64_t>(chain->writable_len - kHeaderSize, kReadChunk);
      if (auto p = engine_.PopToGuest(static_cast<uint32_t>(room))) {
        auto header = EncodeHeader(p->header);
        std::vector<uint8_t> bytes(header.begin(), header.end());
        bytes.insert(bytes.end(), p->payload.begin(), p->payload.end());
        size_t off = 0;
        for (const virtio::GuestBuffer& b : chain->writable) {
          const size_t n = std::min(b.bytes.size(), bytes.size() - off);
          std::memcpy(b.bytes.data(), bytes.data() + off, n);
          off += n;
          if (off == bytes.size()) break;
        }
        written = static_cast<uint32_t>(bytes.size());
      }
    } else {
      Log("rx buffer of " + std::to_string(chain->writable_len) +
          " writable bytes: too small for a packet header, returned empty");
    }
    ASSIGN_OR_RETURN(bool notify, queue.PushUsed(chain->head, written));
    run.notify = run.notify || notify;
    ++run.chains;
  }
  // Freed guest credit may let sockets be read again.
  Pump();
  return run;
}

Result<uint32_t> VsockDevice::HandleTx(const virtio::DescriptorChain& chain) {
  // The guest can still write these buffers: copy out once, then judge the copy.
  std::vector<uint8_t> bytes;
  bytes.reserve(chain.readable_len);
  for (const virtio::GuestBuffer& b : chain.readable) {
    bytes.insert(bytes.end(), b.bytes.begin(), b.bytes.end());
  }
  auto header = ParseHeader(bytes);
  if (!header) {
    Log(header.error().message());
    return 0;
  }
  auto r = engine_.FromGuest(*header, std::span<const uint8_t>(bytes).subspan(kHeaderSize));
  if (!r) Log(r.error().message());
  return 0;
}

Result<virtio::QueueRun> VsockDevice::DrainTx(virtio::SplitQueue& queue) {
  return virtio::ServeQueue(queue, queue.size(),
                            [this](const virtio::DescriptorChain& c) { return HandleTx(c); });
}

Result<void> VsockDevice::Attach(EventLoop& loop) {
  loop_ = &loop;
  if (!listener_.valid()) return Ok();
  return loop.Add(listener_.get(), EPOLLIN, [this](uint32_t) { OnListener(); });
}

void VsockDevice::OnListener() {
  UniqueFd fd = AcceptConnection(listener_.get(), /*nonblocking=*/true);
  if (!fd.valid()) return;  // EAGAIN, or a client that left already
  if (pending_.size() >= options_.max_pending_clients ||
      engine_.connections() >= engine_.options().max_connections) {
    Log("host client refused: too many connections");
    return;  // closed
  }
  const int raw = fd.get();
  if (!loop_->Add(raw, EPOLLIN, [this, raw](uint32_t) { OnPending(raw); })) return;
  pending_.emplace(raw, Pending{std::move(fd), {}});
}

void VsockDevice::OnPending(int fd) {
  auto it = pending_.find(fd);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  // One byte at a time: nothing after the line is taken from the socket, so the client's
  // first bytes of payload stay there until the guest has credit for them.
  char ch = 0;
  for (;;) {
    ssize_t n = recv(fd, &ch, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) break;  // EOF or error: drop the client
    p.line.push_back(ch);
    if (ch != '\n' && p.line.size() < kMaxConnectLine) continue;
    auto port = ParseConnectLine(p.line);
    if (!port) {
      Log(port.error().message());
      break;
    }
    auto key = engine_.HostConnect(*port);
    if (!key) {
      Log(key.error().message());
      break;
    }
    loop_->Remove(fd);
    conns_.emplace(*key, HostConn{std::move(p.fd), 0, false});
    pending_.erase(it);
    Pump();
    return;
  }
  loop_->Remove(fd);
  pending_.erase(it);
}

void VsockDevice::OnHost(ConnKey key, uint32_t events) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  HostConn& c = it->second;
  if ((events & EPOLLOUT) && !engine_.ToHost(key).empty()) Flush(key, c);
  if (!conns_.contains(key)) return Pump();
  if ((c.events & EPOLLIN) && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    std::vector<uint8_t> buf(std::min<size_t>(engine_.HostSendRoom(key), kReadChunk));
    if (!buf.empty()) {
      ssize_t n = recv(c.fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n > 0) {
        (void)engine_.FromHost(key, std::span<const uint8_t>(buf).first(static_cast<size_t>(n)));
      } else if (n == 0) {
        c.eof = true;
        engine_.HostEof(key);
      } else if (errno != EAGAIN && errno != EINTR) {
        engine_.HostReset(key);
        Close(key);
      }
    }
  }
  Pump();
}

void VsockDevice::Connect(ConnKey key) {
  const std::string path = options_.connect_prefix + std::to_string(key.host_port);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  bool ok = path.size() < sizeof(addr.sun_path);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (ok && fd.valid()) {
    std::memcpy(addr.sun_path, path.data(), path.size());
    // A unix stream connect completes at once or fails (EAGAIN: the listener's backlog is
    // full, which counts as refused).
    ok = connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  if (!ok) {
    Log("guest port " + std::to_string(key.guest_port) + " -> host port " +
        std::to_string(key.host_port) + ": no listener at " + path + ": " + std::strerror(errno));
    engine_.HostConnectResult(key, false);
    return;
  }
  conns_.emplace(key, HostConn{std::move(fd), 0, false});
  engine_.HostConnectResult(key, true);
}

void VsockDevice::Flush(ConnKey key, HostConn& c) {
  for (;;) {
    std::span<const uint8_t> out = engine_.ToHost(key);
    if (out.empty()) return;
    ssize_t n = send(c.fd.get(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      engine_.ToHostConsumed(key, static_cast<size_t>(n));
      if (!conns_.contains(key)) return;  // the engine finished the connection
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    engine_.HostReset(key);  // the host side is gone: EPIPE, ECONNRESET
    Close(key);
    return;
  }
}

void VsockDevice::Watch(ConnKey key, HostConn& c) {
  uint32_t want = 0;
  if (!c.eof && engine_.HostSendRoom(key) > 0) want |= EPOLLIN;
  if (!engine_.ToHost(key).empty()) want |= EPOLLOUT;
  if (want == c.events) return;
  // Not watched at all when there is nothing to do: a hung-up socket would otherwise be
  // reported (EPOLLHUP) on every wait.
  if (want == 0) {
    loop_->Remove(c.fd.get());
  } else if (c.events == 0) {
    if (!loop_->Add(c.fd.get(), want, [this, key](uint32_t ev) { OnHost(key, ev); })) return;
  } else if (!loop_->Modify(c.fd.get(), want)) {
    return;
  }
  c.events = want;
}

void VsockDevice::Close(ConnKey key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  if (it->second.events && loop_ != nullptr) loop_->Remove(it->second.fd.get());
  conns_.erase(it);
}

void VsockDevice::Pump() {
  while (auto a = engine_.PopHostAction()) {
    auto it = conns_.find(a->key);
    switch (a->kind) {
      case HostAction::Kind::kConnect:
        Connect(a->key);
        break;
      case HostAction::Kind::kEstablished:
        if (it != conns_.end()) {
          const std::string ok = "OK " + std::to_string(a->key.host_port) + "\n";
          if (send(it->second.fd.get(), ok.data(), ok.size(), MSG_DONTWAIT | MSG_NOSIGNAL) !=
              static_cast<ssize_t>(ok.size())) {
            engine_.HostReset(a->key);
            Close(a->key);
          }
        }
        break;
      case HostAction::Kind::kShutdownWrite:
        if (it != conns_.end()) (void)shutdown(it->second.fd.get(), SHUT_WR);
        break;
      case HostAction::Kind::kClose:
        Close(a->key);
        break;
    }
  }
  if (loop_ == nullptr) return;
  std::vector<ConnKey> keys;
  for (const auto& [k, c] : conns_) keys.push_back(k);
  for (const ConnKey& k : keys) {
    auto it = conns_.find(k);
    if (it == conns_.end()) continue;
    if (!engine_.Exists(k)) {  // reset by the engine on its own (a guest's broken packet)
      Close(k);
      continue;
    }
    Flush(k, it->second);
    it = conns_.find(k);
    if (it != conns_.end()) Watch(k, it->second);
  }
}

}  // namespace vmm::vsock
