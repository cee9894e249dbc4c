// A hostile driver against the split virtqueue (vmm/formats/virtio/split_queue.h): arbitrary guest
// RAM contents, ring addresses, queue size and features, then a program of pops, pushes and
// racing RAM writes, then a bounded drain. Guest RAM is three separately allocated regions
// (two of them adjacent) so ASan sees any access that leaves a region.
//
// Input: a 14-byte header (see Header), `program_len` op bytes, then RAM contents.
// Checked: every buffer handed out lies inside one region and is what Translate gives for
// its gpa; chain totals add up and respect the cap and the queue size; nothing is ever in
// flight beyond the queue size; a fault is sticky; the drain is bounded.
#include <cstdint>
#include <cstring>
#include <deque>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"
#include "vmm/formats/virtio/fake_guest_ram.h"
#include "vmm/formats/virtio/split_queue.h"

namespace {

using namespace vmm::virtio;

constexpr FakeGuestRam::Region kLayout[] = {
    {0x00000, 0x10000},  // 64 KiB
    {0x10000, 0x10000},  // adjacent 64 KiB: a buffer may not straddle the two
    {0x100000, 0x8000},  // 32 KiB after a gap
};

void CheckChain(const FakeGuestRam& mem, const SplitQueue& q, const DescriptorChain& c,
                uint64_t cap) {
  CHECK(c.head < q.size());
  CHECK(c.readable.size() + c.writable.size() <= q.size());
  uint64_t r = 0, w = 0;
  for (const GuestBuffer& b : c.readable) {
    CHECK(!b.bytes.empty() && mem.Contains(b.bytes));
    CHECK(mem.ram().Translate(b.gpa, b.bytes.size()).data() == b.bytes.data());
    r += b.bytes.size();
    volatile uint8_t sink = 0;
    for (uint8_t byte : b.bytes) sink = sink ^ byte;  // ASan checks every byte
    (void)sink;
  }
  for (const GuestBuffer& b : c.writable) {
    CHECK(!b.bytes.empty() && mem.Contains(b.bytes));
    CHECK(mem.ram().Translate(b.gpa, b.bytes.size()).data() == b.bytes.data());
    w += b.bytes.size();
    std::memset(b.bytes.data(), 0xA5, b.bytes.size());  // a device writing its buffers
  }
  CHECK(r == c.readable_len && w == c.writable_len);
  CHECK(r + w <= cap);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in{data, size};
  // Header.
  const uint8_t flags = in.U8();
  const uint16_t raw_size = in.U16();
  const uint16_t desc = in.U16(), avail = in.U16(), used = in.U16();
  const uint8_t flags2 = in.U8();
  const uint8_t cap_log2 = in.U8() % 21;  // up to 1 MiB per chain keeps executions fast
  const uint16_t avail_base = in.U16();
  const uint8_t program_len = in.U8();

  QueueConfig config;
  config.size = (flags & 0x80) ? raw_size : (1u << (flags & 0x0F));  // raw: often invalid
  config.desc_gpa = uint64_t{desc} * 8;                              // sometimes misaligned
  config.avail_gpa = uint64_t{avail} * 2 + (flags2 & 1);
  config.used_gpa = uint64_t{used} * 4 + ((flags2 >> 1) & 3);
  config.event_idx = flags & 0x10;
  config.indirect = flags & 0x20;
  config.avail_base = avail_base;
  QueueLimits limits;
  limits.max_chain_bytes = uint64_t{1} << cap_log2;
  limits.readable_before_writable = !(flags & 0x40);

  const uint8_t* program = data + std::min(in.pos, size);
  const size_t program_size = std::min<size_t>(program_len, in.left());
  in.pos += program_size;

  // Long-lived: fresh large allocations per input cost page faults under ASan's quarantine.
  static FakeGuestRam mem{std::span<const FakeGuestRam::Region>(kLayout)};
  // The rest of the input is RAM, region after region; the remainder is zero.
  for (const FakeGuestRam::Region& r : kLayout) {
    std::span<uint8_t> region = mem.At(r.guest_phys, r.size);
    size_t n = std::min<size_t>(r.size, in.left());
    if (n) std::memcpy(region.data(), data + in.pos, n);
    std::memset(region.data() + n, 0, r.size - n);
    in.pos += n;
  }

  auto created = SplitQueue::Create(mem.ram(), config, limits);
  if (!created.has_value()) return 0;
  SplitQueue& q = created.value();
  std::deque<DescriptorChain> held;

  auto pop = [&]() -> int {  // 1 popped, 0 empty, -1 broken
    auto r = q.PopAvail();
    if (!r.has_value()) {
      CHECK(q.broken());
      CHECK(!q.PopAvail().has_value());  // sticky
      CHECK(!q.PushUsed(0, 0).has_value());
      return -1;
    }
    if (!r->has_value()) return 0;
    CheckChain(mem, q, **r, limits.max_chain_bytes);
    held.push_back(std::move(**r));
    CHECK(q.in_flight() == held.size() && q.in_flight() <= q.size());
    return 1;
  };
  auto push = [&](bool newest) {
    if (held.empty()) {
      CHECK(!q.PushUsed(0, 0).has_value());
      return;
    }
    DescriptorChain c = newest ? std::move(held.back()) : std::move(held.front());
    newest ? held.pop_back() : held.pop_front();
    CHECK(q.PushUsed(c.head, static_cast<uint32_t>(c.writable_len)).has_value());
  };

  // The program: a driver racing the device.
  for (size_t i = 0; i < program_size; ++i) {
    const uint8_t op = program[i];
    switch (op & 3) {
      case 0:
      case 1:
        if (pop() < 0) return 0;
        break;
      case 2:
        push(op & 4);
        break;
      case 3: {  // the driver writes a byte anywhere in the first two regions
        const uint64_t gpa = ((uint64_t{op} << 9) ^ (i * 0x9E37)) & 0x1FFFF;
        mem.Put<uint8_t>(gpa, static_cast<uint8_t>(op ^ i));
        break;
      }
    }
  }
  // Drain: what one kick may do. Pushes can land on the avail ring when the driver made
  // the rings overlap, so the budget, not emptiness, is what bounds this loop.
  const uint32_t budget = 4 * uint32_t{q.size()} + 16;
  for (uint32_t i = 0; i < budget; ++i) {
    int r = pop();
    if (r < 0) return 0;
    if (r == 0 && held.empty()) break;
    push(false);
  }
  while (!held.empty()) push(false);
  CHECK(q.in_flight() == 0);
  return 0;
}
