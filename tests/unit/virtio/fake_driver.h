// FakeDriver: the driver side of a split virtqueue (virtio 1.2 §2.7.13) in FakeGuestRam, for
// tests: lays out the three rings, writes descriptors, publishes heads, reads the used ring.
// It writes whatever it is told, so tests can play a hostile driver too. BasicFakeDriver<Mem>
// is the same over any memory with Put<T>/Get<T>(gpa) (the vhost-user tests' memfd RAM).
//
//   FakeGuestRam mem(1 << 20);
//   FakeDriver drv(mem, 16);
//   uint16_t head = drv.AddChain({{drv.Alloc(16), 16, false}, {drv.Alloc(1), 1, true}});
//   drv.Publish(head);
//   auto q = SplitQueue::Create(mem.ram(), drv.config());
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>

#include "vmm/formats/virtio/fake_guest_ram.h"
#include "vmm/formats/virtio/split_queue.h"

namespace vmm::virtio::testing {

template <typename Mem>
class BasicFakeDriver {
 public:
  struct Buf {
    uint64_t addr;
    uint32_t len;
    bool write;
  };

  // Rings at `base` (desc, then avail, then used, or the used ring at `used_base` when
  // set), data allocated from `data_base`.
  BasicFakeDriver(Mem& mem, uint16_t size, uint64_t base = 0x1000, uint64_t data_base = 0x80000,
                  uint64_t used_base = 0)
      : mem_(mem), size_(size), desc_(base), data_next_(data_base) {
    avail_ = desc_ + 16ull * size;
    used_ = used_base ? used_base : (avail_ + 6 + 2ull * size + 3) & ~3ull;
  }

  QueueConfig config(bool event_idx = false, bool indirect = false) const {
    return {.size = size_,
            .desc_gpa = desc_,
            .avail_gpa = avail_,
            .used_gpa = used_,
            .event_idx = event_idx,
            .indirect = indirect};
  }
  uint64_t desc_gpa() const { return desc_; }
  uint64_t avail_gpa() const { return avail_; }
  uint64_t used_gpa() const { return used_; }

  uint64_t Alloc(uint64_t len, uint64_t align = 16) {
    uint64_t at = (data_next_ + align - 1) & ~(align - 1);
    data_next_ = at + len;
    return at;
  }
  uint64_t AllocBytes(std::span<const uint8_t> bytes) {
    uint64_t at = Alloc(bytes.size());
    mem_.Write(at, bytes);
    return at;
  }

  // Writes descriptor `i` of the table at `table` (the queue's own table by default).
  void SetDesc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next,
               uint64_t table = 0) {
    uint64_t d = (table ? table : desc_) + 16ull * i;
    mem_.template Put<uint64_t>(d, addr);
    mem_.template Put<uint32_t>(d + 8, len);
    mem_.template Put<uint16_t>(d + 12, flags);
    mem_.template Put<uint16_t>(d + 14, next);
  }

  // Links `bufs` through the next free descriptors (wrapping); returns the head.
  uint16_t AddChain(std::initializer_list<Buf> bufs) {
    uint16_t head = next_desc_;
    size_t n = 0;
    for (const Buf& b : bufs) {
      uint16_t i = next_desc_;
      next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
      bool last = ++n == bufs.size();
      SetDesc(
          i, b.addr, b.len,
          static_cast<uint16_t>((b.write ? kVirtqDescFWrite : 0) | (last ? 0 : kVirtqDescFNext)),
          last ? 0 : next_desc_);
    }
    return head;
  }

  // Writes an indirect table of `bufs` in data memory and returns {gpa, byte length}.
  std::pair<uint64_t, uint32_t> IndirectTable(std::initializer_list<Buf> bufs) {
    uint64_t table = Alloc(16 * bufs.size());
    uint16_t i = 0;
    for (const Buf& b : bufs) {
      bool last = i + 1u == bufs.size();
      SetDesc(
          i, b.addr, b.len,
          static_cast<uint16_t>((b.write ? kVirtqDescFWrite : 0) | (last ? 0 : kVirtqDescFNext)),
          last ? 0 : static_cast<uint16_t>(i + 1), table);
      ++i;
    }
    return {table, static_cast<uint32_t>(16 * bufs.size())};
  }

  // Puts `head` in the next avail slot and bumps avail idx (§2.7.13.2-3).
  void Publish(uint16_t head) {
    uint16_t idx = avail_idx();
    mem_.template Put<uint16_t>(avail_ + 4 + 2ull * (idx % size_), head);
    SetAvailIdx(static_cast<uint16_t>(idx + 1));
  }
  uint16_t avail_idx() { return mem_.template Get<uint16_t>(avail_ + 2); }
  void SetAvailIdx(uint16_t idx) { mem_.template Put<uint16_t>(avail_ + 2, idx); }
  void SetAvailSlot(uint16_t slot, uint16_t head) {
    mem_.template Put<uint16_t>(avail_ + 4 + 2ull * slot, head);
  }
  void SetAvailFlags(uint16_t flags) { mem_.template Put<uint16_t>(avail_, flags); }
  void SetUsedEvent(uint16_t v) { mem_.template Put<uint16_t>(avail_ + 4 + 2ull * size_, v); }

  uint16_t used_idx() { return mem_.template Get<uint16_t>(used_ + 2); }
  void SetUsedIdx(uint16_t v) { mem_.template Put<uint16_t>(used_ + 2, v); }
  // {id, len} of used slot `slot`.
  std::pair<uint32_t, uint32_t> UsedElem(uint16_t slot) {
    uint64_t e = used_ + 4 + 8ull * (slot % size_);
    return {mem_.template Get<uint32_t>(e), mem_.template Get<uint32_t>(e + 4)};
  }
  uint16_t avail_event() { return mem_.template Get<uint16_t>(used_ + 4 + 8ull * size_); }

 private:
  Mem& mem_;
  uint16_t size_;
  uint64_t desc_, avail_, used_;
  uint64_t data_next_;
  uint16_t next_desc_ = 0;
};

using FakeDriver = BasicFakeDriver<FakeGuestRam>;

}  // namespace vmm::virtio::testing
