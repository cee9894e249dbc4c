#include "vmm/vm/kvm/kvm.h"

#include "base/kvm_abi.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

namespace vmm::kvm {
namespace {

// Addresses KVM needs on Intel for the real-mode TSS and the EPT identity map; placed in
// the top of the 32-bit MMIO hole, below the BIOS area, where no device lives.
constexpr uint64_t kTssAddr = 0xFFFBD000;
constexpr uint64_t kIdentityMapAddr = 0xFFFBC000;

Error KvmError(const std::string& what) { return Error(ErrorKind::kKvm, what, errno); }

bool PathExists(const char* path) { return access(path, F_OK) == 0; }

}  // namespace

KvmFlavor DetectFlavor() {
  // kvm_pvm registers as a module of its own; on VMX/SVM hosts kvm_intel or kvm_amd is loaded.
  if (PathExists("/sys/module/kvm_pvm") && !PathExists("/sys/module/kvm_intel") &&
      !PathExists("/sys/module/kvm_amd")) {
    return KvmFlavor::kPvm;
  }
  return KvmFlavor::kHardware;
}

const char* FlavorName(KvmFlavor flavor) {
  return flavor == KvmFlavor::kPvm ? "kvm_pvm" : "hardware";
}

Result<Kvm> Kvm::Open(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    int err = errno;
    if (err == ENOENT) {
      return Error(ErrorKind::kUnsupported,
                   path +
                       " does not exist: this host offers no KVM (is the kvm module loaded, "
                       "and are hardware virtualization extensions enabled?)");
    }
    return Error(ErrorKind::kSystem, "cannot open " + path, err);
  }
  return FromFd(std::move(fd));
}

Result<Kvm> Kvm::FromFd(UniqueFd fd) {
  Kvm kvm;
  kvm.fd_ = std::move(fd);
  int version = ioctl(kvm.fd_.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return Error(ErrorKind::kUnsupported, "KVM API version " + std::to_string(version) +
                                              " is not the expected " +
                                              std::to_string(KVM_API_VERSION));
  }
  for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_USER_MEMORY, KVM_CAP_SET_TSS_ADDR, KVM_CAP_PIT2,
                   KVM_CAP_EXT_CPUID, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_IRQ_ROUTING}) {
    if (kvm.CheckExtension(cap) <= 0) {
      return Error(ErrorKind::kUnsupported,
                   "KVM lacks a required capability (KVM_CAP number " + std::to_string(cap) + ")");
    }
  }
  int size = ioctl(kvm.fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size < static_cast<int>(sizeof(kvm_run))) return KvmError("KVM_GET_VCPU_MMAP_SIZE");
  kvm.vcpu_mmap_size_ = static_cast<size_t>(size);
  kvm.flavor_ = DetectFlavor();
  return kvm;
}

int Kvm::CheckExtension(long cap) const {
  int r = ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

int Kvm::MaxVcpus() const {
  int n = CheckExtension(KVM_CAP_MAX_VCPUS);
  if (n <= 0) n = CheckExtension(KVM_CAP_NR_VCPUS);
  return n > 0 ? n : 1;
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::GetSupportedCpuid() const {
  // The kernel answers E2BIG until the buffer is large enough.
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    std::vector<kvm_cpuid_entry2> room(n);
    std::vector<uint8_t> buf =
        FlexBuffer<KvmCpuid2Header, kvm_cpuid_entry2>(std::span<const kvm_cpuid_entry2>(room));
    if (ioctl(fd_.get(), kKvmGetSupportedCpuid, buf.data()) == 0) {
      return FlexEntries<KvmCpuid2Header, kvm_cpuid_entry2>(buf);
    }
    if (errno != E2BIG) return KvmError("KVM_GET_SUPPORTED_CPUID");
  }
  return Error(ErrorKind::kKvm, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<KvmVm> Kvm::CreateVm() const {
  UniqueFd vm(ioctl(fd_.get(), KVM_CREATE_VM, 0));
  if (!vm.valid()) return KvmError("KVM_CREATE_VM");
  return KvmVm(std::move(vm));
}

Result<void> KvmVm::SetupX86Platform() {
  if (ioctl(fd_.get(), KVM_SET_TSS_ADDR, kTssAddr) < 0) return KvmError("KVM_SET_TSS_ADDR");
  uint64_t identity = kIdentityMapAddr;
  if (ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
    return KvmError("KVM_SET_IDENTITY_MAP_ADDR");
  }
  if (ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) return KvmError("KVM_CREATE_IRQCHIP");
  RETURN_IF_ERROR(SetupGsiRouting());
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 reads work, no speaker emulation
  if (ioctl(fd_.get(), KVM_CREATE_PIT2, &pit) < 0) return KvmError("KVM_CREATE_PIT2");
  return Ok();
}

Result<void> KvmVm::SetupGsiRouting() {
  // As on a PC (and as QEMU routes it): the PIT's GSI 0 reaches IOAPIC pin 2, which the
  // MADT announces with an interrupt source override; ISA IRQs 1-15 reach the same-numbered
  // PIC and IOAPIC pins; GSIs 16-23 reach the IOAPIC only. KVM's default sends GSI 0 to pin 0.
  constexpr uint32_t kIoApicPins = 24;
  std::vector<kvm_irq_routing_entry> entries;
  auto add = [&](uint32_t gsi, uint32_t chip, uint32_t pin) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    entries.push_back(e);
  };
  for (uint32_t i = 0; i < 16; ++i) {
    if (i == 2) continue;  // the cascade
    add(i, i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
  }
  for (uint32_t i = 0; i < kIoApicPins; ++i) {
    if (i == 2) continue;
    add(i, KVM_IRQCHIP_IOAPIC, i == 0 ? 2 : i);
  }
  std::vector<uint8_t> buf = FlexBuffer<KvmIrqRoutingHeader, kvm_irq_routing_entry>(
      std::span<const kvm_irq_routing_entry>(entries));
  if (ioctl(fd_.get(), kKvmSetGsiRouting, buf.data()) < 0) return KvmError("KVM_SET_GSI_ROUTING");
  return Ok();
}

Result<void> KvmVm::SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size,
                                        void* host_addr) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.guest_phys_addr = guest_phys;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host_addr);
  if (ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    return KvmError("KVM_SET_USER_MEMORY_REGION");
  }
  return Ok();
}

