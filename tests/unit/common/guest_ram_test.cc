// GuestRam's bounds-checked copies (Translate has its own tests beside the virtio code).
#include "base/guest_ram.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "base/fake_guest_ram.h"

namespace vmm {
namespace {

TEST(GuestRamCopy, ReadsAndWritesInsideOneRegionOnly) {
  FakeGuestRam fake({{0, 0x1000}, {0x1000, 0x1000}});  // adjacent, still separate
  const GuestRam& ram = fake;
  const std::array<uint8_t, 4> in = {1, 2, 3, 4};
  ASSERT_TRUE(ram.Write(0xFFC, in));
  std::array<uint8_t, 4> out{};
  ASSERT_TRUE(ram.Read(0xFFC, out));
  EXPECT_EQ(out, in);
  auto straddle = ram.Write(0xFFE, in);
  ASSERT_FALSE(straddle);
  EXPECT_EQ(straddle.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(straddle.error().message(), "guest range [0xffe, +0x4) is not RAM");
  EXPECT_EQ(fake.Get<uint16_t>(0xFFE), 0x0403);  // nothing written
  EXPECT_FALSE(ram.Read(0x2000, out));
  EXPECT_FALSE(ram.Read(~0ull - 1, out));               // wraps
  EXPECT_TRUE(ram.Read(0x5000, std::span<uint8_t>()));  // zero bytes: always fine
}

TEST(GuestRamCopy, FakeRegionsAre64ByteAligned) {
  FakeGuestRam fake({{0, 100}, {0x1000, 100}});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(fake.At(0, 1).data()) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(fake.At(0x1000, 1).data()) % 64, 0u);
}

}  // namespace
}  // namespace vmm
