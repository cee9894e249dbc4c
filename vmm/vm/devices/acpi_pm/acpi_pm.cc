#include "vmm/vm/devices/acpi_pm/acpi_pm.h"

#include <time.h>

#include <cstring>

#include "vmm/contract/layout.h"

namespace vmm::devices {
namespace {

constexpr uint64_t kStsOffset = 0, kEnOffset = 2, kCntOffset = 4, kTmrOffset = 8;
constexpr uint16_t kSlpEn = 1 << 13;
constexpr uint16_t kSciEn = 1;
constexpr uint64_t kPmTimerHz = 3579545;  // ACPI 6.5 section 4.8.3.3

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

AcpiPm::AcpiPm(std::function<void()> on_power_off, IrqLine sci)
    : on_power_off_(std::move(on_power_off)), sci_(std::move(sci)), start_ns_(MonotonicNs()) {}

void AcpiPm::UpdateSciLocked() {
  const bool level = (status_ & enable_ & kPwrBtn) != 0;
  if (level == sci_level_) return;
  sci_level_ = level;
  if (sci_) sci_(level);
}

void AcpiPm::PressPowerButton() {
  std::lock_guard lock(mu_);
  status_ |= kPwrBtn;
  UpdateSciLocked();
}

uint32_t AcpiPm::TimerValue() const {
  unsigned __int128 ticks =
      static_cast<unsigned __int128>(MonotonicNs() - start_ns_) * kPmTimerHz / 1000000000ull;
  return static_cast<uint32_t>(ticks) & 0xFFFFFF;  // 24-bit timer (FADT: TMR_VAL_EXT clear)
}

void AcpiPm::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  uint8_t regs[kSize] = {};
  std::memcpy(regs + kStsOffset, &status_, 2);
  std::memcpy(regs + kEnOffset, &enable_, 2);
  std::memcpy(regs + kCntOffset, &control_, 2);
  uint32_t tmr = TimerValue();
  std::memcpy(regs + kTmrOffset, &tmr, 4);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < kSize ? regs[offset + i] : 0xFF;
  }
}

void AcpiPm::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::unique_lock lock(mu_);
  auto byte_at = [&](uint64_t reg_off) -> int {
    if (reg_off < offset || reg_off - offset >= data.size()) return -1;
    return data[reg_off - offset];
  };
  // Registers may be written a byte at a time; merge whichever bytes this access covers.
  auto merge16 = [&](uint64_t reg, uint16_t old) {
    uint16_t v = old;
    for (int i = 0; i < 2; ++i) {
      int b = byte_at(reg + static_cast<uint64_t>(i));
      if (b >= 0) v = static_cast<uint16_t>((v & ~(0xFF << (8 * i))) | (b << (8 * i)));
    }
    return v;
  };
  uint16_t sts_write = merge16(kStsOffset, 0);
  status_ &= static_cast<uint16_t>(~sts_write);  // PM1_STS bits are write-one-to-clear
  enable_ = merge16(kEnOffset, enable_);
  uint16_t cnt = merge16(kCntOffset, control_);
  control_ = static_cast<uint16_t>((cnt & ~kSlpEn) | kSciEn);
  UpdateSciLocked();
  lock.unlock();
  if (cnt & kSlpEn) {
    uint16_t slp_typ = (cnt >> 10) & 0x7;
    if (slp_typ == x86::kS5SleepType && on_power_off_) on_power_off_();
  }
}

}  // namespace vmm::devices
