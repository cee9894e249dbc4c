#include "vmm/vm/devices/i8042/i8042.h"

namespace vmm::devices {
namespace {

// Controller commands (IBM PC/AT technical reference; Linux drivers/input/serio/i8042.h).
constexpr uint8_t kCmdReadCtr = 0x20, kCmdWriteCtr = 0x60, kCmdAuxDisable = 0xA7,
                  kCmdAuxEnable = 0xA8, kCmdAuxTest = 0xA9, kCmdSelfTest = 0xAA, kCmdKbdTest = 0xAB,
                  kCmdKbdDisable = 0xAD, kCmdKbdEnable = 0xAE, kCmdReadOutp = 0xD0,
                  kCmdWriteOutp = 0xD1, kCmdPulseReset = 0xFE;
constexpr uint8_t kStatusOutputFull = 0x01, kStatusSystem = 0x04, kStatusCommand = 0x08;
constexpr uint8_t kKbdAck = 0xFA, kKbdSelfTestOk = 0xAA;
constexpr size_t kMaxQueued = 16;

}  // namespace

void I8042::Port::Read(uint64_t, std::span<uint8_t> data) {
  for (auto& b : data) b = 0xFF;
  if (!data.empty()) data[0] = is_command ? owner->Status() : owner->ReadData();
}

void I8042::Port::Write(uint64_t, std::span<const uint8_t> data) {
  if (data.empty()) return;
  if (is_command) {
    owner->WriteCommand(data[0]);
  } else {
    owner->WriteData(data[0]);
  }
}

uint8_t I8042::Status() const {
  uint8_t status = kStatusSystem | (pending_command_ ? kStatusCommand : 0);
  if (!out_.empty()) status |= kStatusOutputFull;
  return status;
}

uint8_t I8042::ReadData() {
  if (out_.empty()) return 0;
  uint8_t v = out_.front();
  out_.pop_front();
  return v;
}

void I8042::Push(uint8_t value) {
  if (out_.size() < kMaxQueued) out_.push_back(value);
}

void I8042::WriteCommand(uint8_t value) {
  pending_command_ = 0;
  switch (value) {
    case kCmdReadCtr:
      Push(command_byte_);
      break;
    case kCmdWriteCtr:
      pending_command_ = value;
      break;
    case kCmdReadOutp:
      Push(output_port_);
      break;
    case kCmdWriteOutp:
      pending_command_ = value;
      break;
    case kCmdSelfTest:
      Push(0x55);
      break;  // "controller OK"
    case kCmdKbdTest:
      Push(0x00);
      break;  // "interface OK"
    case kCmdAuxTest:
      Push(0xFF);
      break;  // no auxiliary (mouse) port
    case kCmdKbdDisable:
      command_byte_ |= 0x10;
      break;
    case kCmdKbdEnable:
      command_byte_ &= static_cast<uint8_t>(~0x10);
      break;
    case kCmdAuxDisable:
    case kCmdAuxEnable:
      break;
    case kCmdPulseReset:
      if (on_reset_) on_reset_();
      break;
    default:
      break;  // other commands are accepted and ignored, as a real controller ignores them
  }
}

void I8042::WriteData(uint8_t value) {
  uint8_t command = pending_command_;
  pending_command_ = 0;
  if (command == kCmdWriteCtr) {
    command_byte_ = value;
    return;
  }
  if (command == kCmdWriteOutp) {
    output_port_ = value;
    // Output port bit 0 low holds the CPU in reset.
    if (!(value & 0x01) && on_reset_) on_reset_();
    return;
  }
  // A byte for the keyboard itself: acknowledge; reset (0xFF) also reports self-test passed.
  Push(kKbdAck);
  if (value == 0xFF) Push(kKbdSelfTestOk);
}

}  // namespace vmm::devices
