// BlockBackend: the disk image behind a virtio-blk device, as byte offsets.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<FdBlockBackend> disk,
//                    FdBlockBackend::Create(std::move(image_fd), /*read_only=*/false));
//   RETURN_IF_ERROR(disk->WriteAt(4096, bytes));
//
// The device process receives the image fd from the manager (it may not open files:
// ARCHITECTURE.md §1), so the fd implementation only ever uses the descriptor it owns.
// Callers keep every access inside [0, size()); implementations check it again anyway and
// refuse writes when read_only(), so one bug is not enough to touch bytes outside the image.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm::virtio {

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  // Fills all of `out` from `offset`, or fails.
  virtual Result<void> ReadAt(uint64_t offset, std::span<uint8_t> out) = 0;
  // Writes all of `in` at `offset`, or fails (having possibly written a prefix).
  virtual Result<void> WriteAt(uint64_t offset, std::span<const uint8_t> in) = 0;
  // Returns once every completed write is on stable storage.
  virtual Result<void> Flush() = 0;
  virtual uint64_t size() const = 0;
  virtual bool read_only() const = 0;
};

// pread64/pwrite64/fdatasync over an owned fd of a regular file or a block device.
class FdBlockBackend final : public BlockBackend {
 public:
  // Takes ownership of `fd`. Size from fstat (regular file) or BLKGETSIZE64 (block device),
  // taken once: the manager owns the image and does not resize it under a running VM.
  static Result<std::unique_ptr<FdBlockBackend>> Create(UniqueFd fd, bool read_only);

  Result<void> ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  Result<void> WriteAt(uint64_t offset, std::span<const uint8_t> in) override;
  Result<void> Flush() override;
  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }

 private:
  FdBlockBackend(UniqueFd fd, uint64_t size, bool read_only)
      : fd_(std::move(fd)), size_(size), read_only_(read_only) {}

  UniqueFd fd_;
  uint64_t size_;
  bool read_only_;
};

}  // namespace vmm::virtio
