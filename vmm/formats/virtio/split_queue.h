// SplitQueue: the device side of a virtio 1.x split virtqueue (virtio 1.2 §2.7), walking
// descriptor chains that a hostile driver wrote into guest RAM.
//
//   ASSIGN_OR_RETURN(SplitQueue q, SplitQueue::Create(ram, {.size = 256, .desc_gpa = ...}));
//   ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, q.PopAvail());  // error: set
//   if (chain) { ...; ASSIGN_OR_RETURN(bool irq, q.PushUsed(chain->head, written)); }
//
// A queue borrows its GuestRam, which must outlive it and every chain it returned; a new
// vhost-user memory table means new queues. Chains hold host spans into guest RAM: the guest
// can still write those bytes, so a device copies out whatever it interprets (blk.cc).
//
// Any malformed chain is a fault: PopAvail returns an Error naming it, fault() says which,
// and the queue stays broken (every later call fails the same way) so the caller sets
// DEVICE_NEEDS_RESET (§2.1.2) instead of guessing what the driver meant.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "vmm/formats/virtio/guest_ram.h"

namespace vmm::virtio {

inline constexpr uint32_t kMaxQueueSize = 32768;  // §2.7: a power of 2, at most 32768

// Descriptor flags (§2.7.5) and ring flags (§2.7.7, §2.7.10).
inline constexpr uint16_t kVirtqDescFNext = 1;
inline constexpr uint16_t kVirtqDescFWrite = 2;
inline constexpr uint16_t kVirtqDescFIndirect = 4;
inline constexpr uint16_t kVirtqAvailFNoInterrupt = 1;
inline constexpr uint16_t kVirtqUsedFNoNotify = 1;

enum class QueueFault : uint8_t {
  kNone,
  kAvailIndexJump,         // avail idx claims more than queue size outstanding (§2.7.6)
  kDescIndexOutOfRange,    // head/next >= queue size, or next past an indirect table
  kChainTooLong,           // more buffers than the queue size: a loop (§2.7.5.2, §2.7.5.3.1)
  kBufferOutsideRam,       // [addr, addr + len) not inside one RAM region
  kZeroLengthBuffer,       // len == 0
  kChainTooLarge,          // total length above QueueLimits::max_chain_bytes
  kReadableAfterWritable,  // a device-readable buffer after a writable one (§2.7.4.2)
  kIndirectNotNegotiated,  // INDIRECT without VIRTIO_F_INDIRECT_DESC (§2.7.5.3.1)
  kIndirectWithNext,       // INDIRECT and NEXT both set (§2.7.5.3.1)
  kNestedIndirect,         // INDIRECT inside an indirect table (§2.7.5.3.1)
  kBadIndirectTable,       // table len 0, not a multiple of 16, or > queue size entries
};
const char* QueueFaultName(QueueFault fault);

struct QueueConfig {
  uint32_t size = 0;  // queue size as the driver wrote it: checked by Create
  uint64_t desc_gpa = 0;
  uint64_t avail_gpa = 0;
  uint64_t used_gpa = 0;
  bool event_idx = false;  // VIRTIO_F_EVENT_IDX negotiated
  bool indirect = false;   // VIRTIO_F_INDIRECT_DESC negotiated
  // Where to resume (vhost-user SET_VRING_BASE); the used idx starts here too: buffers in
  // flight across a backend restart are not supported.
  uint16_t avail_base = 0;
};

struct QueueLimits {
  // Bound on the sum of buffer lengths of one chain. Devices size it from what they offer
  // (blk: seg_max * size_max + header); at most 2^32 - 1 (§2.7.5.2).
  uint64_t max_chain_bytes = (1u << 20) + 4096;
  // §2.7.4.2: drivers MUST put device-writable buffers after device-readable ones.
  bool readable_before_writable = true;
};

struct GuestBuffer {
  uint64_t gpa = 0;
  std::span<uint8_t> bytes;  // translated, non-empty, inside one RAM region
};

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<GuestBuffer> readable;  // in chain order
  std::vector<GuestBuffer> writable;
  uint64_t readable_len = 0;
  uint64_t writable_len = 0;
};

