#include "vmm/device/blk/block_backend.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "base/bytes.h"

namespace vmm::virtio {
namespace {

Error OutOfImage(const char* what, uint64_t offset, uint64_t len, uint64_t size) {
  return Error(ErrorKind::kInternal, std::string(what) + " of " + std::to_string(len) +
                                         " bytes at " + std::to_string(offset) +
                                         " outside an image of " + std::to_string(size));
}

// pread/pwrite take off_t: keep offsets and lengths where they cannot turn negative.
constexpr uint64_t kMaxOffset = static_cast<uint64_t>(INT64_MAX);

// Calls `io(done)` (a pread64/pwrite64 of the rest, from `done` bytes in) until all `len`
// bytes moved, again after EINTR and short transfers. `call` names it in errors; `none` says
// what a transfer of 0 bytes means.
template <typename Io>
Result<void> TransferAll(size_t len, const char* call, const char* none, Io io) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = io(done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(std::string("block image: ") + call);
    }
    if (n == 0) return Error(ErrorKind::kSystem, std::string("block image: ") + none);
    done += static_cast<size_t>(n);
  }
  return Ok();
}

}  // namespace

Result<std::unique_ptr<FdBlockBackend>> FdBlockBackend::Create(UniqueFd fd, bool read_only) {
  if (!fd.valid()) return InvalidArgument("block image: no file descriptor");
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError("block image: fstat");
  uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return ErrnoError("block image: BLKGETSIZE64");
  } else {
    return InvalidArgument("block image: not a regular file or block device");
  }
  if (size > kMaxOffset) return InvalidArgument("block image: larger than 2^63 bytes");
  return std::unique_ptr<FdBlockBackend>(new FdBlockBackend(std::move(fd), size, read_only));
}

Result<void> FdBlockBackend::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  if (!InBounds(size_, offset, out.size())) return OutOfImage("read", offset, out.size(), size_);
  // Inside the size we took at Create, so end of file means the image shrank under us.
  return TransferAll(out.size(), "pread", "unexpected end of file", [&](size_t done) {
    return pread64(fd_.get(), out.data() + done, out.size() - done,
                   static_cast<off64_t>(offset + done));
  });
}

Result<void> FdBlockBackend::WriteAt(uint64_t offset, std::span<const uint8_t> in) {
  if (read_only_) return Error(ErrorKind::kInternal, "block image: write to a read-only image");
  if (!InBounds(size_, offset, in.size())) return OutOfImage("write", offset, in.size(), size_);
  return TransferAll(in.size(), "pwrite", "pwrite wrote nothing", [&](size_t done) {
    return pwrite64(fd_.get(), in.data() + done, in.size() - done,
                    static_cast<off64_t>(offset + done));
  });
}

Result<void> FdBlockBackend::Flush() {
  // Retry only EINTR. Any other error is final: after a failed writeback the kernel may
  // drop the dirty pages, so a second fdatasync could report success for lost data.
  while (fdatasync(fd_.get()) != 0) {
    if (errno != EINTR) return ErrnoError("block image: fdatasync");
  }
  return Ok();
}

}  // namespace vmm::virtio
