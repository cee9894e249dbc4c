#include "vmm/vm/tpm_crb/crb_device.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "base/bytes.h"

namespace vtpm {
namespace {

constexpr uint64_t kPageSize = 0x1000;
constexpr uint16_t kTpmStNoSessions = 0x8001;  // TPM 2.0 Part 2 §6.9

bool IsAccessWidth(size_t n) { return n == 1 || n == 2 || n == 4 || n == 8; }

}  // namespace

vmm::Result<std::unique_ptr<CrbDevice>> CrbDevice::Create(uint64_t buffer_gpa,
                                                          std::span<uint8_t> buffer,
                                                          CrbBackend& backend) {
  if (buffer.size() < kTpmHeaderSize || buffer.size() > std::numeric_limits<uint32_t>::max()) {
    return vmm::InvalidArgument("TPM CRB: buffer of " + std::to_string(buffer.size()) +
                                " bytes; it must hold a TPM header and fit CTRL_CMD_SIZE");
  }
  if (buffer_gpa % kPageSize != 0) {
    return vmm::InvalidArgument("TPM CRB: buffer address is not page-aligned");
  }
  if (buffer_gpa > std::numeric_limits<uint64_t>::max() - buffer.size()) {
    return vmm::InvalidArgument("TPM CRB: buffer wraps the address space");
  }
  if (buffer_gpa < kCrbBaseGpa + kCrbWindowSize && buffer_gpa + buffer.size() > kCrbBaseGpa) {
    // Inside the trapped window every guest access would exit: the point of the separate
    // page is that it does not.
    return vmm::InvalidArgument("TPM CRB: buffer overlaps the register window");
  }
  return std::unique_ptr<CrbDevice>(new CrbDevice(buffer_gpa, buffer, backend));
}

CrbDevice::CrbDevice(uint64_t buffer_gpa, std::span<uint8_t> buffer, CrbBackend& backend)
    : buffer_gpa_(buffer_gpa), buffer_(buffer), backend_(&backend) {}

void CrbDevice::Read(uint64_t offset, std::span<uint8_t> data) {
  std::unique_lock lock(mu_);
  std::fill(data.begin(), data.end(), uint8_t{0xFF});
  const size_t n = data.size();
  if (!vmm::InBounds(kCrbWindowSize, offset, n) || !IsAccessWidth(n) || offset % n != 0) {
    ++guest_errors_;
    return;
  }
  if (offset >= kCrbLocalitySize) return;  // locality 1..4: not implemented, all-ones
  std::fill(data.begin(), data.end(), uint8_t{0});
  if (offset < kCrbRegistersEnd) {
    // An aligned access never straddles more than two 32-bit registers.
    const uint32_t reg = static_cast<uint32_t>(offset & ~uint64_t{3});
    uint64_t value = ReadRegister32(reg);
    if (n == 8) value |= uint64_t{ReadRegister32(reg + 4)} << 32;
    value >>= 8 * (offset & 3);
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(value >> (8 * i));
  }
  // Guests poll START: that is when a START held across Reset() can go out.
  RunAction(lock, SubmitDeferred());
}

void CrbDevice::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::unique_lock lock(mu_);
  const size_t n = data.size();
  if (!vmm::InBounds(kCrbWindowSize, offset, n) || !IsAccessWidth(n) || offset % n != 0) {
    ++guest_errors_;
    return;
  }
  if (offset >= kCrbLocalitySize || offset >= kCrbRegistersEnd) return;  // ignored
  if (n == 8) {
    // The 64-bit registers (INTF_ID, CTRL_EXT, RSP_ADDR) are read-only here; a qword write
    // elsewhere would hit two registers at once, which the PTP does not define.
    if (offset != kCrbIntfId && offset != kCrbCtrlExt && offset != kCrbCtrlRspAddr) {
      ++guest_errors_;
    }
    return;
  }
  uint32_t value = 0;
  for (size_t i = 0; i < n; ++i) value |= uint32_t{data[i]} << (8 * i);
  const uint32_t shift = static_cast<uint32_t>(8 * (offset & 3));
  const uint32_t mask = (n == 4 ? ~0u : ((1u << (8 * n)) - 1)) << shift;
  Action action =
      WriteRegister32(static_cast<uint32_t>(offset & ~uint64_t{3}), value << shift, mask);
  if (action.kind == Action::kNone) action = SubmitDeferred();
  RunAction(lock, std::move(action));
}

