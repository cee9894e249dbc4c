#include "vmm/vm/boot/boot_params.h"

#include <algorithm>

#include "base/bytes.h"
#include "vmm/contract/layout.h"
#include "vmm/formats/kernel/setup_header.h"

namespace vmm::boot {
namespace {

// struct boot_params offsets (zero-page.rst).
constexpr uint64_t kZpAcpiRsdpAddr = 0x070;
constexpr uint64_t kZpExtRamdiskImage = 0x0C0;
constexpr uint64_t kZpExtRamdiskSize = 0x0C4;
constexpr uint64_t kZpExtCmdLinePtr = 0x0C8;
constexpr uint64_t kZpE820Entries = 0x1E8;
constexpr uint64_t kZpSetupHeader = setup_header::kSetupSects;
constexpr uint64_t kZpE820Table = 0x2D0;
constexpr uint64_t kZpE820Max = 128;
using namespace setup_header;  // its fields, at the same offsets in boot_params

constexpr uint8_t kLoaderUndefined = 0xFF;  // boot.rst: "no assigned ID"

// The memory map as both boot paths lay it out: entries of `stride` bytes from `offset`, each
// addr (u64), size (u64), type (u32) — PVH's hvm_memmap_table_entry (24 bytes, the last 4
// reserved) and the zero page's boot_e820_entry (20 bytes, packed).
void StoreMemoryMap(std::span<uint8_t> b, uint64_t offset, size_t stride,
                    const std::vector<x86::E820Entry>& map) {
  for (size_t i = 0; i < map.size(); ++i) {
    const uint64_t off = offset + i * stride;
    StoreLe<uint64_t>(b, off, map[i].addr);
    StoreLe<uint64_t>(b, off + 8, map[i].size);
    StoreLe<uint32_t>(b, off + 16, map[i].type);
  }
}

}  // namespace

Result<std::vector<uint8_t>> BuildPvhStartInfo(const BootInfo& info, uint64_t base) {
  const uint64_t memmap_offset = x86::kPvhMemmapAddr - x86::kPvhStartInfoAddr;
  if (info.memory_map.size() > x86::kPvhMemmapMaxEntries) {
    return Error(ErrorKind::kInternal, "memory map too large for the PVH start_info page");
  }
  std::vector<uint8_t> blob(memmap_offset + info.memory_map.size() * 24, 0);
  std::span<uint8_t> b(blob);
  StoreLe<uint32_t>(b, 0, kPvhStartInfoMagic);
  StoreLe<uint32_t>(b, 4, 1);  // version 1: has the memory map fields
  StoreLe<uint32_t>(b, 8, 0);  // flags
  if (info.initrd_size > 0) {
    StoreLe<uint32_t>(b, 12, 1);  // nr_modules
    StoreLe<uint64_t>(b, 16, base + kPvhModlistOffset);
    StoreLe<uint64_t>(b, kPvhModlistOffset, info.initrd_gpa);
    StoreLe<uint64_t>(b, kPvhModlistOffset + 8, info.initrd_size);
  }
  StoreLe<uint64_t>(b, 24, info.cmdline_gpa);
  StoreLe<uint64_t>(b, 32, info.rsdp_gpa);
  StoreLe<uint64_t>(b, 40, base + memmap_offset);
  StoreLe<uint32_t>(b, 48, static_cast<uint32_t>(info.memory_map.size()));
  StoreMemoryMap(b, memmap_offset, 24, info.memory_map);
  return blob;
}

Result<std::vector<uint8_t>> BuildZeroPage(const KernelImage& image, const BootInfo& info) {
  if (info.memory_map.size() > kZpE820Max) {
    return Error(ErrorKind::kInternal, "memory map too large for the zero page");
  }
  std::vector<uint8_t> page(4096, 0);
  std::span<uint8_t> p(page);
  size_t hdr_len = std::min<size_t>(image.setup_header.size(), kZpE820Table - kZpSetupHeader);
  std::copy_n(image.setup_header.begin(), hdr_len, page.begin() + kZpSetupHeader);

  StoreLe<uint8_t>(p, kTypeOfLoader, kLoaderUndefined);
  uint8_t flags = *LoadLe<uint8_t>(p, kLoadFlags);
  StoreLe<uint8_t>(p, kLoadFlags, flags | kCanUseHeap);
  StoreLe<uint16_t>(p, kHeapEndPtr, 0xFE00);  // boot.rst: heap end relative to setup start
  StoreLe<uint32_t>(p, kCmdLinePtr, static_cast<uint32_t>(info.cmdline_gpa));
  StoreLe<uint32_t>(p, kZpExtCmdLinePtr, static_cast<uint32_t>(info.cmdline_gpa >> 32));
  StoreLe<uint32_t>(p, kRamdiskImage, static_cast<uint32_t>(info.initrd_gpa));
  StoreLe<uint32_t>(p, kRamdiskSize, static_cast<uint32_t>(info.initrd_size));
  StoreLe<uint32_t>(p, kZpExtRamdiskImage, static_cast<uint32_t>(info.initrd_gpa >> 32));
  StoreLe<uint32_t>(p, kZpExtRamdiskSize, static_cast<uint32_t>(info.initrd_size >> 32));
  StoreLe<uint64_t>(p, kZpAcpiRsdpAddr, info.rsdp_gpa);
  StoreLe<uint8_t>(p, kZpE820Entries, static_cast<uint8_t>(info.memory_map.size()));
  StoreMemoryMap(p, kZpE820Table, 20, info.memory_map);
  return page;
}

}  // namespace vmm::boot
