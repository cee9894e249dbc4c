#include "vmm/vm/memory/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "vmm/contract/layout.h"

namespace vmm {

std::vector<MemoryRegion> GuestMemory::Layout(uint64_t size) {
  std::vector<MemoryRegion> regions;
  uint64_t low = std::min(size, x86::kMmioHoleStart);
  regions.push_back({0, low, 0});
  if (size > low) regions.push_back({x86::kMmioHoleEnd, size - low, low});
  return regions;
}

Result<GuestMemory> GuestMemory::Create(uint64_t size) {
  if (size < x86::kMinMemory) return InvalidArgument("guest memory below the minimum");
  GuestMemory mem;
  mem.memfd_.reset(memfd_create("vmm-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mem.memfd_.valid()) return ErrnoError("memfd_create for guest RAM");
  if (ftruncate(mem.memfd_.get(), static_cast<off_t>(size)) < 0) {
    return ErrnoError("sizing guest RAM to " + std::to_string(size) + " bytes");
  }
  // Only the size is fixed; the contents stay writable for the guest and the devices.
  if (fcntl(mem.memfd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
    return ErrnoError("sealing the size of guest RAM");
  }
  void* base =
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mem.memfd_.get(), 0);
  if (base == MAP_FAILED) return ErrnoError("mapping guest RAM");
  // Guest RAM in a core dump would leak tenant data.
  madvise(base, size, MADV_DONTDUMP);
  mem.base_ = static_cast<uint8_t*>(base);
  mem.size_ = size;
  mem.regions_ = Layout(size);
  for (const MemoryRegion& r : mem.regions_) {
    RETURN_IF_ERROR(mem.ram_.AddRegion({r.guest_phys, r.size, mem.base_ + r.file_offset}));
  }
  return mem;
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : memfd_(std::move(other.memfd_)),
      base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      regions_(std::move(other.regions_)),
      ram_(std::exchange(other.ram_, GuestRam())) {}

GuestMemory::~GuestMemory() {
  if (base_ != nullptr) munmap(base_, size_);
}

std::span<uint8_t> GuestMemory::Span(uint64_t gpa, uint64_t len) const {
  if (len > 0) return ram_.Translate(gpa, len);
  // Zero bytes: a zero-length span at gpa if gpa is in (or at the end of) a region.
  for (const MemoryRegion& r : regions_) {
    if (gpa >= r.guest_phys && gpa - r.guest_phys <= r.size) {
      return std::span<uint8_t>(base_ + r.file_offset + (gpa - r.guest_phys), 0);
    }
  }
  return {};
}

Result<void> GuestMemory::Write(uint64_t gpa, std::span<const uint8_t> bytes) {
  return ram_.Write(gpa, bytes);
}

Result<void> GuestMemory::Read(uint64_t gpa, std::span<uint8_t> out) const {
  return ram_.Read(gpa, out);
}

Result<void> GuestMemory::Fill(uint64_t gpa, uint64_t len, uint8_t value) {
  std::span<uint8_t> dst = Span(gpa, len);
  if (dst.size() != len || (len > 0 && dst.data() == nullptr)) return GuestRangeNotRam(gpa, len);
  if (len > 0) std::memset(dst.data(), value, len);
  return Ok();
}

}  // namespace vmm
