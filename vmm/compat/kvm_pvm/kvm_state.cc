#include "vmm/compat/kvm_pvm/kvm_state.h"

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

void LoadFpuFields(const kvm_fpu& fpu, VcpuState& s) {
  s.mxcsr = fpu.mxcsr;
  s.fpu_status = fpu.fsw;
}

void StoreMxcsr(const VcpuState& s, kvm_fpu& fpu) { fpu.mxcsr = s.mxcsr; }

void SetInjectedException(const Exception& e, kvm_vcpu_events& events) {
  events.exception.injected = 1;
  events.exception.pending = 0;
  events.exception.nr = static_cast<uint8_t>(e.vector);
  events.exception.has_error_code = e.has_error_code ? 1 : 0;
  events.exception.error_code = e.error_code;
}

}  // namespace vmm::compat::pvm