Result<void> KvmVm::SetIrqLine(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) return KvmError("KVM_IRQ_LINE");
  return Ok();
}

Result<void> KvmVm::EnableCap(uint32_t cap, uint64_t arg0) {
  kvm_enable_cap c{};
  c.cap = cap;
  c.args[0] = arg0;
  if (ioctl(fd_.get(), KVM_ENABLE_CAP, &c) < 0) {
    return KvmError("KVM_ENABLE_CAP " + std::to_string(cap));
  }
  return Ok();
}

Result<void> KvmVm::AddIoeventfd(uint64_t addr, uint32_t len, uint64_t datamatch, int fd) {
  kvm_ioeventfd e{};
  e.addr = addr;
  e.len = len;
  e.fd = fd;
  e.datamatch = datamatch;
  e.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  if (ioctl(fd_.get(), KVM_IOEVENTFD, &e) < 0) return KvmError("KVM_IOEVENTFD");
  return Ok();
}

Result<void> KvmVm::AddIrqfd(int fd, uint32_t gsi) {
  kvm_irqfd i{};
  i.fd = static_cast<uint32_t>(fd);
  i.gsi = gsi;
  if (ioctl(fd_.get(), KVM_IRQFD, &i) < 0) return KvmError("KVM_IRQFD");
  return Ok();
}

Result<void> KvmVm::SetMsrFilter(const kvm_msr_filter& filter) {
  if (ioctl(fd_.get(), KVM_X86_SET_MSR_FILTER, &filter) < 0) {
    return KvmError("KVM_X86_SET_MSR_FILTER");
  }
  return Ok();
}

