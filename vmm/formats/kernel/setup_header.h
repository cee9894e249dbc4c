// The x86 Linux boot protocol's setup header (Documentation/arch/x86/boot.rst, "THE
// REAL-MODE KERNEL HEADER"): where each field sits in a bzImage file, which is also where it
// sits in struct boot_params, the zero page, that carries a copy of the header. One table for
// the bzImage parser (bzimage.cc) and the zero page builder (vmm/vm/boot/boot_params.cc).
//
//   uint16_t version = LoadLe<uint16_t>(file, setup_header::kVersion).value_or(0);
#pragma once

#include <cstdint>

namespace vmm::boot::setup_header {

inline constexpr uint64_t kSetupSects = 0x1F1;  // the header starts here
inline constexpr uint64_t kBootFlag = 0x1FE;
inline constexpr uint64_t kJump = 0x200;
inline constexpr uint64_t kHeaderMagic = 0x202;  // "HdrS"
inline constexpr uint64_t kVersion = 0x206;
inline constexpr uint64_t kTypeOfLoader = 0x210;
inline constexpr uint64_t kLoadFlags = 0x211;
inline constexpr uint64_t kRamdiskImage = 0x218;
inline constexpr uint64_t kRamdiskSize = 0x21C;
inline constexpr uint64_t kHeapEndPtr = 0x224;
inline constexpr uint64_t kCmdLinePtr = 0x228;
inline constexpr uint64_t kInitrdAddrMax = 0x22C;
inline constexpr uint64_t kKernelAlignment = 0x230;
inline constexpr uint64_t kRelocatable = 0x234;
inline constexpr uint64_t kXLoadFlags = 0x236;
inline constexpr uint64_t kCmdlineSize = 0x238;
inline constexpr uint64_t kPayloadOffset = 0x248;
inline constexpr uint64_t kPayloadLength = 0x24C;
inline constexpr uint64_t kPrefAddress = 0x258;
inline constexpr uint64_t kInitSize = 0x260;

// loadflags bits.
inline constexpr uint8_t kLoadedHigh = 0x01;
inline constexpr uint8_t kCanUseHeap = 0x80;

}  // namespace vmm::boot::setup_header
