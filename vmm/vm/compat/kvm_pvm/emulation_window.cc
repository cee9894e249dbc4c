#include "vmm/vm/compat/kvm_pvm/emulation_window.h"

#include <algorithm>

namespace vmm::compat::pvm {

// The bus checked that [offset, offset + size) lies inside the inserted range.
void EmulationWindow::Read(uint64_t offset, std::span<uint8_t> data) {
  if (!mem_.Read(gpa_ + offset, data)) std::fill(data.begin(), data.end(), 0xFF);
}

void EmulationWindow::Write(uint64_t offset, std::span<const uint8_t> data) {
  (void)mem_.Write(gpa_ + offset, data);
}

}  // namespace vmm::compat::pvm
