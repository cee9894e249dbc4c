// The VM spec the manager hands vmm-vcpu (vmm/contract/vm_spec.h): the VM process's first
// parser. What it accepts must pass ValidateVmSpec, and must print and parse back unchanged.
#include <cstdint>
#include <string_view>

#include "vmm/contract/vm_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = vmm::ParseVmSpec(text);
  if (!spec) return 0;
  if (!vmm::ValidateVmSpec(*spec)) __builtin_trap();  // parsed means valid
  auto again = vmm::ParseVmSpec(vmm::VmSpecToJson(*spec));
  if (!again || !(*again == *spec)) __builtin_trap();  // what we write must read back the same
  return 0;
}
