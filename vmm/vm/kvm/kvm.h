// Thin, owning wrappers over the KVM ioctl API: the system fd, a VM fd and vCPU fds.
//
//   ASSIGN_OR_RETURN(Kvm kvm, Kvm::Open());
//   ASSIGN_OR_RETURN(KvmVm vm, kvm.CreateVm());
//   ASSIGN_OR_RETURN(KvmVcpu vcpu, vm.CreateVcpu(0, kvm.vcpu_mmap_size()));
//
// Each object owns its fd; a KvmVcpu also owns the mapping of its kvm_run page.
// Nothing here knows about devices or boot protocols.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm::kvm {

// Which KVM implementation backs /dev/kvm. kvm_pvm (a software-assisted KVM with no
// VMX/SVM) needs guest-visible workarounds; see ARCHITECTURE.md §5.
enum class KvmFlavor { kHardware, kPvm };
const char* FlavorName(KvmFlavor flavor);
// From /sys/module, without opening /dev/kvm (what Kvm::Open records too).
KvmFlavor DetectFlavor();

class KvmVm;

class Kvm {
 public:
  // Opens /dev/kvm (or `path`) and checks the API version and the capabilities we rely on.
  static Result<Kvm> Open(const std::string& path = "/dev/kvm");
  // The same checks on an fd of /dev/kvm opened by someone else (the VM process's, opened by
  // the manager: its own user may not be allowed to open /dev/kvm, ARCHITECTURE.md §1).
  static Result<Kvm> FromFd(UniqueFd fd);

  int fd() const { return fd_.get(); }
  size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  KvmFlavor flavor() const { return flavor_; }
  int CheckExtension(long cap) const;  // 0 when absent
  int MaxVcpus() const;
  Result<std::vector<kvm_cpuid_entry2>> GetSupportedCpuid() const;
  Result<KvmVm> CreateVm() const;

 private:
  UniqueFd fd_;
  size_t vcpu_mmap_size_ = 0;
  KvmFlavor flavor_ = KvmFlavor::kHardware;
};

class KvmVcpu;

class KvmVm {
 public:
  explicit KvmVm(UniqueFd fd) : fd_(std::move(fd)) {}
  int fd() const { return fd_.get(); }

  // x86 VM set-up: TSS and identity-map pages (VMX needs them), in-kernel IOAPIC/PIC/LAPIC
  // and PIT.
  Result<void> SetupX86Platform();
  Result<void> SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size,
                                   void* host_addr);
  Result<void> SetIrqLine(uint32_t gsi, bool level);
  // KVM_ENABLE_CAP on the VM with args[0] = arg0.
  Result<void> EnableCap(uint32_t cap, uint64_t arg0);
  // KVM_IOEVENTFD: a guest MMIO write of `len` bytes equal to `datamatch` at `addr`
  // signals `fd` inside KVM, without an exit to us.
  Result<void> AddIoeventfd(uint64_t addr, uint32_t len, uint64_t datamatch, int fd);
  // KVM_IRQFD: a write to `fd` raises `gsi` (edge) inside KVM.
  Result<void> AddIrqfd(int fd, uint32_t gsi);
  // KVM_X86_SET_MSR_FILTER (Linux 5.10).
  Result<void> SetMsrFilter(const kvm_msr_filter& filter);
  Result<KvmVcpu> CreateVcpu(uint32_t id, size_t mmap_size);

 private:
  Result<void> SetupGsiRouting();
  UniqueFd fd_;
};

class KvmVcpu {
 public:
  KvmVcpu(uint32_t id, UniqueFd fd, kvm_run* run, size_t mmap_size)
      : id_(id), fd_(std::move(fd)), run_(run), mmap_size_(mmap_size) {}
  ~KvmVcpu();
  KvmVcpu(KvmVcpu&& other) noexcept;
  KvmVcpu& operator=(KvmVcpu&&) = delete;
  KvmVcpu(const KvmVcpu&) = delete;

  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  kvm_run* run_page() { return run_; }
  // The whole kvm_run mapping, KVM_GET_VCPU_MMAP_SIZE bytes (port I/O data lies past
  // kvm_run, inside it).
  std::span<uint8_t> run_mapping() { return {reinterpret_cast<uint8_t*>(run_), mmap_size_}; }

  // One KVM_RUN. Returns an Error with errno EINTR when interrupted by a signal.
  Result<void> Run();
  Result<kvm_regs> GetRegs() const;
  Result<void> SetRegs(const kvm_regs& regs);
  Result<kvm_sregs> GetSregs() const;
  Result<void> SetSregs(const kvm_sregs& sregs);
  Result<void> SetCpuid(const std::vector<kvm_cpuid_entry2>& entries);
  Result<void> SetMsrs(const std::vector<kvm_msr_entry>& msrs);
  // The values of `indices`, in that order; an Error names an MSR KVM did not return.
  Result<std::vector<uint64_t>> GetMsrs(const std::vector<uint32_t>& indices) const;
  // KVM_SET_GUEST_DEBUG: hardware breakpoints (DR0-3, DR7) that exit as KVM_EXIT_DEBUG.
  Result<void> SetGuestDebug(const kvm_guest_debug& debug);
  Result<kvm_fpu> GetFpu() const;
  // The legacy 4 KiB XSAVE area (KVM_GET_XSAVE / KVM_SET_XSAVE); an out-parameter because
  // of its size.
  Result<void> GetXsave(kvm_xsave& out) const;
  Result<void> SetXsave(const kvm_xsave& xsave);
  Result<void> SetFpu(const kvm_fpu& fpu);
  Result<kvm_vcpu_events> GetVcpuEvents() const;
  Result<void> SetVcpuEvents(const kvm_vcpu_events& events);
  Result<kvm_lapic_state> GetLapic() const;
  Result<void> SetLapic(const kvm_lapic_state& state);

 private:
  uint32_t id_;
  UniqueFd fd_;
  kvm_run* run_;
  size_t mmap_size_;
};

// "rip=... rsp=... cr0=..." for error reports.
std::string DescribeRegisters(const KvmVcpu& vcpu);

}  // namespace vmm::kvm
