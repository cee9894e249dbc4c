#include "vmm/vm/machine/boot_plan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include "base/hex.h"
#include "vmm/contract/layout.h"
#include "vmm/vm/boot/boot_params.h"
#include "vmm/vm/compat/kvm_pvm/kernel_parameters.h"
#include "vmm/vm/compat/kvm_pvm/pvm_compat.h"

namespace vmm {

static_assert(kMinSpecMemory == x86::kMinMemory,
              "the VM spec admits the memory a VM can boot with");

namespace {

constexpr uint64_t kMaxKernelBytes = 512ull << 20;

}  // namespace

Result<std::vector<uint8_t>> ReadFileLimited(const std::string& path, uint64_t max_bytes,
                                             const std::string& what) {
  // O_NONBLOCK: open(2) of a FIFO waits for a writer, --dry-run or not; this way it
  // returns at once and the check below refuses it. Reads of a regular file ignore it.
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    return Error(ErrorKind::kInvalidArgument, what + " '" + path + "' cannot be opened", errno);
  }
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return ErrnoError("stat of " + what + " '" + path + "'");
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument(what + " '" + path + "' is not a regular file");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return InvalidArgument(what + " '" + path + "' is empty");
  if (size > max_bytes) {
    return InvalidArgument(what + " '" + path + "' is " + std::to_string(size >> 20) +
                           " MiB, more than the " + std::to_string(max_bytes >> 20) +
                           " MiB allowed");
  }
  std::vector<uint8_t> bytes(size);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd.get(), bytes.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("reading " + what + " '" + path + "'");
    if (n == 0) return InvalidArgument(what + " '" + path + "' shrank while being read");
    done += static_cast<uint64_t>(n);
  }
  return bytes;
}

Result<BootPlan> PlanBoot(const VmSpec& cfg, kvm::KvmFlavor flavor) {
  BootPlan plan;
  ASSIGN_OR_RETURN(plan.kernel_bytes, ReadFileLimited(cfg.kernel, kMaxKernelBytes, "--kernel"));
  auto image = boot::ParseKernelImage(plan.kernel_bytes);
  if (!image) return image.error().Wrap("kernel '" + cfg.kernel + "'");
  plan.image = std::move(image).value();

  plan.memory_map = x86::BuildMemoryMap(GuestMemory::Layout(cfg.memory));
  uint64_t low_end = x86::LowRamEnd(plan.memory_map);
  const boot::KernelImage& img = plan.image;
  if (img.lowest_gpa < x86::kHighMemStart) {
    return InvalidArgument("kernel '" + cfg.kernel + "' wants to load at " + Hex(img.lowest_gpa) +
                           ", below 1 MiB where the boot data lives");
  }
  if (img.highest_gpa > low_end) {
    return InvalidArgument("kernel '" + cfg.kernel + "' needs memory up to " +
                           Hex(img.highest_gpa) + " but the VM's low RAM ends at " + Hex(low_end) +
                           ": give the VM more --memory");
  }

  plan.kvm_compat = compat::pvm::Active(cfg.kvm_compat, flavor);
  if (cfg.kvm_compat != KvmCompat::kAuto) {
    plan.kvm_compat_why = std::string("--kvm-compat ") + KvmCompatName(cfg.kvm_compat);
  } else {
    plan.kvm_compat_why =
        std::string("--kvm-compat auto, the host's KVM is ") + kvm::FlavorName(flavor);
  }
  plan.cmdline = cfg.cmdline;
  if (plan.kvm_compat) {
    compat::pvm::KernelParameterPlan params = compat::pvm::AddKernelParameters(cfg.cmdline);
    plan.cmdline = std::move(params.cmdline);
    plan.kvm_compat_added = std::move(params.added);
    plan.kvm_compat_left_out = std::move(params.left_out);
  }
  if (plan.cmdline.size() > img.cmdline_max) {
    return InvalidArgument("--cmdline: " + std::to_string(plan.cmdline.size()) + " bytes" +
                           (plan.kvm_compat ? " with the kvm_pvm compatibility parameters" : "") +
                           " is longer than the kernel accepts (" +
                           std::to_string(img.cmdline_max) + ")");
  }

  if (!cfg.initramfs.empty()) {
    ASSIGN_OR_RETURN(plan.initrd_bytes, ReadFileLimited(cfg.initramfs, cfg.memory, "--initramfs"));
    // Highest page-aligned place below both the end of low RAM and the kernel's limit,
    // as boot loaders do, keeping it clear of the kernel's decompression area.
    uint64_t limit = std::min<uint64_t>(low_end, uint64_t{img.initrd_addr_max} + 1);
    uint64_t size = plan.initrd_bytes.size();
    if (size > limit || ((limit - size) & ~uint64_t{0xFFF}) < img.highest_gpa) {
      return InvalidArgument("initramfs '" + cfg.initramfs + "' (" + std::to_string(size >> 20) +
                             " MiB) does not fit beside the kernel: give the VM more --memory");
    }
    plan.initrd_gpa = (limit - size) & ~uint64_t{0xFFF};
  }
  plan.boot_data_gpa =
      img.protocol == boot::BootProtocol::kPvh ? x86::kPvhStartInfoAddr : x86::kZeroPageAddr;
  return plan;
}

