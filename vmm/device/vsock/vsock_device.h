// VsockDevice: virtio-vsock (virtio 1.2 §5.10) as a vhost-user device whose host side is
// unix sockets, in the style of Firecracker's and vhost-device-vsock's hybrid vsock:
//   - the guest connects to CID 2 port P: the device connects to the unix socket
//     "<connect_prefix>P" (the host's listener for that port), and the bytes flow;
//   - a host client connects to the listener the device holds and sends "CONNECT P\n":
//     the device asks the guest's port P and, once the guest accepts, answers
//     "OK <host port>\n", then the bytes flow.
//
//   VsockDevice dev({.engine = {.guest_cid = 3}, .connect_prefix = "/uds/v.sock_"},
//                   std::move(listener));
//   vhost_user::Backend backend(dev, sock);       // three queues: rx 0, tx 1, event 2
//
// The protocol lives in VsockEngine (engine.h); this class moves bytes between it, the
// rings and the sockets. Host clients are untrusted too: the CONNECT line is bounded and
// strict, at most `max_pending_clients` may be half-way through it, and a client that
// breaks the rules is closed. Sockets are non-blocking; a socket is read only while the
// guest has credit for its bytes, and watched only while there is something to do.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "base/event_loop.h"
#include "base/unique_fd.h"
#include "vmm/device/vhost_user_backend.h"
#include "vmm/device/vsock/engine.h"

namespace vmm::vsock {

struct VsockDeviceOptions {
  EngineOptions engine;
  std::string connect_prefix;  // guest port P connects to connect_prefix + decimal P
  size_t max_pending_clients = 16;
  std::function<void(const std::string&)> log = {};  // unset: stderr
};

// The CONNECT line of a host client: "CONNECT <port>\n", the port decimal without leading
// zeros or sign, at most 32 bytes. Error otherwise.
Result<uint32_t> ParseConnectLine(std::string_view line);

class VsockDevice final : public vhost_user::VirtioDevice {
 public:
  // `listener`: a listening unix stream socket (may be invalid: no host-initiated
  // connections).
  VsockDevice(VsockDeviceOptions options, UniqueFd listener);
  ~VsockDevice() override;

  const char* name() const override { return "vsock"; }
  uint64_t features() const override;
  uint32_t num_queues() const override { return kNumQueues; }
  std::span<const uint8_t> config() const override { return config_; }
  void SetDriverFeatures(uint64_t) override {}
  virtio::QueueLimits queue_limits() const override;
  Result<virtio::QueueRun> ProcessQueue(uint32_t index, virtio::SplitQueue& queue) override;
  Result<void> Attach(EventLoop& loop) override;
  uint64_t PendingQueues() const override;

  VsockEngine& engine() { return engine_; }
  size_t host_sockets() const { return conns_.size(); }

 private:
  struct HostConn {
    UniqueFd fd;
    uint32_t events = 0;  // what the loop watches; 0: not in the loop
    bool eof = false;
  };
  struct Pending {
    UniqueFd fd;
    std::string line;
  };

  Result<virtio::QueueRun> FillRx(virtio::SplitQueue& queue);
  Result<virtio::QueueRun> DrainTx(virtio::SplitQueue& queue);
  Result<uint32_t> HandleTx(const virtio::DescriptorChain& chain);
  void OnListener();
  void OnPending(int fd);
  void OnHost(ConnKey key, uint32_t events);
  // Carries out the engine's host actions, writes guest bytes out, sets each socket's
  // interest. Called after anything changed the engine.
  void Pump();
  void Connect(ConnKey key);
  void Flush(ConnKey key, HostConn& c);
  void Watch(ConnKey key, HostConn& c);
  void Close(ConnKey key);
  void Log(const std::string& line);

  VsockDeviceOptions options_;
  VsockEngine engine_;
  std::array<uint8_t, kConfigSize> config_{};
  UniqueFd listener_;
  EventLoop* loop_ = nullptr;
  std::map<ConnKey, HostConn> conns_;
  std::map<int, Pending> pending_;
  uint64_t logged_ = 0;
};

}  // namespace vmm::vsock
