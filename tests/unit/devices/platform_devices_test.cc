#include <gtest/gtest.h>
#include <time.h>

#include <cstring>
#include <vector>

#include "vmm/vm/devices/acpi_pm/acpi_pm.h"
#include "vmm/vm/devices/i8042/i8042.h"
#include "vmm/vm/devices/io_bus.h"

namespace vmm::devices {
namespace {

uint8_t In8(BusDevice* d, uint64_t off = 0) {
  uint8_t v = 0;
  d->Read(off, std::span<uint8_t>(&v, 1));
  return v;
}
void Out8(BusDevice* d, uint8_t v, uint64_t off = 0) {
  d->Write(off, std::span<const uint8_t>(&v, 1));
}
void Out16(BusDevice* d, uint64_t off, uint16_t v) {
  uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
  d->Write(off, b);
}

TEST(I8042, PulseResetCommandResetsTheVm) {
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  Out8(kbd.command_port(), 0xFE);
  EXPECT_EQ(resets, 1);
}

TEST(I8042, SelfTestAnswers0x55) {
  I8042 kbd([] {});
  Out8(kbd.command_port(), 0xAA);
  EXPECT_EQ(In8(kbd.command_port()) & 0x01, 0x01);  // output buffer full
  EXPECT_EQ(In8(kbd.data_port()), 0x55);
  EXPECT_EQ(In8(kbd.command_port()) & 0x01, 0x00);
}

TEST(I8042, CommandByteRoundTrips) {
  I8042 kbd([] {});
  Out8(kbd.command_port(), 0x60);
  Out8(kbd.data_port(), 0x47);
  Out8(kbd.command_port(), 0x20);
  EXPECT_EQ(In8(kbd.data_port()), 0x47);
}

TEST(I8042, KeyboardResetIsAcknowledged) {
  I8042 kbd([] {});
  Out8(kbd.data_port(), 0xFF);
  EXPECT_EQ(In8(kbd.data_port()), 0xFA);
  EXPECT_EQ(In8(kbd.data_port()), 0xAA);
}

TEST(I8042, OutputPortResetBitResetsTheVm) {
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  Out8(kbd.command_port(), 0xD1);
  Out8(kbd.data_port(), 0xFE);
  EXPECT_EQ(resets, 1);
}

TEST(AcpiPm, SleepTypeFiveWithSlpEnPowersOff) {
  int offs = 0;
  AcpiPm pm([&] { ++offs; });
  Out16(&pm, 4, (5 << 10));  // type without SLP_EN: nothing
  EXPECT_EQ(offs, 0);
  Out16(&pm, 4, (5 << 10) | (1 << 13));
  EXPECT_EQ(offs, 1);
}

TEST(AcpiPm, OtherSleepTypesAreIgnored) {
  int offs = 0;
  AcpiPm pm([&] { ++offs; });
  Out16(&pm, 4, (3 << 10) | (1 << 13));
  EXPECT_EQ(offs, 0);
}

TEST(AcpiPm, SciEnIsAlwaysSetAndSlpEnReadsZero) {
  AcpiPm pm([] {});
  Out16(&pm, 4, 0);
  uint8_t cnt[2];
  pm.Read(4, cnt);
  EXPECT_EQ(cnt[0] & 1, 1);
  EXPECT_EQ(cnt[1] & 0x20, 0);
}

TEST(AcpiPm, PowerButtonRaisesSciOnlyWhenEnabledUntilCleared) {
  std::vector<bool> sci;
  AcpiPm pm([] {}, [&](bool level) { sci.push_back(level); });
  uint8_t sts[2];
  pm.PressPowerButton();  // PWRBTN_EN clear: status set, no interrupt
  pm.Read(0, sts);
  EXPECT_EQ(sts[1] & 1, 1) << "PWRBTN_STS";
  EXPECT_TRUE(sci.empty());
  Out16(&pm, 2, AcpiPm::kPwrBtn);  // the OS enables the button: the pending event interrupts
  ASSERT_EQ(sci, std::vector<bool>({true}));
  Out16(&pm, 0, 0x0001);  // clearing another bit leaves it pending
  EXPECT_EQ(sci, std::vector<bool>({true}));
  Out16(&pm, 0, AcpiPm::kPwrBtn);  // write-one-to-clear: the SCI drops
  EXPECT_EQ(sci, std::vector<bool>({true, false}));
  pm.Read(0, sts);
  EXPECT_EQ(sts[1] & 1, 0);
  pm.PressPowerButton();
  EXPECT_EQ(sci, std::vector<bool>({true, false, true}));
}

TEST(AcpiPm, TimerAdvancesAndFitsIn24Bits) {
  AcpiPm pm([] {});
  uint8_t a[4], b[4];
  pm.Read(8, a);
  timespec ms{0, 2000000};  // 2 ms: several thousand timer ticks
  nanosleep(&ms, nullptr);
  pm.Read(8, b);
  uint32_t ta, tb;
  std::memcpy(&ta, a, 4);
  std::memcpy(&tb, b, 4);
  EXPECT_LE(ta, 0xFFFFFFu);
  EXPECT_LE(tb, 0xFFFFFFu);
  EXPECT_NE(ta, tb);
}

class Recorder : public BusDevice {
 public:
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    for (auto& b : data) b = 0x11;
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    written = data.size();
  }
  uint64_t last_offset = ~0ull;
  size_t written = 0;
};

TEST(IoBus, DispatchesWithOffsetRelativeToBase) {
  IoBus bus;
  Recorder r;
  ASSERT_TRUE(bus.Insert(0x3F8, 8, &r).has_value());
  uint8_t v[1];
  EXPECT_TRUE(bus.Read(0x3FD, v));
  EXPECT_EQ(r.last_offset, 5u);
  EXPECT_EQ(v[0], 0x11);
}

TEST(IoBus, UnclaimedReadsAreAllOnes) {
  IoBus bus;
  uint8_t v[4] = {};
  EXPECT_FALSE(bus.Read(0x80, v));
  EXPECT_EQ(v[3], 0xFF);
  EXPECT_FALSE(bus.Write(0x80, v));
}

TEST(IoBus, AccessStraddlingTheEndIsNotDispatched) {
  IoBus bus;
  Recorder r;
  ASSERT_TRUE(bus.Insert(0x600, 12, &r).has_value());
  uint8_t v[4] = {};
  EXPECT_FALSE(bus.Write(0x60A, v));
  EXPECT_EQ(r.written, 0u);
  EXPECT_TRUE(bus.Write(0x608, v));
}

TEST(IoBus, OverlappingRangesAreRefused) {
  IoBus bus;
  Recorder a, b;
  ASSERT_TRUE(bus.Insert(0x100, 0x10, &a).has_value());
  EXPECT_FALSE(bus.Insert(0x108, 0x10, &b).has_value());
  EXPECT_FALSE(bus.Insert(0xF8, 0x10, &b).has_value());
  EXPECT_TRUE(bus.Insert(0x110, 0x10, &b).has_value());
  EXPECT_FALSE(bus.Insert(0x200, 0, &b).has_value());
}

}  // namespace
}  // namespace vmm::devices
