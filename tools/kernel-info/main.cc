// kernel-info FILE: prints, one "key=value" a line, what the VMM's boot parsers
// (vmm/formats/kernel/kernel_image.h) make of a kernel image, for scripts that would otherwise
// parse ELF notes and setup headers themselves.
//
//   $ kernel-info build/default-guest/vmlinux        $ kernel-info build/default-guest/vmlinuz
//   format=pvh-elf64                                 format=bzimage
//   entry=0x1000850                                  entry=0x1000200
//   pvh_entry=0x1000850                              protocol=2.15
//   first_load_vaddr=0xffffffff81000000              payload_offset=18369
//                                                    payload_length=7021480
//                                                    payload_format=lz4
//                                                    payload_output_size=43210240
//
// Keys: format (pvh-elf64, pvh-elf32 or bzimage) and entry (guest-physical, where the VMM
// enters it) always; a PVH ELF adds pvh_entry (the XEN_ELFNOTE_PHYS32_ENTRY note) and
// first_load_vaddr (p_vaddr of the first PT_LOAD, where a vmlinux's _text is); a bzImage
// adds protocol, and, when the setup header places a compressed kernel inside the file,
// payload_offset and payload_length (bytes in the file), payload_format (lz4, xz, zstd, gzip,
// bzip2, lzma or unknown, by its magic number) and payload_output_size (the little-endian
// 32-bit size the kernel's build appends to the payload: the decompressed length).
// Numbers in hex are 0x-prefixed lower case without leading zeros; the others are decimal.
// Exit status: 0; 1 when the file cannot be read; 2 on a usage error or when the file is no
// kernel the VMM can boot (the reason on stderr).
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "vmm/formats/kernel/kernel_image.h"

namespace {

constexpr char kProg[] = "kernel-info";

// The compressors Linux's arch/x86/boot/compressed/Makefile can use, by magic number.
const char* PayloadFormat(std::span<const uint8_t> payload) {
  struct Magic {
    const char* name;
    std::string_view bytes;
  };
  static constexpr Magic kMagics[] = {
      {"lz4", {"\x02\x21\x4c\x18", 4}},  {"xz", {"\xfd\x37\x7a\x58\x5a\x00", 6}},
      {"zstd", {"\x28\xb5\x2f\xfd", 4}}, {"gzip", {"\x1f\x8b\x08", 3}},
      {"bzip2", {"\x42\x5a\x68", 3}},    {"lzma", {"\x5d\x00\x00", 3}},
  };
  for (const Magic& m : kMagics) {
    if (payload.size() >= m.bytes.size() &&
        std::memcmp(payload.data(), m.bytes.data(), m.bytes.size()) == 0) {
      return m.name;
    }
  }
  return "unknown";
}

// The whole file (a directory cannot be read either).
vmm::Result<std::vector<uint8_t>> ReadFile(const char* path) {
  std::FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return vmm::ErrnoError("cannot read");
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  if (std::ferror(f)) {
    vmm::Error error = vmm::ErrnoError("cannot read");
    std::fclose(f);
    return error;
  }
  std::fclose(f);
  return bytes;
}

void Print(const vmm::boot::KernelImage& image, std::span<const uint8_t> file) {
  using vmm::boot::BootProtocol;
  if (image.protocol == BootProtocol::kPvh) {
    std::printf("format=pvh-elf%u\n", static_cast<unsigned>(image.elf_class));
    std::printf("entry=0x%" PRIx64 "\n", image.entry);
    std::printf("pvh_entry=0x%" PRIx64 "\n", image.entry);
    std::printf("first_load_vaddr=0x%" PRIx64 "\n", image.first_load_vaddr);
    return;
  }
  std::printf("format=bzimage\n");
  std::printf("entry=0x%" PRIx64 "\n", image.entry);
  std::printf("protocol=%u.%u\n", image.boot_protocol_version >> 8u,
              image.boot_protocol_version & 0xFFu);
  if (image.payload_length == 0) return;
  auto payload = file.subspan(image.payload_offset, image.payload_length);
  std::printf("payload_offset=%" PRIu64 "\n", image.payload_offset);
  std::printf("payload_length=%" PRIu64 "\n", image.payload_length);
  std::printf("payload_format=%s\n", PayloadFormat(payload));
  if (payload.size() >= 4) {
    std::printf("payload_output_size=%" PRIu32 "\n",
                *vmm::LoadLe<uint32_t>(payload, payload.size() - 4));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0)) {
    std::printf(
        "Usage: %s FILE\nPrints what FILE is as a kernel image (PVH ELF or bzImage), "
        "one key=value a line.\n",
        kProg);
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr, "%s: usage: %s FILE\n", kProg, kProg);
    return 2;
  }
  const char* path = argv[1];
  auto file = ReadFile(path);
  if (!file.has_value()) {
    std::fprintf(stderr, "%s: %s: %s\n", kProg, path, file.error().ToString().c_str());
    return 1;
  }
  auto image = vmm::boot::ParseKernelImage(*file);
  if (!image.has_value()) {
    std::fprintf(stderr, "%s: %s: %s\n", kProg, path, image.error().message().c_str());
    return 2;
  }
  Print(*image, *file);
  return std::fflush(stdout) == 0 ? 0 : 1;
}
