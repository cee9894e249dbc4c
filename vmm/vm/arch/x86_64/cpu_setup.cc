#include "vmm/vm/arch/x86_64/cpu_setup.h"

#include "vmm/contract/layout.h"

namespace vmm::x86 {
namespace {

constexpr uint32_t kCpuid1EcxCx16 = 1u << 13;
constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;
constexpr uint32_t kCpuid1EdxHtt = 1u << 28;

constexpr uint32_t kMsrIa32MiscEnable = 0x1A0;
constexpr uint32_t kMsrMtrrDefType = 0x2FF;
constexpr uint64_t kMiscEnableFastStrings = 1;
constexpr uint64_t kMtrrEnableWriteBack = (1u << 11) | 6;  // MTRRs on, default type WB

constexpr uint32_t kApicLvtLint0 = 0x350;
constexpr uint32_t kApicLvtLint1 = 0x360;
constexpr uint32_t kApicModeExtInt = 0x7;
constexpr uint32_t kApicModeNmi = 0x4;

constexpr uint64_t kCr0Pe = 1, kCr0Et = 1u << 4, kCr0Pg = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5;
constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;

// Flat descriptors: base 0, limit 4 GiB. Access bytes per the SDM vol. 3 section 3.4.5.
constexpr uint64_t kGdt[] = {
    0,                      // null
    0x00CF9B000000FFFFull,  // 0x08: 32-bit code, execute/read, accessed
    0x00AF9B000000FFFFull,  // 0x10: 64-bit code (L=1)
    0x00CF93000000FFFFull,  // 0x18: data, read/write, accessed
    0x00008B0000000067ull,  // 0x20: 32-bit TSS, busy, base 0, limit 0x67 (PVH asks for this)
};

kvm_segment SegmentFromDescriptor(uint64_t d, uint16_t selector) {
  kvm_segment s{};
  s.base = ((d >> 16) & 0xFFFFFF) | ((d >> 56) << 24);
  uint32_t limit = static_cast<uint32_t>((d & 0xFFFF) | ((d >> 32) & 0xF0000));
  s.g = (d >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xFFF : limit;
  s.selector = selector;
  s.type = (d >> 40) & 0xF;
  s.s = (d >> 44) & 1;
  s.dpl = (d >> 45) & 3;
  s.present = (d >> 47) & 1;
  s.avl = (d >> 52) & 1;
  s.l = (d >> 53) & 1;
  s.db = (d >> 54) & 1;
  return s;
}

Result<void> WriteIdentityPageTables(GuestMemory& mem) {
  // PML4[0] -> PDPT; PDPT[0..3] -> four PDs of 2 MiB pages: 0..4 GiB, enough to reach the
  // LAPIC and IOAPIC. The kernel builds its own tables right after entry.
  RETURN_IF_ERROR(mem.Fill(kBootPml4Addr, 0x1000, 0));
  RETURN_IF_ERROR(mem.Fill(kBootPdptAddr, 0x1000, 0));
  RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kBootPml4Addr, kBootPdptAddr | 0x3));
  for (uint64_t i = 0; i < kBootPdCount; ++i) {
    uint64_t pd = kBootPdAddr + i * 0x1000;
    RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kBootPdptAddr + i * 8, pd | 0x3));
    for (uint64_t j = 0; j < 512; ++j) {
      uint64_t phys = (i << 30) | (j << 21);
      RETURN_IF_ERROR(mem.WriteObj<uint64_t>(pd + j * 8, phys | 0x83));  // present, rw, 2M
    }
  }
  return Ok();
}

}  // namespace

std::vector<kvm_cpuid_entry2> BuildCpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                         uint32_t index, uint32_t num_cpus, kvm::KvmFlavor flavor) {
  std::vector<kvm_cpuid_entry2> out = supported;
  for (kvm_cpuid_entry2& e : out) {
    switch (e.function) {
      case 1:
        e.ecx |= kCpuid1EcxHypervisor;
        if (flavor == kvm::KvmFlavor::kPvm) e.ecx &= ~kCpuid1EcxCx16;
        // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
        e.ebx = (e.ebx & 0xFFFF) | (index << 24) | ((num_cpus & 0xFF) << 16);
        if (num_cpus > 1) e.edx |= kCpuid1EdxHtt;
        break;
      case 0xB:
      case 0x1F:
        e.edx = index;  // x2APIC ID, for every topology level
        break;
      default:
        break;
    }
  }
  return out;
}

Result<void> SetupVcpuCommon(kvm::KvmVcpu& vcpu, const std::vector<kvm_cpuid_entry2>& cpuid) {
  RETURN_IF_ERROR(vcpu.SetCpuid(cpuid));
  std::vector<kvm_msr_entry> msrs(2);
  msrs[0].index = kMsrIa32MiscEnable;
  msrs[0].data = kMiscEnableFastStrings;
  msrs[1].index = kMsrMtrrDefType;
  msrs[1].data = kMtrrEnableWriteBack;
  RETURN_IF_ERROR(vcpu.SetMsrs(msrs));

  // LINT0 delivers the legacy PIC's ExtINT, LINT1 the NMI, as a PC's firmware programs them.
  ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  auto set_mode = [&](uint32_t reg, uint32_t mode) {
    uint32_t v;
    std::memcpy(&v, &lapic.regs[reg], 4);
    v = (v & ~0x700u) | (mode << 8);
    std::memcpy(&lapic.regs[reg], &v, 4);
  };
  set_mode(kApicLvtLint0, kApicModeExtInt);
  set_mode(kApicLvtLint1, kApicModeNmi);
  return vcpu.SetLapic(lapic);
}

Result<void> SetupBootCpuRegisters(kvm::KvmVcpu& vcpu, GuestMemory& mem,
                                   boot::BootProtocol protocol, uint64_t entry,
                                   uint64_t boot_data_gpa) {
  RETURN_IF_ERROR(
      mem.Write(kBootGdtAddr,
                std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kGdt), sizeof(kGdt))));
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  sregs.gdt.base = kBootGdtAddr;
  sregs.gdt.limit = sizeof(kGdt) - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  bool long_mode = protocol == boot::BootProtocol::kLinux64;
  uint16_t cs_sel = long_mode ? kSelCode64 : kSelCode32;
  sregs.cs = SegmentFromDescriptor(kGdt[cs_sel / 8], cs_sel);
  kvm_segment data = SegmentFromDescriptor(kGdt[kSelData / 8], kSelData);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = SegmentFromDescriptor(kGdt[kSelTss / 8], kSelTss);
  sregs.cr0 = kCr0Pe | kCr0Et;
  sregs.cr4 = 0;
  sregs.efer = 0;
  if (long_mode) {
    RETURN_IF_ERROR(WriteIdentityPageTables(mem));
    sregs.cr3 = kBootPml4Addr;
    sregs.cr4 = kCr4Pae;
    sregs.cr0 |= kCr0Pg;
    sregs.efer = kEferLme | kEferLma;
  }
  RETURN_IF_ERROR(vcpu.SetSregs(sregs));

  kvm_regs regs{};
  regs.rflags = 0x2;  // bit 1 is reserved and always set
  regs.rip = entry;
  if (long_mode) {
    regs.rsi = boot_data_gpa;
  } else {
    regs.rbx = boot_data_gpa;
  }
  RETURN_IF_ERROR(vcpu.SetRegs(regs));

  kvm_fpu fpu{};
  fpu.fcw = 0x37F;     // x87 default control word (FNINIT)
  fpu.mxcsr = 0x1F80;  // SSE default: all exceptions masked
  return vcpu.SetFpu(fpu);
}

}  // namespace vmm::x86
