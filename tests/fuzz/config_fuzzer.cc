// The JSON VM configuration and the flag syntax (sizes, cpus, serial modes).
#include <cstdint>
#include <string_view>

#include "vmm/manager/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = vmm::ParseConfigJson(text);
  if (cfg) {
    (void)vmm::ValidateConfig(*cfg, vmm::HostLimits{8ull << 30, vmm::kMaxVcpus});
    auto again = vmm::ParseConfigJson(vmm::ConfigToJson(*cfg));
    if (!again) __builtin_trap();  // what we print must parse back
  }
  (void)vmm::ParseSize(text);
  vmm::VmConfig scratch;
  (void)vmm::ApplyFlag(scratch, "cpus", text);
  (void)vmm::ApplyFlag(scratch, "serial", text);
  return 0;
}