class SplitQueue {
 public:
  // Checks the size (power of two, 1..32768), ring alignment (§2.7: desc 16, avail 2, used
  // 4) and that each ring lies inside one RAM region; maps the rings once. With event_idx,
  // publishes avail_event so the driver's next addition is kicked.
  static Result<SplitQueue> Create(const GuestRam& ram, const QueueConfig& config,
                                   const QueueLimits& limits = {});

  // The next available chain, std::nullopt when the ring is empty, or an Error (the queue
  // is then broken). With event_idx, an empty answer has re-armed avail_event (§2.7.10).
  Result<std::optional<DescriptorChain>> PopAvail();

  // Writes {head, written_len} to the used ring and publishes the used idx with release
  // order. Returns whether the driver must be notified (§2.7.7.2): per used_event with
  // event_idx, else unless VIRTQ_AVAIL_F_NO_INTERRUPT. Fails for a head that is out of
  // range or when no chain is in flight (device bugs) and on a broken queue.
  Result<bool> PushUsed(uint16_t head, uint32_t written_len);

  QueueFault fault() const { return fault_; }
  bool broken() const { return fault_ != QueueFault::kNone; }
  uint16_t size() const { return size_; }
  uint16_t next_avail() const { return next_avail_; }  // for vhost-user GET_VRING_BASE
  uint16_t used_idx() const { return used_idx_; }
  uint32_t in_flight() const { return in_flight_; }

 private:
  SplitQueue() = default;
  Error Fail(QueueFault fault, uint64_t detail);
  Result<void> Walk(uint16_t head, DescriptorChain& chain);
  Result<void> AddBuffer(uint64_t addr, uint32_t len, bool writable, DescriptorChain& chain);

  const GuestRam* ram_ = nullptr;
  QueueLimits limits_;
  uint8_t* desc_ = nullptr;   // size * 16 bytes
  uint8_t* avail_ = nullptr;  // 4 + size * 2 (+ 2 used_event)
  uint8_t* used_ = nullptr;   // 4 + size * 8 (+ 2 avail_event)
  uint16_t size_ = 0;
  bool event_idx_ = false;
  bool indirect_ = false;
  uint16_t next_avail_ = 0;    // device's own index into the avail ring
  uint16_t avail_shadow_ = 0;  // last avail idx read from the guest
  uint16_t used_idx_ = 0;      // device's own used idx: never read back from the guest
  uint32_t in_flight_ = 0;     // popped, not yet pushed; <= size
  QueueFault fault_ = QueueFault::kNone;
  uint64_t fault_detail_ = 0;
};

// The result of serving a queue for one kick.
struct QueueRun {
  uint32_t chains = 0;  // chains handled and pushed
  bool notify = false;  // the driver must get a used buffer notification
  // Stopped at the budget with the ring possibly non-empty. The caller must serve again
  // without waiting for a kick: with event_idx, avail_event is re-armed only when the ring
  // is seen empty, so the driver may not kick for what is already there.
  bool more = false;
};

// Pops up to `budget` chains, passes each to `handle` (returning Result<uint32_t>: bytes
// written into the chain's writable buffers) and pushes it used. The budget bounds the work
// one kick can cause even while the driver keeps adding. An Error from the queue or from
// `handle` means DEVICE_NEEDS_RESET; pushes made before it stand.
template <typename Handler>
Result<QueueRun> ServeQueue(SplitQueue& queue, uint32_t budget, Handler&& handle) {
  QueueRun run;
  while (run.chains < budget) {
    ASSIGN_OR_RETURN(std::optional<DescriptorChain> chain, queue.PopAvail());
    if (!chain.has_value()) return run;
    ASSIGN_OR_RETURN(uint32_t written, handle(static_cast<const DescriptorChain&>(*chain)));
    ASSIGN_OR_RETURN(bool notify, queue.PushUsed(chain->head, written));
    run.notify = run.notify || notify;
    ++run.chains;
  }
  run.more = true;
  return run;
}

}  // namespace vmm::virtio
