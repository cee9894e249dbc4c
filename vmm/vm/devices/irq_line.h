// An interrupt line a device drives: a level (true = asserted). Edge-triggered ISA inputs of
// the IOAPIC see the rising edge. Tests use a fake that records levels.
#pragma once

#include <cstdint>
#include <functional>

namespace vmm::devices {

using IrqLine = std::function<void(bool level)>;

}  // namespace vmm::devices
