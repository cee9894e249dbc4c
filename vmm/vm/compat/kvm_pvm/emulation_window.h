// The emulation window of the kvm_pvm compatibility module: one page of guest RAM that the
// VM process keeps out of KVM's memslots, so that any KVM's instruction emulator fails on
// code fetched from it, exactly as kvm_pvm's does on the instructions it cannot emulate.
// That makes the module's whole path (emulation-failure exit, page walk, decode, complete)
// run on VMX/SVM hosts too: the test guest's `compat=exercise` mode runs each instruction
// the module handles from this page (tests/guest/checks/compat.c).
//
//   EmulationWindow window(mem, x86::kCompatWindowAddr);
//   RETURN_IF_ERROR(mmio.Insert(x86::kCompatWindowAddr, EmulationWindow::kSize, &window));
//
// Data accesses to the page exit as KVM_EXIT_MMIO and are served here from the same RAM,
// so the guest can write code there with ordinary stores; the module reads instructions
// from that RAM through the guest's page tables. The page lies in the reserved hole below
// 1 MiB (arch/x86_64/layout.h), so no guest puts anything of its own there. Present only
// while the module is on; it is part of the VM configuration the manager records.
#pragma once

#include <cstdint>
#include <span>

#include "vmm/vm/devices/io_bus.h"
#include "vmm/vm/memory/guest_memory.h"

namespace vmm::compat::pvm {

class EmulationWindow : public devices::BusDevice {
 public:
  static constexpr uint64_t kSize = 0x1000;

  // `mem` must outlive the window and cover [gpa, gpa + kSize).
  EmulationWindow(GuestMemory& mem, uint64_t gpa) : mem_(mem), gpa_(gpa) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  GuestMemory& mem_;
  uint64_t gpa_;
};

}  // namespace vmm::compat::pvm