void CrbDevice::RunAction(std::unique_lock<std::mutex>& lock, Action action) {
  if (action.kind == Action::kNone) return;
  lock.unlock();  // the backend may answer from inside Submit
  if (action.kind == Action::kSubmit) {
    backend_->Submit(action.command);
  } else {
    backend_->Cancel();
  }
}

uint32_t CrbDevice::ReadRegister32(uint32_t reg) const {
  switch (reg) {
    case kCrbLocState:
      return kCrbLocStateRegValid | kCrbLocStateEstablishedValue |
             (locality_assigned_ ? kCrbLocStateAssigned : 0);  // activeLocality: 0
    case kCrbLocSts:
      return locality_assigned_ ? kCrbLocStsGranted : 0;
    case kCrbIntfId:
      return kCrbIntfIdValue;
    case kCrbIntfId2:
      return uint32_t{kCrbVendorId} | (uint32_t{kCrbDeviceId} << 16);
    case kCrbCtrlReq:
      // cmdReady is handled at once; goIdle stays set while a command still runs.
      return go_idle_pending_ ? kCrbCtrlReqGoIdle : 0;
    case kCrbCtrlSts:
      return (fatal_ ? kCrbCtrlStsFatal : 0) | (idle_ ? kCrbCtrlStsIdle : 0);
    case kCrbCtrlCancel:
      return cancel_ ? kCrbCancel : 0;
    case kCrbCtrlStart:
      return start_ ? kCrbStart : 0;
    case kCrbCtrlCmdSize:
    case kCrbCtrlRspSize:
      return buffer_size();
    case kCrbCtrlCmdLaddr:
    case kCrbCtrlRspAddr:
      return static_cast<uint32_t>(buffer_gpa_);
    case kCrbCtrlCmdHaddr:
    case kCrbCtrlRspAddr + 4:
      return static_cast<uint32_t>(buffer_gpa_ >> 32);
    default:  // LOC_CTRL is write-only; reserved, CTRL_EXT and interrupt registers read 0
      return 0;
  }
}

CrbDevice::Action CrbDevice::WriteRegister32(uint32_t reg, uint32_t value, uint32_t mask) {
  value &= mask;
  switch (reg) {
    case kCrbLocCtrl: {
      const bool request = value & kCrbLocCtrlRequestAccess;
      const bool relinquish = value & kCrbLocCtrlRelinquish;
      if (request && relinquish) {
        ++guest_errors_;  // contradictory: PTP leaves it undefined, we do neither
      } else if (request) {
        locality_assigned_ = true;  // no other locality can be active: granted at once
      } else if (relinquish) {
        locality_assigned_ = false;
      }
      // Seize (locality 0 cannot seize anyone) and resetEstablishment (locality 3/4 only,
      // PTP §6.5.3.2) are ignored.
      return {};
    }
    case kCrbCtrlReq: {
      // PTP §6.5.3.4: the control area acts only for the active locality.
      if (!locality_assigned_) return {};
      const bool ready = value & kCrbCtrlReqCmdReady;
      const bool go_idle = value & kCrbCtrlReqGoIdle;
      if (ready && go_idle) {
        ++guest_errors_;
      } else if (ready) {
        if (!start_) idle_ = false;  // while a command runs the TPM is not idle anyway
        go_idle_pending_ = false;
      } else if (go_idle) {
        if (start_) {
          go_idle_pending_ = true;
        } else {
          idle_ = true;
        }
      }
      return {};
    }
    case kCrbCtrlCancel:
      if (!locality_assigned_ || (mask & kCrbCancel) == 0) return {};
      cancel_ = value & kCrbCancel;
      if (cancel_ && start_ && outstanding_ && !abandoned_ && !cancel_sent_) {
        cancel_sent_ = true;
        return {Action::kCancel, {}};
      }
      return {};
    case kCrbCtrlStart:
      if (!locality_assigned_ || (value & kCrbStart) == 0) return {};  // 0 does nothing
      return WriteStart();
    default:  // read-only, reserved, or interrupt registers without an interrupt: ignored
      return {};
  }
}