Result<void> LoadBootPlan(const BootPlan& plan, GuestMemory& mem, uint64_t rsdp_gpa) {
  std::span<const uint8_t> file(plan.kernel_bytes);
  for (const boot::LoadSegment& s : plan.image.segments) {
    RETURN_IF_ERROR(mem.Write(s.gpa, file.subspan(s.file_offset, s.file_size)));
    RETURN_IF_ERROR(mem.Fill(s.gpa + s.file_size, s.mem_size - s.file_size, 0));
  }
  if (!plan.initrd_bytes.empty()) RETURN_IF_ERROR(mem.Write(plan.initrd_gpa, plan.initrd_bytes));
  std::vector<uint8_t> cmdline(plan.cmdline.begin(), plan.cmdline.end());
  cmdline.push_back(0);
  RETURN_IF_ERROR(mem.Write(x86::kCmdlineAddr, cmdline));

  boot::BootInfo info;
  info.memory_map = plan.memory_map;
  info.cmdline_gpa = x86::kCmdlineAddr;
  info.cmdline_len = static_cast<uint32_t>(plan.cmdline.size());
  info.initrd_gpa = plan.initrd_gpa;
  info.initrd_size = plan.initrd_bytes.size();
  info.rsdp_gpa = rsdp_gpa;
  std::vector<uint8_t> data;
  if (plan.image.protocol == boot::BootProtocol::kPvh) {
    ASSIGN_OR_RETURN(data, boot::BuildPvhStartInfo(info, plan.boot_data_gpa));
  } else {
    ASSIGN_OR_RETURN(data, boot::BuildZeroPage(plan.image, info));
  }
  return mem.Write(plan.boot_data_gpa, data);
}

std::string DescribeBootPlan(const BootPlan& plan) {
  const boot::KernelImage& img = plan.image;
  std::string s;
  s += "boot protocol: " + std::string(boot::ProtocolName(img.protocol)) + "\n";
  s += "kernel format: " + boot::FormatName(img) + "\n";
  s += "kernel: " + Hex(img.lowest_gpa) + ".." + Hex(img.highest_gpa) + ", entry " +
       Hex(img.entry) + "\n";
  if (!plan.initrd_bytes.empty()) {
    s += "initramfs: " + Hex(plan.initrd_gpa) + " (" + std::to_string(plan.initrd_bytes.size()) +
         " bytes)\n";
  }
  s += "command line: \"" + plan.cmdline + "\"\n";
  s += "kvm_pvm compatibility: " + std::string(plan.kvm_compat ? "on" : "off") + " (" +
       plan.kvm_compat_why + ")";
  if (plan.kvm_compat) {
    auto join = [](const std::vector<std::string>& words) {
      std::string j;
      for (const std::string& w : words) j += (j.empty() ? "" : " ") + w;
      return j;
    };
    s += plan.kvm_compat_added.empty()
             ? ", adds nothing to the command line"
             : ", adds \"" + join(plan.kvm_compat_added) + "\" to the command line";
    if (!plan.kvm_compat_left_out.empty()) {
      s += "; leaves out \"" + join(plan.kvm_compat_left_out) +
           "\" (the command line sets the same keys)";
    }
  }
  s += "\n";
  s += "memory map:\n";
  for (const x86::E820Entry& e : plan.memory_map) {
    s += "  " + Hex(e.addr) + ".." + Hex(e.addr + e.size) +
         (e.type == x86::kE820Ram ? " ram\n" : " reserved\n");
  }
  return s;
}

Result<acpi::AcpiTables> BuildPlatformAcpi(uint32_t cpus, bool tpm, size_t virtio_devices,
                                           bool event_log) {
  acpi::PlatformDescription platform{};
  platform.num_cpus = cpus;
  platform.tpm = tpm;
  if (tpm && event_log) {
    platform.tpm_log_min_length = static_cast<uint32_t>(x86::kTpmEventLogSize);
    platform.tpm_log_start = x86::kTpmEventLogAddr;
  }
  for (size_t i = 0; i < virtio_devices; ++i) {
    platform.virtio_mmio.push_back({static_cast<uint32_t>(x86::VirtioMmioBase(i)),
                                    static_cast<uint32_t>(x86::kVirtioMmioSize),
                                    x86::VirtioMmioGsi(i)});
  }
  return acpi::BuildAcpiTables(platform, x86::kAcpiTablesAddr);
}

}  // namespace vmm
