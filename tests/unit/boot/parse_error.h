// ErrorOf(file): the message ParseKernelImage refuses `file` with; a test failure (and "")
// when it accepts it. For the kernel image tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/formats/kernel/kernel_image.h"

namespace vmm::testing {

inline std::string ErrorOf(const std::vector<uint8_t>& file) {
  auto r = boot::ParseKernelImage(file);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? "" : r.error().message();
}

}  // namespace vmm::testing