Result<KvmVcpu> KvmVm::CreateVcpu(uint32_t id, size_t mmap_size) {
  UniqueFd fd(ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
  if (!fd.valid()) return KvmError("KVM_CREATE_VCPU " + std::to_string(id));
  void* run = mmap(nullptr, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (run == MAP_FAILED) return ErrnoError("mmap of the kvm_run page");
  return KvmVcpu(id, std::move(fd), static_cast<kvm_run*>(run), mmap_size);
}

KvmVcpu::~KvmVcpu() {
  if (run_ != nullptr) munmap(run_, mmap_size_);
}

KvmVcpu::KvmVcpu(KvmVcpu&& other) noexcept
    : id_(other.id_),
      fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      mmap_size_(other.mmap_size_) {}

Result<void> KvmVcpu::Run() {
  if (ioctl(fd_.get(), KVM_RUN, 0) < 0) return KvmError("KVM_RUN");
  return Ok();
}

#define VCPU_GET(type, req)                                     \
  type value{};                                                 \
  if (ioctl(fd_.get(), req, &value) < 0) return KvmError(#req); \
  return value

#define VCPU_SET(req, ptr)                                   \
  if (ioctl(fd_.get(), req, ptr) < 0) return KvmError(#req); \
  return Ok()

Result<kvm_regs> KvmVcpu::GetRegs() const { VCPU_GET(kvm_regs, KVM_GET_REGS); }
Result<void> KvmVcpu::SetRegs(const kvm_regs& regs) { VCPU_SET(KVM_SET_REGS, &regs); }
Result<kvm_sregs> KvmVcpu::GetSregs() const { VCPU_GET(kvm_sregs, KVM_GET_SREGS); }
Result<void> KvmVcpu::SetSregs(const kvm_sregs& sregs) { VCPU_SET(KVM_SET_SREGS, &sregs); }
Result<kvm_fpu> KvmVcpu::GetFpu() const { VCPU_GET(kvm_fpu, KVM_GET_FPU); }
Result<void> KvmVcpu::SetFpu(const kvm_fpu& fpu) { VCPU_SET(KVM_SET_FPU, &fpu); }
Result<void> KvmVcpu::GetXsave(kvm_xsave& out) const { VCPU_SET(kKvmGetXsave, &out); }
Result<void> KvmVcpu::SetXsave(const kvm_xsave& xsave) { VCPU_SET(kKvmSetXsave, &xsave); }
Result<kvm_vcpu_events> KvmVcpu::GetVcpuEvents() const {
  VCPU_GET(kvm_vcpu_events, KVM_GET_VCPU_EVENTS);
}
Result<void> KvmVcpu::SetVcpuEvents(const kvm_vcpu_events& e) { VCPU_SET(KVM_SET_VCPU_EVENTS, &e); }
Result<kvm_lapic_state> KvmVcpu::GetLapic() const { VCPU_GET(kvm_lapic_state, KVM_GET_LAPIC); }
Result<void> KvmVcpu::SetLapic(const kvm_lapic_state& s) { VCPU_SET(KVM_SET_LAPIC, &s); }

Result<void> KvmVcpu::SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  std::vector<uint8_t> buf =
      FlexBuffer<KvmCpuid2Header, kvm_cpuid_entry2>(std::span<const kvm_cpuid_entry2>(entries));
  if (ioctl(fd_.get(), kKvmSetCpuid2, buf.data()) < 0) return KvmError("KVM_SET_CPUID2");
  return Ok();
}

// KVM_GET_MSRS / KVM_SET_MSRS over `entries`, which hold what KVM returned afterwards. Both
// return how many entries KVM processed: fewer than all is an error naming the first it did
// not (an MSR KVM does not know, or refuses to set).
namespace {

Result<void> MsrsIoctl(int fd, unsigned long request, const char* name,
                       std::vector<kvm_msr_entry>& entries) {
  std::vector<uint8_t> buf =
      FlexBuffer<KvmMsrsHeader, kvm_msr_entry>(std::span<const kvm_msr_entry>(entries));
  int n = ioctl(fd, request, buf.data());
  if (n < 0) return KvmError(name);
  if (static_cast<size_t>(n) != entries.size()) {
    return Error(ErrorKind::kKvm, std::string(name) + ": KVM did not process MSR index " +
                                      std::to_string(entries[static_cast<size_t>(n)].index));
  }
  entries = FlexEntries<KvmMsrsHeader, kvm_msr_entry>(buf);
  return Ok();
}

}  // namespace

Result<void> KvmVcpu::SetMsrs(const std::vector<kvm_msr_entry>& msrs) {
  std::vector<kvm_msr_entry> entries = msrs;
  return MsrsIoctl(fd_.get(), kKvmSetMsrs, "KVM_SET_MSRS", entries);
}

Result<std::vector<uint64_t>> KvmVcpu::GetMsrs(const std::vector<uint32_t>& indices) const {
  std::vector<kvm_msr_entry> entries;
  for (uint32_t index : indices) entries.push_back(kvm_msr_entry{index, 0, 0});
  RETURN_IF_ERROR(MsrsIoctl(fd_.get(), kKvmGetMsrs, "KVM_GET_MSRS", entries));
  std::vector<uint64_t> values;
  for (const kvm_msr_entry& e : entries) values.push_back(e.data);
  return values;
}

Result<void> KvmVcpu::SetGuestDebug(const kvm_guest_debug& debug) {
  VCPU_SET(KVM_SET_GUEST_DEBUG, &debug);
}

std::string DescribeRegisters(const KvmVcpu& vcpu) {
  auto regs = vcpu.GetRegs();
  auto sregs = vcpu.GetSregs();
  if (!regs || !sregs) return "(registers unavailable)";
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "rip=0x%" PRIx64 " rsp=0x%" PRIx64 " rflags=0x%" PRIx64 " rax=0x%" PRIx64
                " rbx=0x%" PRIx64 " rcx=0x%" PRIx64 " rdx=0x%" PRIx64 " rsi=0x%" PRIx64
                " rdi=0x%" PRIx64 " cs=0x%x cr0=0x%" PRIx64 " cr3=0x%" PRIx64 " cr4=0x%" PRIx64
                " efer=0x%" PRIx64,
                static_cast<uint64_t>(regs->rip), static_cast<uint64_t>(regs->rsp),
                static_cast<uint64_t>(regs->rflags), static_cast<uint64_t>(regs->rax),
                static_cast<uint64_t>(regs->rbx), static_cast<uint64_t>(regs->rcx),
                static_cast<uint64_t>(regs->rdx), static_cast<uint64_t>(regs->rsi),
                static_cast<uint64_t>(regs->rdi), sregs->cs.selector,
                static_cast<uint64_t>(sregs->cr0), static_cast<uint64_t>(sregs->cr3),
                static_cast<uint64_t>(sregs->cr4), static_cast<uint64_t>(sregs->efer));
  return buf;
}

}  // namespace vmm::kvm