CrbDevice::Action CrbDevice::WriteStart() {
  // PTP §6.5.3.5: START is honoured only in the Ready state (no idle bypass), once per
  // command: a second START while the first runs is ignored.
  if (idle_ || start_ || fatal_) return {};
  start_ = true;
  cancel_sent_ = false;
  if (outstanding_) {  // an abandoned command still occupies the backend
    deferred_ = true;
    return {};
  }
  return TakeCommand();
}

CrbDevice::Action CrbDevice::TakeCommand() {
  // One copy of the whole shared buffer; nothing below looks at guest memory again.
  std::vector<uint8_t> snapshot(buffer_.begin(), buffer_.end());
  const uint32_t size = vmm::LoadBe<uint32_t>(snapshot, 2).value_or(0);
  if (size < kTpmHeaderSize || size > snapshot.size()) {
    ++commands_refused_;
    RespondError(kTpmRcCommandSize);
    return {};
  }
  snapshot.resize(size);
  outstanding_ = true;
  ++commands_submitted_;
  return {Action::kSubmit, std::move(snapshot)};
}

CrbDevice::Action CrbDevice::SubmitDeferred() {
  if (!deferred_ || outstanding_) return {};
  deferred_ = false;
  return TakeCommand();
}

bool CrbDevice::Complete(std::span<const uint8_t> response) {
  std::lock_guard lock(mu_);
  if (!outstanding_) return false;
  outstanding_ = false;
  if (abandoned_) {
    abandoned_ = false;
    return false;
  }
  if (response.size() < kTpmHeaderSize || response.size() > buffer_.size() ||
      vmm::LoadBe<uint32_t>(response, 2) != response.size()) {
    RespondError(kTpmRcFailure);
  } else {
    Respond(response);
  }
  return true;
}

void CrbDevice::Respond(std::span<const uint8_t> response) {
  std::memcpy(buffer_.data(), response.data(), response.size());
  // Zero the tail: the guest sees no bytes of an older exchange behind the response.
  std::fill(buffer_.begin() + static_cast<std::ptrdiff_t>(response.size()), buffer_.end(),
            uint8_t{0});
  FinishCommand();
}

void CrbDevice::RespondError(uint32_t rc) {
  const uint8_t error[kTpmHeaderSize] = {kTpmStNoSessions >> 8,
                                         kTpmStNoSessions & 0xFF,
                                         0,
                                         0,
                                         0,
                                         kTpmHeaderSize,
                                         static_cast<uint8_t>(rc >> 24),
                                         static_cast<uint8_t>(rc >> 16),
                                         static_cast<uint8_t>(rc >> 8),
                                         static_cast<uint8_t>(rc)};
  Respond(error);
}

void CrbDevice::FinishCommand() {
  start_ = false;
  cancel_sent_ = false;
  if (go_idle_pending_) {
    go_idle_pending_ = false;
    idle_ = true;
  }
}

void CrbDevice::Reset() {
  std::lock_guard lock(mu_);
  if (outstanding_) abandoned_ = true;
  locality_assigned_ = false;
  idle_ = true;
  go_idle_pending_ = false;
  start_ = false;
  cancel_ = false;
  cancel_sent_ = false;
  deferred_ = false;
  fatal_ = false;
}

void CrbDevice::SetFatal() {
  std::lock_guard lock(mu_);
  fatal_ = true;
  if (outstanding_) abandoned_ = true;
  deferred_ = false;
  if (start_) RespondError(kTpmRcFailure);
}

bool CrbDevice::idle() const { return Locked(idle_); }
bool CrbDevice::locality_assigned() const { return Locked(locality_assigned_); }
bool CrbDevice::command_outstanding() const { return Locked(outstanding_); }
uint64_t CrbDevice::guest_errors() const { return Locked(guest_errors_); }
uint64_t CrbDevice::commands_submitted() const { return Locked(commands_submitted_); }
uint64_t CrbDevice::commands_refused() const { return Locked(commands_refused_); }

}  // namespace vtpm
