// The test guest recreates the AK with its own copy of the template (tests/guest/include/
// ak_template.h, plain C for the freestanding guest): it must be vtpm/provision's byte for
// byte, or the guest's key is not the one the CA certified (ARCHITECTURE.md §8).
#include <gtest/gtest.h>

#include <vector>

#include "tests/guest/include/ak_template.h"
#include "vtpm/provision/ak_template.h"

namespace vmm::vtpm {
namespace {

TEST(AkTemplate, TheTestGuestSendsTheSameBytes) {
  std::span<const uint8_t> ours = AkTemplateBytes();
  EXPECT_EQ(std::vector<uint8_t>(ak_template, ak_template + AK_TEMPLATE_SIZE),
            std::vector<uint8_t>(ours.begin(), ours.end()));
}

}  // namespace
}  // namespace vmm::vtpm
