// Linux bzImage per Documentation/arch/x86/boot.rst. We use the 64-bit boot protocol: the
// protected-mode kernel is loaded as is and entered at load address + 0x200 in long mode,
// so the real-mode setup code is never run.
#include <elf.h>

#include <algorithm>
#include <cstring>

#include "base/bytes.h"
#include "vmm/contract/layout.h"
#include "vmm/formats/kernel/kernel_image.h"
#include "vmm/formats/kernel/setup_header.h"

namespace vmm::boot {
namespace {

using namespace setup_header;  // the field offsets

constexpr uint64_t kSetupHeaderLimit = 0x290;

constexpr uint16_t kXlfKernel64 = 0x01;
constexpr uint16_t kMinVersion = 0x020C;  // 2.12 introduced xloadflags
constexpr uint64_t kEntry64Offset = 0x200;

Error Bad(const std::string& why) { return InvalidArgument("not a bootable bzImage: " + why); }

}  // namespace

Result<KernelImage> ParseBzImage(std::span<const uint8_t> file) {
  if (file.size() < kInitSize + 4) return Bad("file too short for a setup header");
  if (LoadLe<uint16_t>(file, kBootFlag) != 0xAA55) return Bad("no boot flag 0xAA55");
  if (std::memcmp(file.data() + kHeaderMagic, "HdrS", 4) != 0) return Bad("no \"HdrS\" header");
  uint16_t version = *LoadLe<uint16_t>(file, kVersion);
  if (version < kMinVersion) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "boot protocol %u.%u is older than 2.12", version >> 8,
                  version & 0xFF);
    return Bad(buf);
  }
  if (!(*LoadLe<uint8_t>(file, kLoadFlags) & kLoadedHigh)) return Bad("not a bzImage (zImage)");
  if (!(*LoadLe<uint16_t>(file, kXLoadFlags) & kXlfKernel64)) {
    return Bad("kernel has no 64-bit entry point (XLF_KERNEL_64)");
  }
  uint64_t setup_sects = *LoadLe<uint8_t>(file, kSetupSects);
  if (setup_sects == 0) setup_sects = 4;  // boot.rst: 0 means 4
  uint64_t kernel_offset = (setup_sects + 1) * 512;
  if (kernel_offset + kEntry64Offset >= file.size()) {
    return Bad("protected-mode kernel missing or shorter than its 64-bit entry offset");
  }
  uint64_t kernel_size = file.size() - kernel_offset;

  KernelImage image{};
  image.protocol = BootProtocol::kLinux64;
  image.boot_protocol_version = version;
  uint64_t load = x86::kKernelLoadAddr;
  uint32_t alignment = *LoadLe<uint32_t>(file, kKernelAlignment);
  uint64_t pref = *LoadLe<uint64_t>(file, kPrefAddress);
  // A relocatable kernel prefers its own address (aligned as it asks); others load at 1 MiB.
  if (*LoadLe<uint8_t>(file, kRelocatable) != 0 && pref >= x86::kHighMemStart &&
      pref < x86::kMmioHoleStart && (alignment == 0 || pref % alignment == 0)) {
    load = pref;
  }
  uint64_t init_size = *LoadLe<uint32_t>(file, kInitSize);
  image.entry = load + kEntry64Offset;
  image.segments.push_back({load, kernel_offset, kernel_size, kernel_size});
  image.lowest_gpa = load;
  image.highest_gpa = load + std::max(kernel_size, init_size);
  uint32_t cmdline_size = *LoadLe<uint32_t>(file, kCmdlineSize);
  image.cmdline_max = cmdline_size == 0 ? 255 : std::min<uint32_t>(cmdline_size, 0xFFFF);
  image.initrd_addr_max = *LoadLe<uint32_t>(file, kInitrdAddrMax);
  uint64_t payload_offset = kernel_offset + *LoadLe<uint32_t>(file, kPayloadOffset);
  uint64_t payload_length = *LoadLe<uint32_t>(file, kPayloadLength);
  if (payload_length != 0 && InBounds(file.size(), payload_offset, payload_length)) {
    image.payload_offset = payload_offset;
    image.payload_length = payload_length;
  }
  // The header's own length is in the byte after the jump instruction (0x201).
  uint64_t header_end = kJump + 2 + *LoadLe<uint8_t>(file, kJump + 1);
  header_end = std::min<uint64_t>(header_end, kSetupHeaderLimit);  // boot_params.hdr ends here
  header_end = std::min<uint64_t>(header_end, file.size());
  header_end = std::max<uint64_t>(header_end, kInitSize + 4);
  image.setup_header.assign(file.begin() + kSetupSects, file.begin() + header_end);
  return image;
}

const char* ProtocolName(BootProtocol protocol) {
  return protocol == BootProtocol::kPvh ? "pvh" : "linux64";
}

std::string FormatName(const KernelImage& image) {
  if (image.protocol == BootProtocol::kPvh) {
    const char* machine = image.elf_machine == EM_386 ? "i386" : "x86_64";
    return "ELF" + std::to_string(image.elf_class) + " " + machine + " with a Xen PVH entry note";
  }
  return "bzImage, boot protocol " + std::to_string(image.boot_protocol_version >> 8) + "." +
         std::to_string(image.boot_protocol_version & 0xFF);
}

Result<KernelImage> ParseKernelImage(std::span<const uint8_t> file) {
  if (file.size() >= 4 && std::memcmp(file.data(),
                                      "\x7f"
                                      "ELF",
                                      4) == 0)
    return ParsePvhElf(file);
  if (file.size() > kHeaderMagic + 4 && std::memcmp(file.data() + kHeaderMagic, "HdrS", 4) == 0) {
    return ParseBzImage(file);
  }
  return InvalidArgument(
      "not a kernel this VMM can boot: expected a PVH ELF (e.g. vmlinux) or a bzImage");
}

}  // namespace vmm::boot
