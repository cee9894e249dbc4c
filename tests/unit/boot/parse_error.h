// ErrorOf(file): the message ParseKernelImage refuses `file` with; a test failure (and "")
// when it accepts it. ExpectRejected: a table of malformed images, each refused with its
// message. ExpectOneSegmentKernel: an image that must be accepted. For the kernel image tests.
//
//   ExpectRejected<BzSpec>(MakeBzImage, {{"zImage", [](BzSpec& s) { s.loadflags = 0; },
//   "zImage"}});
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "vmm/formats/kernel/kernel_image.h"

namespace vmm::testing {

inline std::string ErrorOf(const std::vector<uint8_t>& file) {
  auto r = boot::ParseKernelImage(file);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? "" : r.error().message();
}

// One malformed image: the default Spec changed by `edit`, refused with a message containing
// `error`; `what` names the case in a failure.
template <typename Spec>
struct RejectCase {
  const char* what;
  void (*edit)(Spec&);
  const char* error;
};

// Parses `file`, which must be accepted as a `protocol` kernel with entry `entry` and exactly
// one segment (the test images' shape); the image, or nullopt after a test failure.
inline std::optional<boot::KernelImage> ExpectOneSegmentKernel(const std::vector<uint8_t>& file,
                                                               boot::BootProtocol protocol,
                                                               uint64_t entry) {
  auto r = boot::ParseKernelImage(file);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  if (!r.has_value()) return std::nullopt;
  EXPECT_EQ(r->protocol, protocol);
  EXPECT_EQ(r->entry, entry);
  EXPECT_EQ(r->segments.size(), 1u);
  if (r->segments.size() != 1) return std::nullopt;
  return std::move(*r);
}

// Every case's image, as `make` builds it from its edited Spec, is refused with its message.
template <typename Spec, typename Make>
void ExpectRejected(Make make, std::initializer_list<RejectCase<Spec>> cases) {
  for (const RejectCase<Spec>& c : cases) {
    SCOPED_TRACE(c.what);
    Spec spec;
    c.edit(spec);
    EXPECT_THAT(ErrorOf(make(spec)), ::testing::HasSubstr(c.error));
  }
}

}  // namespace vmm::testing
