// FakeBlockBackend: an in-memory image for tests and fuzzers that records every operation
// and counts any access a correct device would never make (outside the image, or a write to
// a read-only image) instead of performing it.
//
//   FakeBlockBackend disk(64 * 1024);
//   disk.on_op = [&](const FakeBlockBackend::Op& op) { ... };  // e.g. a racing driver
//   BlkDevice blk(disk, {});
//   EXPECT_EQ(disk.violations, 0u);
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <vector>

#include "base/bytes.h"
#include "vmm/device/blk/block_backend.h"

namespace vmm::virtio {

class FakeBlockBackend final : public BlockBackend {
 public:
  enum class Kind { kRead, kWrite, kFlush };
  struct Op {
    Kind kind;
    uint64_t offset;
    uint64_t len;
  };

  explicit FakeBlockBackend(uint64_t size, bool read_only = false)
      : image(size), read_only_(read_only) {}

  Result<void> ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    Record({Kind::kRead, offset, out.size()});
    if (!InBounds(image.size(), offset, out.size())) return Violation();
    if (fail_reads) return Error(ErrorKind::kSystem, "fake read failure", 5);
    if (!out.empty()) std::memcpy(out.data(), image.data() + offset, out.size());
    return Ok();
  }
  Result<void> WriteAt(uint64_t offset, std::span<const uint8_t> in) override {
    Record({Kind::kWrite, offset, in.size()});
    if (read_only_ || !InBounds(image.size(), offset, in.size())) return Violation();
    if (fail_writes) return Error(ErrorKind::kSystem, "fake write failure", 5);
    if (!in.empty()) std::memcpy(image.data() + offset, in.data(), in.size());
    return Ok();
  }
  Result<void> Flush() override {
    Record({Kind::kFlush, 0, 0});
    if (fail_flush) return Error(ErrorKind::kSystem, "fake flush failure", 5);
    return Ok();
  }
  uint64_t size() const override { return image.size(); }

  // Back to a fresh state with a zeroed image of `size` bytes, keeping the allocation (for
  // fuzzers: a new large buffer per input costs page faults under ASan's quarantine).
  void Reset(uint64_t size, bool read_only) {
    image.assign(size, 0);
    ops.clear();
    on_op = nullptr;
    violations = 0;
    fail_reads = fail_writes = fail_flush = false;
    read_only_ = read_only;
  }
  bool read_only() const override { return read_only_; }

  std::vector<uint8_t> image;
  std::vector<Op> ops;
  std::function<void(const Op&)> on_op;  // runs before the op takes effect
  uint64_t violations = 0;               // accesses outside the image or writes when read-only
  bool fail_reads = false, fail_writes = false, fail_flush = false;

 private:
  void Record(const Op& op) {
    ops.push_back(op);
    if (on_op) on_op(op);
  }
  Error Violation() {
    ++violations;
    return Error(ErrorKind::kInternal, "fake block backend: access outside the image");
  }
  bool read_only_;
};

}  // namespace vmm::virtio
