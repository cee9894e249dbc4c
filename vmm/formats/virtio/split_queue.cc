#include "vmm/formats/virtio/split_queue.h"

#include <atomic>
#include <string>

#include "base/enum_names.h"

namespace vmm::virtio {
namespace {

// Layout of the three parts, virtio 1.2 §2.7 (sizes) and §2.7.5, §2.7.6, §2.7.8 (fields).
constexpr uint64_t kDescSize = 16;    // le64 addr, le32 len, le16 flags, le16 next
constexpr uint64_t kAvailHeader = 4;  // le16 flags, le16 idx; then le16 ring[size]
constexpr uint64_t kUsedHeader = 4;   // le16 flags, le16 idx; then {le32 id, le32 len}[size]
constexpr uint64_t kUsedElemSize = 8;
constexpr uint64_t kRingIdxOffset = 2;

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

Error GuestError(std::string message) { return Error(ErrorKind::kGuest, std::move(message)); }

constexpr NamedValue<QueueFault> kQueueFaultNames[] = {
    {QueueFault::kNone, "no fault"},
    {QueueFault::kAvailIndexJump, "avail index jumped by more than the queue size"},
    {QueueFault::kDescIndexOutOfRange, "descriptor index out of range"},
    {QueueFault::kChainTooLong, "descriptor chain longer than the queue (loop)"},
    {QueueFault::kBufferOutsideRam, "buffer outside guest RAM"},
    {QueueFault::kZeroLengthBuffer, "zero-length buffer"},
    {QueueFault::kChainTooLarge, "descriptor chain larger than the device allows"},
    {QueueFault::kReadableAfterWritable, "device-readable buffer after a writable one"},
    {QueueFault::kIndirectNotNegotiated, "indirect descriptor not negotiated"},
    {QueueFault::kIndirectWithNext, "indirect descriptor with NEXT set"},
    {QueueFault::kNestedIndirect, "nested indirect descriptor"},
    {QueueFault::kBadIndirectTable, "malformed indirect descriptor table"},
};

}  // namespace

const char* QueueFaultName(QueueFault fault) {
  return NameOf(kQueueFaultNames, fault, "unknown fault");
}

Result<SplitQueue> SplitQueue::Create(const GuestRam& ram, const QueueConfig& config,
                                      const QueueLimits& limits) {
  if (!IsPowerOfTwo(config.size) || config.size > kMaxQueueSize) {
    return GuestError("virtqueue: queue size " + std::to_string(config.size) +
                      " is not a power of two in 1..32768");
  }
  if (config.desc_gpa % 16 != 0 || config.avail_gpa % 2 != 0 || config.used_gpa % 4 != 0) {
    return GuestError("virtqueue: ring address misaligned (desc 16, avail 2, used 4)");
  }
  const uint64_t n = config.size;
  // §2.7 sizes include used_event/avail_event whether or not EVENT_IDX is negotiated.
  std::span<uint8_t> desc = ram.Translate(config.desc_gpa, kDescSize * n);
  std::span<uint8_t> avail = ram.Translate(config.avail_gpa, kAvailHeader + 2 * n + 2);
  std::span<uint8_t> used = ram.Translate(config.used_gpa, kUsedHeader + kUsedElemSize * n + 2);
  if (desc.empty() || avail.empty() || used.empty()) {
    return GuestError("virtqueue: a ring does not lie inside one guest RAM region");
  }
  SplitQueue q;
  q.ram_ = &ram;
  q.limits_ = limits;
  if (q.limits_.max_chain_bytes > UINT32_MAX) q.limits_.max_chain_bytes = UINT32_MAX;
  q.desc_ = desc.data();
  q.avail_ = avail.data();
  q.used_ = used.data();
  q.size_ = static_cast<uint16_t>(config.size);  // 32768 fits
  q.event_idx_ = config.event_idx;
  q.indirect_ = config.indirect;
  q.next_avail_ = q.avail_shadow_ = q.used_idx_ = config.avail_base;
  if (q.event_idx_) StoreShared<uint16_t>(q.used_ + kUsedHeader + kUsedElemSize * n, q.next_avail_);
  return q;
}

Error SplitQueue::Fail(QueueFault fault, uint64_t detail) {
  if (fault_ == QueueFault::kNone) {
    fault_ = fault;
    fault_detail_ = detail;
  }
  return GuestError(std::string("virtqueue: ") + QueueFaultName(fault_) + " (" +
                    std::to_string(fault_detail_) + ")");
}

Result<std::optional<DescriptorChain>> SplitQueue::PopAvail() {
  if (broken()) return Fail(fault_, fault_detail_);
  // Everything the driver made available and we have not returned must fit in the queue:
  // a driver owns at most `size` descriptors (§2.7), so more is a lie, whichever way idx
  // moved. It also bounds in_flight_ for devices that hold buffers.
  auto refresh = [this]() -> Result<void> {
    // TOCTOU: idx is read once into avail_shadow_; the check and the number of entries we
    // consume both use that copy, never a second read.
    avail_shadow_ = LoadAcquire<uint16_t>(avail_ + kRingIdxOffset);
    uint32_t pending = static_cast<uint16_t>(avail_shadow_ - next_avail_);
    if (pending + in_flight_ > size_) return Fail(QueueFault::kAvailIndexJump, avail_shadow_);
    return Ok();
  };
  if (next_avail_ == avail_shadow_) {
    RETURN_IF_ERROR(refresh());
    if (next_avail_ == avail_shadow_) {
      if (!event_idx_) return std::optional<DescriptorChain>();
      // §2.7.10: ask for a kick at the next addition, then look again: the store must be
      // visible before the re-read (full fence), or a driver that added meanwhile and read
      // a stale avail_event would not kick and we would not see its buffer.
      StoreShared<uint16_t>(used_ + kUsedHeader + kUsedElemSize * size_, next_avail_);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      RETURN_IF_ERROR(refresh());
      if (next_avail_ == avail_shadow_) return std::optional<DescriptorChain>();
    }
  }
  // TOCTOU: the head is read once; Walk and the later PushUsed use this copy.
  const uint16_t head =
      LoadShared<uint16_t>(avail_ + kAvailHeader + 2 * (next_avail_ & (size_ - 1)));
  DescriptorChain chain;
  chain.head = head;
  RETURN_IF_ERROR(Walk(head, chain));
  ++next_avail_;
  ++in_flight_;
  return std::optional<DescriptorChain>(std::move(chain));
}

Result<void> SplitQueue::Walk(uint16_t head, DescriptorChain& chain) {
  if (head >= size_) return Fail(QueueFault::kDescIndexOutOfRange, head);
  const uint8_t* table = desc_;
  uint32_t table_entries = size_;
  bool in_indirect = false;
  uint32_t index = head;
  uint32_t buffers = 0;
  // Terminates: every pass adds a buffer (at most size_ of them) or enters the one
  // permitted indirect table.
  for (;;) {
    const uint8_t* d = table + kDescSize * index;
    // TOCTOU: each field is loaded exactly once into a local. The driver may rewrite the
    // descriptor while we walk; every check below and every use (translation, the chain
    // we return) sees the same copy, so it cannot pass a check with one len and be served
    // with another.
    const uint64_t addr = LoadShared<uint64_t>(d);
    const uint32_t len = LoadShared<uint32_t>(d + 8);
    const uint16_t flags = LoadShared<uint16_t>(d + 12);
    const uint16_t next = LoadShared<uint16_t>(d + 14);

    if (flags & kVirtqDescFIndirect) {
      // §2.7.5.3: zero or more direct descriptors, then one referring to a table.
      if (!indirect_) return Fail(QueueFault::kIndirectNotNegotiated, index);
      if (in_indirect) return Fail(QueueFault::kNestedIndirect, index);
      if (flags & kVirtqDescFNext) return Fail(QueueFault::kIndirectWithNext, index);
      if (len == 0 || len % kDescSize != 0 || len / kDescSize > size_) {
        return Fail(QueueFault::kBadIndirectTable, len);
      }
      std::span<uint8_t> t = ram_->Translate(addr, len);
      if (t.empty()) return Fail(QueueFault::kBufferOutsideRam, addr);
      // §2.7.5.3.2: the WRITE flag of the referring descriptor is ignored.
      table = t.data();
      table_entries = len / kDescSize;
      in_indirect = true;
      index = 0;
      continue;
    }
    // §2.7.5.3.1: a chain, indirect entries included, is at most the queue size long; a
    // loop is a chain that never ends, caught here.
    if (++buffers > size_) return Fail(QueueFault::kChainTooLong, buffers);
    RETURN_IF_ERROR(AddBuffer(addr, len, (flags & kVirtqDescFWrite) != 0, chain));
    if (!(flags & kVirtqDescFNext)) return Ok();
    if (next >= table_entries) return Fail(QueueFault::kDescIndexOutOfRange, next);
    index = next;
  }
}

Result<void> SplitQueue::AddBuffer(uint64_t addr, uint32_t len, bool writable,
                                   DescriptorChain& chain) {
  if (len == 0) return Fail(QueueFault::kZeroLengthBuffer, addr);
  // Both sums stay below 2^33: each term is bounded by max_chain_bytes <= 2^32 - 1.
  const uint64_t total = chain.readable_len + chain.writable_len + len;
  if (total > limits_.max_chain_bytes) return Fail(QueueFault::kChainTooLarge, total);
  std::span<uint8_t> bytes = ram_->Translate(addr, len);
  if (bytes.empty()) return Fail(QueueFault::kBufferOutsideRam, addr);
  if (writable) {
    chain.writable.push_back({addr, bytes});
    chain.writable_len += len;
    return Ok();
  }
  if (limits_.readable_before_writable && !chain.writable.empty()) {
    return Fail(QueueFault::kReadableAfterWritable, addr);
  }
  chain.readable.push_back({addr, bytes});
  chain.readable_len += len;
  return Ok();
}

Result<bool> SplitQueue::PushUsed(uint16_t head, uint32_t written_len) {
  if (broken()) return Fail(fault_, fault_detail_);
  if (head >= size_ || in_flight_ == 0) {
    return Error(ErrorKind::kInternal, "virtqueue: PushUsed of head " + std::to_string(head) +
                                           " with " + std::to_string(in_flight_) + " in flight");
  }
  // The used ring is the device's (§2.7.8): we write it and never read it back, so a driver
  // scribbling on it cannot steer where the next element goes; used_idx_ is our own.
  uint8_t* elem = used_ + kUsedHeader + kUsedElemSize * (used_idx_ & (size_ - 1));
  StoreShared<uint32_t>(elem, head);
  StoreShared<uint32_t>(elem + 4, written_len);
  const uint16_t old_idx = used_idx_++;
  --in_flight_;
  // §2.7.8.2: id and len (and the buffer contents) before idx: release.
  StoreRelease<uint16_t>(used_ + kRingIdxOffset, used_idx_);
  // The driver writes used_event/flags and then reads idx; we write idx and then read
  // those. Store-then-load needs a full fence or both sides can miss each other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (event_idx_) {
    // §2.7.7.2: notify iff the idx at which we placed the element equals used_event; the
    // flags are ignored. Read once.
    const uint16_t used_event = LoadShared<uint16_t>(avail_ + kAvailHeader + 2 * size_);
    return old_idx == used_event;
  }
  return (LoadShared<uint16_t>(avail_) & kVirtqAvailFNoInterrupt) == 0;
}

}  // namespace vmm::virtio
