// The back-end side of a vhost-user session: one connected front-end (our vCPU process,
// QEMU, Cloud Hypervisor), one virtio device, one thread, one poll loop.
//
//   Backend backend(device, sock);          // borrows both
//   RETURN_IF_ERROR(backend.Run());         // until the front-end hangs up
//
// The front-end is not trusted (ARCHITECTURE.md §1): every message is decoded strictly
// (message.h), a message that breaks the protocol ends the session with an Error naming it,
// guest RAM is mapped only from sealed memfds whose size covers the region, and every ring
// address must translate into that RAM. What the guest controls (ring contents) breaks at
// most its own ring: the ring stops, its error eventfd is signalled, the session goes on.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/formats/vhost_user/message.h"
#include "vmm/formats/virtio/guest_ram.h"
#include "vmm/formats/virtio/split_queue.h"

namespace vmm::vhost_user {

// What a virtio device core gives the session (blk and rng adapters: vmm/device/).
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual const char* name() const = 0;
  virtual uint64_t features() const = 0;  // must include VIRTIO_F_VERSION_1
  virtual uint32_t num_queues() const = 0;
  virtual std::span<const uint8_t> config() const = 0;
  virtual void SetDriverFeatures(uint64_t acked) = 0;
  virtual virtio::QueueLimits queue_limits() const = 0;
  virtual Result<virtio::QueueRun> ProcessQueue(uint32_t index, virtio::SplitQueue& queue) = 0;
  // A device with host-side I/O of its own (vsock's unix sockets) watches its fds on the
  // session's loop; Run calls this once before the first message. Its callbacks must not
  // fail the session for what a host peer does.
  virtual Result<void> Attach(EventLoop& loop) {
    (void)loop;
    return Ok();
  }
  // Bit i: ring i has work without a kick (host data for vsock's rx ring). The session
  // serves those rings after every wake-up of its loop.
  virtual uint64_t PendingQueues() const { return 0; }
};

struct BackendOptions {
  uint32_t max_queue_size = 1024;
  // Notes about the guest breaking a ring and the like; unset: stderr.
  std::function<void(const std::string&)> log = {};
};

class Backend {
 public:
  Backend(VirtioDevice& device, int sock, BackendOptions options = {});
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // Serves the session. Ok when the front-end hangs up between messages; an Error (kind
  // kProtocol for a misbehaving peer, kSystem for a host failure) otherwise.
  Result<void> Run();

  // One decoded request, replies included (Run calls it; tests and the fuzzer too).
  Result<void> Handle(Message& m);

  // As if ring `index`'s kick fd fired (tests and the fuzzer, which have no event loop).
  Result<void> ServeForTest(uint32_t index);

  // For tests: the ring's state.
  bool ring_started(uint32_t index) const;
  uint64_t acked_features() const { return acked_features_; }

 private:
  struct Mapping {
    uint8_t* base = nullptr;
    size_t length = 0;
    MemoryRegion region;
  };
  struct Ring {
    uint32_t num = 0;
    std::optional<VringAddress> addr;  // translated to guest-physical
    uint16_t base = 0;
    UniqueFd kick, call, err;
    bool enabled = false;
    bool started = false;  // a kick fd arrived (or NOFD): the ring runs
    bool broken = false;   // the guest broke it; stays stopped until GET_VRING_BASE
    std::optional<virtio::SplitQueue> queue;
  };

  Result<void> Reply(Request request, const Payload& payload);
  Result<void> SetMemTable(Message& m);
  Result<Ring*> RingAt(uint32_t index);
  Result<uint64_t> ToGuestPhysical(uint64_t user_addr, const char* what) const;
  void StartRing(uint32_t index);
  void StopRing(Ring& ring);
  void DropQueue(Ring& ring);
  void BreakRing(uint32_t index, const std::string& why);
  Result<void> Serve(uint32_t index);
  // Ring `index`'s kick fd `fd` is ready (`events` from the event loop): drain, serve.
  Result<void> OnKickReady(uint32_t index, int fd, uint32_t events);
  void UnmapAll();
  void Log(const std::string& line) const;

  VirtioDevice& device_;
  int sock_;
  BackendOptions options_;
  uint64_t acked_features_ = 0;
  uint64_t protocol_features_ = 0;
  std::vector<Mapping> maps_;
  virtio::GuestRam ram_;
  std::vector<Ring> rings_;
};

// Protocol features our back-ends offer: MQ, REPLY_ACK, and CONFIG when the device has a
// config space.
uint64_t OfferedProtocolFeatures(const VirtioDevice& device);

}  // namespace vmm::vhost_user
