#include "vmm/vm/devices/uart/uart16550.h"

namespace vmm::devices {
namespace {

// Register offsets and bits (PC16550D datasheet; Linux include/uapi/linux/serial_reg.h).
enum : uint64_t {
  kRbrThr = 0,
  kIer = 1,
  kIirFcr = 2,
  kLcr = 3,
  kMcr = 4,
  kLsr = 5,
  kMsr = 6,
  kScr = 7
};
constexpr uint8_t kIerRda = 0x01, kIerThre = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThre = 0x02, kIirRda = 0x04, kIirFifos = 0xC0;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;

}  // namespace

void Uart16550::Read(uint64_t offset, std::span<uint8_t> data) {
  // Registers are byte-wide; a wider access reads the first and pads with ones.
  for (size_t i = 0; i < data.size(); ++i) data[i] = i == 0 ? ReadReg(offset) : 0xFF;
}

void Uart16550::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (!data.empty()) WriteReg(offset, data[0]);
}

size_t Uart16550::Receive(std::span<const uint8_t> bytes) {
  size_t n = 0;
  for (uint8_t b : bytes) {
    if (rx_.size() >= kFifoSize) break;
    rx_.push_back(b);
    ++n;
  }
  UpdateIrq();
  return n;
}

uint8_t Uart16550::InterruptId() const {
  if ((ier_ & kIerRda) && !rx_.empty()) return kIirRda;
  if ((ier_ & kIerThre) && thre_pending_) return kIirThre;
  return kIirNone;
}

void Uart16550::UpdateIrq() {
  bool level = InterruptId() != kIirNone;
  if (level != irq_level_) {
    irq_level_ = level;
    if (irq_) irq_(level);
  }
}

uint8_t Uart16550::ReadReg(uint64_t reg) {
  bool dlab = lcr_ & kLcrDlab;
  uint8_t value = 0;
  switch (reg) {
    case kRbrThr:
      if (dlab) return dll_;
      if (!rx_.empty()) {
        value = rx_.front();
        rx_.pop_front();
      }
      break;
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIirFcr: {
      uint8_t id = InterruptId();
      value = id | (fifo_enabled_ ? kIirFifos : 0);
      if (id == kIirThre) thre_pending_ = false;  // reading IIR acknowledges THRE
      break;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return static_cast<uint8_t>(kLsrThre | kLsrTemt | (rx_.empty() ? 0 : kLsrDr));
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback wires the modem outputs to the inputs (datasheet, MCR bit 4).
        return static_cast<uint8_t>(
            ((mcr_ & kMcrRts) ? kMsrCts : 0) | ((mcr_ & kMcrDtr) ? kMsrDsr : 0) |
            ((mcr_ & kMcrOut1) ? kMsrRi : 0) | ((mcr_ & kMcrOut2) ? kMsrDcd : 0));
      }
      return kMsrDcd | kMsrDsr | kMsrCts;  // a terminal is always attached
    case kScr:
      return scr_;
    default:
      return 0xFF;
  }
  UpdateIrq();
  return value;
}

void Uart16550::WriteReg(uint64_t reg, uint8_t value) {
  bool dlab = lcr_ & kLcrDlab;
  switch (reg) {
    case kRbrThr:
      if (dlab) {
        dll_ = value;
        return;
      }
      if (mcr_ & kMcrLoop) {
        if (rx_.size() < kFifoSize) rx_.push_back(value);
      } else if (sink_) {
        sink_(value);
      }
      // The byte leaves at once, so THR is empty again: THRE re-arms.
      thre_pending_ = true;
      break;
    case kIer:
      if (dlab) {
        dlm_ = value;
        return;
      }
      // Enabling ETBEI while THR is empty raises THRE right away (Linux's 8250 tests this).
      if ((value & kIerThre) && !(ier_ & kIerThre)) thre_pending_ = true;
      ier_ = value & 0x0F;
      break;
    case kIirFcr:
      fifo_enabled_ = value & kFcrEnable;
      if (value & kFcrClearRx) rx_.clear();
      break;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & 0x1F;
      return;
    case kScr:
      scr_ = value;
      return;
    default:
      return;  // LSR and MSR are read-only
  }
  UpdateIrq();
}

}  // namespace vmm::devices
