// VsockEngine: the connections of one virtio-vsock device (virtio 1.2 §5.10.6) as a state
// machine with credit accounting, and nothing else: no sockets, no queues, no clock. The
// device process (vsock_device.h, uds_host.h) feeds it what the guest put on the tx queue
// and what the host's unix sockets delivered, and carries out what it asks for.
//
//   VsockEngine engine({.guest_cid = 3});
//   RETURN_IF_ERROR(engine.FromGuest(header, payload));        // a tx-queue packet
//   while (auto a = engine.PopHostAction()) { ... connect, close, shutdown ... }
//   if (auto p = engine.PopToGuest(room)) { ... write p->header, p->payload to rx ... }
//
// Everything from the guest is hostile: a packet that fails CheckGuestHeader, breaks the
// handshake, or sends beyond the credit we gave is refused with an Error and, if it names a
// connection, resets that connection (RST to the guest, kClose to the host). Bounds: at
// most `max_connections` connections, `buf_alloc` bytes buffered per connection each way
// (guest to host: the credit we advertise; host to guest: the guest's credit, capped), and
// a bounded queue of RSTs for packets to unknown connections.
#pragma once

#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "vmm/formats/vsock/packet.h"

namespace vmm::vsock {

// A connection: the guest's port and the host's (the port the guest connected to, or the
// one we picked for a host-initiated connection).
struct ConnKey {
  uint32_t guest_port = 0;
  uint32_t host_port = 0;
  auto operator<=>(const ConnKey&) const = default;
};

// Host ports from here up are ours to give to host-initiated connections; a guest may not
// connect to them (the same split as Firecracker's).
inline constexpr uint32_t kFirstLocalPort = 1u << 30;

struct EngineOptions {
  uint64_t guest_cid = 0;
  uint32_t max_connections = 64;
  uint32_t buf_alloc = 256 * 1024;             // per connection, guest to host
  uint32_t max_to_guest_pending = 256 * 1024;  // per connection, host to guest
  uint32_t max_payload = 64 * 1024;            // RW payload from the guest
  size_t max_queued_rsts = 256;
};

// What the host side must do.
struct HostAction {
  enum class Kind : uint8_t {
    kConnect,        // guest REQUEST: connect to the host's port; answer HostConnectResult
    kEstablished,    // a host-initiated connection was accepted by the guest
    kShutdownWrite,  // the guest sends no more and all its bytes were consumed
    kClose,          // the connection is gone: close the host side
  };
  Kind kind;
  ConnKey key;
  bool operator==(const HostAction&) const = default;
};

struct OutPacket {
  Header header;
  std::vector<uint8_t> payload;
};

class VsockEngine {
 public:
  explicit VsockEngine(const EngineOptions& options);

  // --- the guest side ---
  // One packet from the tx queue. Error: refused (see above); the engine stays consistent.
  Result<void> FromGuest(const Header& h, std::span<const uint8_t> payload);
  bool HasToGuest() const { return !rsts_.empty() || !ready_.empty(); }
  // The next packet for the rx queue, its payload at most `max_payload` bytes (the rest of
  // that data stays queued). nullopt when nothing is queued.
  std::optional<OutPacket> PopToGuest(uint32_t max_payload);

  // --- the host side ---
  // A host client asks for guest port `guest_port`: a REQUEST is queued. Error at the
  // connection limit.
  Result<ConnKey> HostConnect(uint32_t guest_port);
  // The answer to a kConnect action: RESPONSE, or RST and the connection is gone.
  void HostConnectResult(ConnKey key, bool ok);
  // Bytes FromHost takes now for `key`: the guest's free credit, capped by what is queued.
  uint32_t HostSendRoom(ConnKey key) const;
  // Host bytes for the guest; at most HostSendRoom (Error otherwise).
  Result<void> FromHost(ConnKey key, std::span<const uint8_t> bytes);
  // Guest bytes waiting for the host side, and how many of them it took.
  std::span<const uint8_t> ToHost(ConnKey key) const;
  void ToHostConsumed(ConnKey key, size_t n);
  // The host side sends no more (EOF): SHUTDOWN to the guest, which answers RST.
  void HostEof(ConnKey key);
  // The host side failed or closed: RST to the guest; the connection is gone.
  void HostReset(ConnKey key);
  std::optional<HostAction> PopHostAction();

  // --- inspection ---
  size_t connections() const { return conns_.size(); }
  bool Exists(ConnKey key) const { return conns_.contains(key); }
  bool Established(ConnKey key) const;
  std::vector<ConnKey> Keys() const;
  uint64_t dropped_rsts() const { return dropped_rsts_; }
  const EngineOptions& options() const { return options_; }

 private:
  enum class State : uint8_t { kConnectingHost, kRequested, kEstablished };
  struct Conn {
    State state = State::kEstablished;
    // guest to host
    std::vector<uint8_t> to_host;
    size_t to_host_off = 0;
    uint32_t rx_cnt = 0;   // bytes the guest sent
    uint32_t fwd_cnt = 0;  // of which the host consumed
    uint32_t advertised_fwd_cnt = 0;
    // host to guest
    std::vector<uint8_t> to_guest;
    size_t to_guest_off = 0;
    uint32_t tx_cnt = 0;
    uint32_t peer_buf_alloc = 0;
    uint32_t peer_fwd_cnt = 0;
    bool guest_shut_rcv = false;
    bool guest_shut_send = false;
    bool host_eof = false;
    bool host_write_shut = false;
    // control packets owed to the guest
    bool send_request = false;
    bool send_response = false;
    bool send_credit_update = false;
    bool send_shutdown = false;
    bool queued = false;  // in ready_
    size_t to_host_size() const { return to_host.size() - to_host_off; }
    size_t to_guest_size() const { return to_guest.size() - to_guest_off; }
  };

  Error Refuse(const Header& h, const std::string& why);
  void Reset(ConnKey key);  // RST to the guest and kClose to the host
  void QueueRst(ConnKey key);
  void Enqueue(ConnKey key, Conn& c);
  bool HasWork(const Conn& c) const;
  void MaybeFinish(ConnKey key, Conn& c);
  Header HeaderFor(ConnKey key, Op op, Conn* c) const;

  EngineOptions options_;
  std::map<ConnKey, Conn> conns_;
  std::deque<ConnKey> ready_;
  std::deque<ConnKey> rsts_;
  std::deque<HostAction> actions_;
  uint32_t next_local_port_ = kFirstLocalPort;
  uint64_t dropped_rsts_ = 0;
};

}  // namespace vmm::vsock
