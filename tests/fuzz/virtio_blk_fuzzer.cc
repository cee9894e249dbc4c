// Arbitrary virtio-blk requests (vmm/device/blk/blk.h) against a fake 64 KiB image (plus up to
// 511 bytes of partial sector that capacity does not expose), read-only or not. Each request
// is a descriptor chain with fuzzer-chosen header bytes and framing: how many readable and
// writable buffers, of which lengths; the driver may also rewrite the header in guest RAM
// while the device is inside the backend (a racing vCPU).
//
// Checked: the image is never accessed outside [0, capacity * 512); a read-only image is
// never written and its bytes never change; a chain without a writable byte is an Error and
// every other chain gets a status in {OK, IOERR, UNSUPP} and a used length covering it;
// config reads at any offset/width stay inside the config space.
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"
#include "vmm/device/blk/blk.h"
#include "vmm/device/blk/fake_block_backend.h"
#include "vmm/formats/virtio/fake_guest_ram.h"

namespace {

using namespace vmm::virtio;

constexpr uint64_t kRamSize = 64 * 1024;
constexpr uint64_t kImageSize = 64 * 1024;
constexpr size_t kMaxRequests = 16;
constexpr size_t kMaxBuffers = 6;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in{data, size};
  const uint8_t flags = in.U8();
  const bool read_only = flags & 1;
  const uint64_t image_size = kImageSize + ((flags & 2) ? in.U16() % 512 : 0);
  // Long-lived buffers: fresh large allocations per input cost page faults under ASan.
  static FakeBlockBackend disk(0);
  static FakeGuestRam mem(kRamSize);
  static const std::vector<uint8_t> original = [] {
    std::vector<uint8_t> v(kImageSize + 512);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i * 31);
    return v;
  }();
  disk.Reset(image_size, read_only);
  std::memcpy(disk.image.data(), original.data(), image_size);
  disk.fail_reads = flags & 0x10;  // a failing host disk: IOERR, never a wrong status
  disk.fail_writes = flags & 0x20;
  disk.fail_flush = flags & 0x40;
  std::span<uint8_t> ram = mem.At(0, kRamSize);
  std::memset(ram.data(), 0, ram.size());

  BlkOptions options;
  options.serial = "fuzz-serial-number-xyz";
  options.seg_max = 1 + in.U8() % 8;
  options.size_max = 4096u << (in.U8() % 3);
  auto created = BlkDevice::Create(disk, options);
  CHECK(created.has_value());
  BlkDevice& blk = created.value();
  blk.SetDriverFeatures((flags & 4) ? blk.features() : 0);
  const uint64_t limit = blk.capacity_sectors() * kSectorSize;
  CHECK(limit <= image_size);

  // Config space reads at any offset and width.
  {
    uint8_t out[16];
    const uint64_t offset = in.U8() | ((flags & 8) ? uint64_t{in.U16()} << 48 : 0);
    const size_t width = in.U8() % 17;
    auto r = blk.ReadConfig(offset, std::span<uint8_t>(out, width));
    CHECK(r.has_value() ==
          (width != 0 && offset < kBlkConfigSize && width <= kBlkConfigSize - offset));
  }

  uint64_t next = 0;
  for (size_t req = 0; req < kMaxRequests && !in.done(); ++req) {
    const uint8_t shape = in.U8();
    const size_t readable = shape & 3;         // 0..3 buffers
    const size_t writable = (shape >> 2) & 3;  // 0..3 buffers
    const bool race = shape & 0x10;
    const bool split_header = shape & 0x20;
    uint8_t header[kBlkRequestHeaderSize];
    for (uint8_t& b : header) b = in.U8();
    // Mostly the types that do something, sometimes anything.
    static constexpr uint32_t kTypes[] = {kVirtioBlkTIn, kVirtioBlkTOut, kVirtioBlkTFlush,
                                          kVirtioBlkTGetId};
    if (!(shape & 0x40)) std::memcpy(header, &kTypes[header[0] & 3], 4);
    if (shape & 0x80) {  // a sector near the image, not anywhere in 2^64
      uint64_t sector = (header[8] | (header[9] << 8)) % 160;
      std::memcpy(header + 8, &sector, 8);
    }

    DescriptorChain chain;
    auto add = [&](uint32_t len, bool write) {
      if (len == 0) return;  // the queue never hands out zero-length buffers
      if (next + len > kRamSize) next = 0;
      GuestBuffer b{next, mem.At(next, len)};
      next += len;
      (write ? chain.writable : chain.readable).push_back(b);
      (write ? chain.writable_len : chain.readable_len) += len;
    };
    uint64_t header_gpa = next;
    if (readable > 0) {
      // The first readable buffer starts with the header (or part of it).
      const uint32_t first = split_header ? 1 + in.U8() % 16 : 16 + (in.U16() % 4) * 512;
      if (next + first + 16 > kRamSize) next = 0;
      header_gpa = next;
      mem.Write(header_gpa, header);
      add(first, false);
      if (split_header && first < 16) add(16 - first, false);
    }
    for (size_t i = 1; i < readable && chain.readable.size() < kMaxBuffers; ++i) {
      add(512u * (in.U8() % 4) + (in.U8() & 1), false);
    }
    for (size_t i = 0; i < writable; ++i) {
      add(512u * (in.U8() % 4) + ((in.U8() & 1) ? 1 : 0), true);
    }
    for (const GuestBuffer& b : chain.writable) std::memset(b.bytes.data(), 0xEE, b.bytes.size());

    uint8_t racing[kBlkRequestHeaderSize];
    for (uint8_t& b : racing) b = in.U8();
    bool raced = false;
    disk.on_op = [&](const FakeBlockBackend::Op&) {
      if (!race || raced || chain.readable.empty()) return;
      raced = true;
      mem.Write(header_gpa,
                std::span<const uint8_t>(racing, std::min<size_t>(16, kRamSize - header_gpa)));
    };
    const size_t ops_before = disk.ops.size();

    auto used = blk.HandleChain(chain);
    if (chain.writable_len == 0) {
      CHECK(!used.has_value());
      CHECK(disk.ops.size() == ops_before);
      continue;
    }
    CHECK(used.has_value());
    CHECK(*used == chain.writable_len);
    std::span<uint8_t> last = chain.writable.back().bytes;
    const uint8_t status = last[last.size() - 1];
    CHECK(status == kVirtioBlkSOk || status == kVirtioBlkSIoErr || status == kVirtioBlkSUnsupp);
    for (size_t i = ops_before; i < disk.ops.size(); ++i) {
      const FakeBlockBackend::Op& op = disk.ops[i];
      const bool failed = (op.kind == FakeBlockBackend::Kind::kRead && disk.fail_reads) ||
                          (op.kind == FakeBlockBackend::Kind::kWrite && disk.fail_writes) ||
                          (op.kind == FakeBlockBackend::Kind::kFlush && disk.fail_flush);
      if (failed) CHECK(status == kVirtioBlkSIoErr);  // a host failure is never reported OK
      if (op.kind == FakeBlockBackend::Kind::kFlush) continue;
      CHECK(op.offset <= limit && op.len <= limit - op.offset);
      CHECK(!(read_only && op.kind == FakeBlockBackend::Kind::kWrite));
    }
  }
  disk.on_op = nullptr;  // it captured this input's locals
  CHECK(disk.violations == 0);
  if (read_only) CHECK(std::memcmp(disk.image.data(), original.data(), image_size) == 0);
  // The partial sector past capacity is never written.
  CHECK(std::memcmp(disk.image.data() + limit, original.data() + limit, image_size - limit) == 0);
  return 0;
}
