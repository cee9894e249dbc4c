// Guest RAM: one memfd, mapped once, split into guest-physical regions around the 32-bit
// MMIO hole. Every access from VMM code goes through bounds-checked helpers.
//
//   ASSIGN_OR_RETURN(GuestMemory mem, GuestMemory::Create(512 << 20));
//   RETURN_IF_ERROR(mem.Write(0x7000, bytes));        // fails if any byte falls outside RAM
//   std::span<uint8_t> page = mem.Span(0x1000, 4096); // empty span when out of range
//
// The memfd is what later issues hand to device processes; the mapping stays private to
// whoever created this object.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/guest_ram.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm {

struct MemoryRegion {
  uint64_t guest_phys;
  uint64_t size;
  uint64_t file_offset;  // offset in the memfd and in the host mapping
};

class GuestMemory {
 public:
  // Lays out `size` bytes of RAM below the MMIO hole and, past it, above 4 GiB.
  static Result<GuestMemory> Create(uint64_t size);
  // The layout alone, for tests and for building the memory map without a mapping.
  static std::vector<MemoryRegion> Layout(uint64_t size);

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&&) = delete;
  GuestMemory(const GuestMemory&) = delete;
  ~GuestMemory();

  uint64_t size() const { return size_; }
  int memfd() const { return memfd_.get(); }
  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint8_t* host_base() const { return base_; }
  // The same RAM as the one guest-physical interface (base/guest_ram.h): what the
  // kvm_pvm completer reads and writes through. Valid as long as this object.
  const GuestRam& ram() const { return ram_; }

  // The host bytes of [gpa, gpa+len) if the range lies inside one region, else empty.
  std::span<uint8_t> Span(uint64_t gpa, uint64_t len) const;
  Result<void> Write(uint64_t gpa, std::span<const uint8_t> bytes);
  Result<void> Read(uint64_t gpa, std::span<uint8_t> out) const;
  Result<void> Fill(uint64_t gpa, uint64_t len, uint8_t value);

  template <typename T>
  Result<void> WriteObj(uint64_t gpa, const T& obj) {
    return Write(gpa, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&obj), sizeof(T)));
  }

 private:
  GuestMemory() = default;
  UniqueFd memfd_;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::vector<MemoryRegion> regions_;
  GuestRam ram_;
};

}  // namespace vmm
