#include "vmm/device/vsock/engine.h"

#include <algorithm>
#include <string>

namespace vmm::vsock {

VsockEngine::VsockEngine(const EngineOptions& options) : options_(options) {}

Error VsockEngine::Refuse(const Header& h, const std::string& why) {
  return Error(ErrorKind::kGuest, "vsock packet " + Describe(h) + ": " + why);
}

void VsockEngine::QueueRst(ConnKey key) {
  if (rsts_.size() >= options_.max_queued_rsts) {
    ++dropped_rsts_;  // the guest is flooding unknown ports faster than it reads its rx
    return;
  }
  rsts_.push_back(key);
}

void VsockEngine::Reset(ConnKey key) {
  if (conns_.erase(key) == 0) return;
  QueueRst(key);
  actions_.push_back({HostAction::Kind::kClose, key});
}

void VsockEngine::HostReset(ConnKey key) {
  if (conns_.erase(key) == 0) return;
  QueueRst(key);
}

bool VsockEngine::HasWork(const Conn& c) const {
  const bool data = c.state == State::kEstablished && c.to_guest_size() > 0 && !c.guest_shut_rcv;
  return c.send_request || c.send_response || data || c.send_credit_update || c.send_shutdown;
}

void VsockEngine::Enqueue(ConnKey key, Conn& c) {
  if (c.queued || !HasWork(c)) return;
  c.queued = true;
  ready_.push_back(key);
}

bool VsockEngine::Established(ConnKey key) const {
  auto it = conns_.find(key);
  return it != conns_.end() && it->second.state == State::kEstablished;
}

std::vector<ConnKey> VsockEngine::Keys() const {
  std::vector<ConnKey> keys;
  keys.reserve(conns_.size());
  for (const auto& [k, c] : conns_) keys.push_back(k);
  return keys;
}

// Once the guest has shut down both ways and the host consumed all it sent, the connection
// is over; §5.10.6.4: the receiver of the final SHUTDOWN answers it with RST.
void VsockEngine::MaybeFinish(ConnKey key, Conn& c) {
  if (c.guest_shut_send && c.to_host_size() == 0 && !c.host_write_shut) {
    c.host_write_shut = true;
    actions_.push_back({HostAction::Kind::kShutdownWrite, key});
  }
  if (c.guest_shut_send && c.guest_shut_rcv && c.to_host_size() == 0) Reset(key);
}

Result<void> VsockEngine::FromGuest(const Header& h, std::span<const uint8_t> payload) {
  const ConnKey key{h.src_port, h.dst_port};
  if (auto ok = CheckGuestHeader(h, payload.size(), {options_.guest_cid, options_.max_payload});
      !ok) {
    // A well-addressed packet of a known connection that breaks the rules ends it.
    if (h.src_cid == options_.guest_cid && h.dst_cid == kHostCid) Reset(key);
    return ok.error();
  }
  const Op op = static_cast<Op>(h.op);
  auto it = conns_.find(key);
  if (it == conns_.end()) {
    switch (op) {
      case Op::kRst:
        return Ok();  // nothing to reset
      case Op::kRequest:
        if (h.dst_port >= kFirstLocalPort) {
          QueueRst(key);
          return Refuse(h, "ports from " + std::to_string(kFirstLocalPort) +
                               " up are the host's own, not for guest connections");
        }
        if (conns_.size() >= options_.max_connections) {
          QueueRst(key);
          return Refuse(
              h, "connection limit of " + std::to_string(options_.max_connections) + " reached");
        }
        break;
      default:
        // §5.10.6.3: a packet for no connection is answered with RST.
        QueueRst(key);
        return Ok();
    }
    Conn c;
    c.state = State::kConnectingHost;
    c.peer_buf_alloc = h.buf_alloc;
    c.peer_fwd_cnt = h.fwd_cnt;
    conns_.emplace(key, std::move(c));
    actions_.push_back({HostAction::Kind::kConnect, key});
    return Ok();
  }
  Conn& c = it->second;
  c.peer_buf_alloc = h.buf_alloc;
  c.peer_fwd_cnt = h.fwd_cnt;
  switch (op) {
    case Op::kRequest:
      Reset(key);
      return Refuse(h, "REQUEST for a connection that exists");
    case Op::kResponse:
      if (c.state != State::kRequested) {
        Reset(key);
        return Refuse(h, "RESPONSE without a REQUEST of ours");
      }
      c.state = State::kEstablished;
      actions_.push_back({HostAction::Kind::kEstablished, key});
      Enqueue(key, c);  // host bytes that arrived before the handshake ended
      return Ok();
    case Op::kRst:
      conns_.erase(it);
      actions_.push_back({HostAction::Kind::kClose, key});
      return Ok();
    case Op::kShutdown:
      if (c.state != State::kEstablished) {
        Reset(key);
        return Refuse(h, "SHUTDOWN before the connection was established");
      }
      c.guest_shut_rcv = c.guest_shut_rcv || (h.flags & kShutdownRcv);
      c.guest_shut_send = c.guest_shut_send || (h.flags & kShutdownSend);
      MaybeFinish(key, c);
      return Ok();
    case Op::kRw: {
      if (c.state != State::kEstablished) {
        Reset(key);
        return Refuse(h, "RW before the connection was established");
      }
      if (c.guest_shut_send) {
        Reset(key);
        return Refuse(h, "RW after the guest's SHUTDOWN(SEND)");
      }
      const uint64_t free = options_.buf_alloc - c.to_host_size();
      if (payload.size() > free) {
        Reset(key);
        return Refuse(h, "RW of " + std::to_string(payload.size()) + " bytes beyond the " +
                             std::to_string(free) + " bytes of credit it was given");
      }
      if (c.to_host_off > 0 && c.to_host_off >= c.to_host.size() / 2) {
        c.to_host.erase(c.to_host.begin(),
                        c.to_host.begin() + static_cast<std::ptrdiff_t>(c.to_host_off));
        c.to_host_off = 0;
      }
      c.to_host.insert(c.to_host.end(), payload.begin(), payload.end());
      c.rx_cnt += static_cast<uint32_t>(payload.size());
      Enqueue(key, c);  // the guest's credit may have grown
      return Ok();
    }
    case Op::kCreditUpdate:
      Enqueue(key, c);
      return Ok();
    case Op::kCreditRequest:
      c.send_credit_update = true;
      Enqueue(key, c);
      return Ok();
  }
  return Ok();
}

Header VsockEngine::HeaderFor(ConnKey key, Op op, Conn* c) const {
  Header h;
  h.src_cid = kHostCid;
  h.dst_cid = options_.guest_cid;
  h.src_port = key.host_port;
  h.dst_port = key.guest_port;
  h.type = kTypeStream;
  h.op = static_cast<uint16_t>(op);
  if (c != nullptr) {
    h.buf_alloc = options_.buf_alloc;
    h.fwd_cnt = c->fwd_cnt;
    c->advertised_fwd_cnt = c->fwd_cnt;  // every packet carries the credit (§5.10.6.3)
    c->send_credit_update = false;
  }
  return h;
}

std::optional<OutPacket> VsockEngine::PopToGuest(uint32_t max_payload) {
  if (!rsts_.empty()) {
    ConnKey key = rsts_.front();
    rsts_.pop_front();
    return OutPacket{HeaderFor(key, Op::kRst, nullptr), {}};
  }
  while (!ready_.empty()) {
    const ConnKey key = ready_.front();
    ready_.pop_front();
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;  // reset while queued
    Conn& c = it->second;
    c.queued = false;
    if (!HasWork(c)) continue;
    OutPacket p;
    if (c.send_request) {
      c.send_request = false;
      p.header = HeaderFor(key, Op::kRequest, &c);
    } else if (c.send_response) {
      c.send_response = false;
      p.header = HeaderFor(key, Op::kResponse, &c);
    } else if (c.state == State::kEstablished && c.to_guest_size() > 0 && !c.guest_shut_rcv &&
               max_payload > 0) {
      const size_t n = std::min<size_t>(c.to_guest_size(), max_payload);
      auto from = c.to_guest.begin() + static_cast<std::ptrdiff_t>(c.to_guest_off);
      p.payload.assign(from, from + static_cast<std::ptrdiff_t>(n));
      c.to_guest_off += n;
      if (c.to_guest_off == c.to_guest.size()) {
        c.to_guest.clear();
        c.to_guest_off = 0;
      }
      p.header = HeaderFor(key, Op::kRw, &c);
      p.header.len = static_cast<uint32_t>(n);
    } else if (c.send_credit_update) {
      p.header = HeaderFor(key, Op::kCreditUpdate, &c);
    } else if (c.send_shutdown && c.to_guest_size() == 0) {
      c.send_shutdown = false;
      p.header = HeaderFor(key, Op::kShutdown, &c);
      p.header.flags = kShutdownRcv | kShutdownSend;
    } else {
      // Only data is left and the caller has no room for any: keep it for the next call.
      Enqueue(key, c);
      return std::nullopt;
    }
    Enqueue(key, c);  // more to send: behind the other connections
    return p;
  }
  return std::nullopt;
}

Result<ConnKey> VsockEngine::HostConnect(uint32_t guest_port) {
  if (conns_.size() >= options_.max_connections) {
    return Error(
        ErrorKind::kUnsupported,
        "vsock: connection limit of " + std::to_string(options_.max_connections) + " reached");
  }
  // At most max_connections ports are taken, so a free one is found within that many steps.
  for (;;) {
    ConnKey key{guest_port, next_local_port_};
    next_local_port_ = next_local_port_ == 0xffffffffu ? kFirstLocalPort : next_local_port_ + 1;
    if (conns_.contains(key)) continue;
    Conn c;
    c.state = State::kRequested;
    c.send_request = true;
    auto [it, inserted] = conns_.emplace(key, std::move(c));
    (void)inserted;
    Enqueue(key, it->second);
    return key;
  }
}

void VsockEngine::HostConnectResult(ConnKey key, bool ok) {
  auto it = conns_.find(key);
  if (it == conns_.end() || it->second.state != State::kConnectingHost) return;
  if (!ok) {
    HostReset(key);  // refused: the guest's connect fails with ECONNRESET
    return;
  }
  it->second.state = State::kEstablished;
  it->second.send_response = true;
  Enqueue(key, it->second);
}

uint32_t VsockEngine::HostSendRoom(ConnKey key) const {
  auto it = conns_.find(key);
  if (it == conns_.end()) return 0;
  const Conn& c = it->second;
  if (c.host_eof || c.guest_shut_rcv || c.state == State::kConnectingHost) return 0;
  // The guest's free buffer space (§5.10.6.3): buf_alloc - (tx_cnt - fwd_cnt), in u32
  // arithmetic; a fwd_cnt ahead of what we sent, or a shrunken buf_alloc, gives none.
  const uint32_t in_flight = c.tx_cnt - c.peer_fwd_cnt;
  const uint32_t credit = in_flight > c.peer_buf_alloc ? 0 : c.peer_buf_alloc - in_flight;
  const size_t queued = c.to_guest_size();
  const uint32_t space = queued >= options_.max_to_guest_pending
                             ? 0
                             : options_.max_to_guest_pending - static_cast<uint32_t>(queued);
  return std::min(credit, space);
}

Result<void> VsockEngine::FromHost(ConnKey key, std::span<const uint8_t> bytes) {
  if (bytes.size() > HostSendRoom(key)) {
    return Error(ErrorKind::kInternal, "vsock: host bytes beyond the guest's credit");
  }
  if (bytes.empty()) return Ok();
  Conn& c = conns_.at(key);
  if (c.to_guest_off > 0 && c.to_guest_off >= c.to_guest.size() / 2) {
    c.to_guest.erase(c.to_guest.begin(),
                     c.to_guest.begin() + static_cast<std::ptrdiff_t>(c.to_guest_off));
    c.to_guest_off = 0;
  }
  c.to_guest.insert(c.to_guest.end(), bytes.begin(), bytes.end());
  c.tx_cnt += static_cast<uint32_t>(bytes.size());
  Enqueue(key, c);
  return Ok();
}

std::span<const uint8_t> VsockEngine::ToHost(ConnKey key) const {
  auto it = conns_.find(key);
  if (it == conns_.end()) return {};
  const Conn& c = it->second;
  return std::span<const uint8_t>(c.to_host).subspan(c.to_host_off);
}

void VsockEngine::ToHostConsumed(ConnKey key, size_t n) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  n = std::min(n, c.to_host_size());
  c.to_host_off += n;
  c.fwd_cnt += static_cast<uint32_t>(n);
  if (c.to_host_off == c.to_host.size()) {
    c.to_host.clear();
    c.to_host_off = 0;
  }
  // Tell the guest about freed space once a quarter of its credit came back, so a sender
  // that used it all is never left waiting (its packets carry no news of our reads).
  if (c.fwd_cnt - c.advertised_fwd_cnt >= options_.buf_alloc / 4) {
    c.send_credit_update = true;
    Enqueue(key, c);
  }
  MaybeFinish(key, c);
}

void VsockEngine::HostEof(ConnKey key) {
  auto it = conns_.find(key);
  if (it == conns_.end() || it->second.host_eof) return;
  Conn& c = it->second;
  c.host_eof = true;
  if (c.state != State::kEstablished) {
    Reset(key);  // the host client left before the handshake ended
    return;
  }
  c.send_shutdown = true;
  Enqueue(key, c);
}

std::optional<HostAction> VsockEngine::PopHostAction() {
  if (actions_.empty()) return std::nullopt;
  HostAction a = actions_.front();
  actions_.pop_front();
  return a;
}

}  // namespace vmm::vsock
