#include "vmm/vm/compat/kvm_pvm/kvm_state.h"

#include <cstring>

namespace vmm::compat::pvm {

VcpuState FromKvm(const kvm_regs& regs, const kvm_sregs& sregs) {
  VcpuState s;
  s.gpr[kRax] = regs.rax;
  s.gpr[kRcx] = regs.rcx;
  s.gpr[kRdx] = regs.rdx;
  s.gpr[kRbx] = regs.rbx;
  s.gpr[kRsp] = regs.rsp;
  s.gpr[kRbp] = regs.rbp;
  s.gpr[kRsi] = regs.rsi;
  s.gpr[kRdi] = regs.rdi;
  s.gpr[kR8] = regs.r8;
  s.gpr[kR9] = regs.r9;
  s.gpr[kR10] = regs.r10;
  s.gpr[kR11] = regs.r11;
  s.gpr[kR12] = regs.r12;
  s.gpr[kR13] = regs.r13;
  s.gpr[kR14] = regs.r14;
  s.gpr[kR15] = regs.r15;
  s.rip = regs.rip;
  s.rflags = regs.rflags;
  s.cr0 = sregs.cr0;
  s.cr2 = sregs.cr2;
  s.cr3 = sregs.cr3;
  s.cr4 = sregs.cr4;
  s.efer = sregs.efer;
  s.cpl = sregs.ss.dpl & 3;
  s.cs_l = sregs.cs.l != 0;
  s.cs_d = sregs.cs.db != 0;
  s.cs_base = sregs.cs.base;
  s.ds_base = sregs.ds.base;
  s.es_base = sregs.es.base;
  s.ss_base = sregs.ss.base;
  s.fs_base = sregs.fs.base;
  s.gs_base = sregs.gs.base;
  return s;
}

void StoreToKvm(const VcpuState& s, kvm_regs& regs, kvm_sregs& sregs) {
  regs.rax = s.gpr[kRax];
  regs.rcx = s.gpr[kRcx];
  regs.rdx = s.gpr[kRdx];
  regs.rbx = s.gpr[kRbx];
  regs.rsp = s.gpr[kRsp];
  regs.rbp = s.gpr[kRbp];
  regs.rsi = s.gpr[kRsi];
  regs.rdi = s.gpr[kRdi];
  regs.r8 = s.gpr[kR8];
  regs.r9 = s.gpr[kR9];
  regs.r10 = s.gpr[kR10];
  regs.r11 = s.gpr[kR11];
  regs.r12 = s.gpr[kR12];
  regs.r13 = s.gpr[kR13];
  regs.r14 = s.gpr[kR14];
  regs.r15 = s.gpr[kR15];
  regs.rip = s.rip;
  regs.rflags = s.rflags;
  sregs.cr2 = s.cr2;
}

namespace {
// The legacy region of the XSAVE area (SDM Vol. 1 §10.5.1, Table 10-2) and its header.
constexpr size_t kFswOffset = 2;
constexpr size_t kMxcsrOffset = 24;
constexpr size_t kMxcsrMaskOffset = 28;
constexpr size_t kXstateBvOffset = 512;
constexpr uint64_t kXstateSse = 1u << 1;

template <typename T>
T Field(const kvm_xsave& x, size_t offset) {
  T v;
  std::memcpy(&v, reinterpret_cast<const uint8_t*>(x.region) + offset, sizeof(v));
  return v;
}
template <typename T>
void SetField(kvm_xsave& x, size_t offset, T v) {
  std::memcpy(reinterpret_cast<uint8_t*>(x.region) + offset, &v, sizeof(v));
}
}  // namespace

void LoadFpuFields(const kvm_xsave& xsave, VcpuState& s) {
  s.mxcsr = Field<uint32_t>(xsave, kMxcsrOffset);
  const uint32_t mask = Field<uint32_t>(xsave, kMxcsrMaskOffset);
  if (mask != 0) s.mxcsr_mask = mask;  // 0: the CPU's default (Vol. 1 §11.6.6)
  s.fpu_status = Field<uint16_t>(xsave, kFswOffset);
}

void StoreMxcsr(const VcpuState& s, kvm_xsave& xsave) {
  SetField<uint32_t>(xsave, kMxcsrOffset, s.mxcsr);
  // KVM takes MXCSR from the buffer only with the SSE (or AVX) state marked present.
  SetField<uint64_t>(xsave, kXstateBvOffset, Field<uint64_t>(xsave, kXstateBvOffset) | kXstateSse);
}

void SetInjectedException(const Exception& e, kvm_vcpu_events& events) {
  events.exception.injected = 1;
  events.exception.pending = 0;
  events.exception.nr = static_cast<uint8_t>(e.vector);
  events.exception.has_error_code = e.has_error_code ? 1 : 0;
  events.exception.error_code = e.error_code;
}

}  // namespace vmm::compat::pvm
