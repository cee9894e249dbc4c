#include "vmm/vm/virtio_mmio/mmio_transport.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/bytes.h"
#include "base/enum_names.h"

namespace vmm::virtio {
namespace {

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// [gpa, gpa + len) must not wrap: the backend checks it against RAM, we only against 2^64.
bool RangeFits(uint64_t gpa, uint64_t len) { return gpa <= UINT64_MAX - len; }

void SetLow(uint64_t& field, uint32_t v) { field = (field & ~uint64_t{UINT32_MAX}) | v; }
void SetHigh(uint64_t& field, uint32_t v) { field = (field & UINT32_MAX) | (uint64_t{v} << 32); }

// The three ring addresses of the selected queue, each written as two 32-bit halves (§4.2.2).
struct RingAddressRegs {
  uint32_t low, high;
  uint64_t MmioQueue::*field;
};
constexpr RingAddressRegs kRingAddressRegs[] = {
    {kMmioRegQueueDescLow, kMmioRegQueueDescHigh, &MmioQueue::desc_gpa},
    {kMmioRegQueueDriverLow, kMmioRegQueueDriverHigh, &MmioQueue::avail_gpa},
    {kMmioRegQueueDeviceLow, kMmioRegQueueDeviceHigh, &MmioQueue::used_gpa},
};

constexpr uint8_t kDriverStatusBits = kVirtioStatusAcknowledge | kVirtioStatusDriver |
                                      kVirtioStatusDriverOk | kVirtioStatusFeaturesOk |
                                      kVirtioStatusFailed;

// Registers that the driver reads only or writes only (§4.2.2 table, column Direction).
// The selected queue's size and ring addresses (§4.2.2): write-only, and locked while the
// queue is ready (WriteQueueField).
bool IsQueueConfig(uint32_t reg) {
  switch (reg) {
    case kMmioRegQueueNum:
    case kMmioRegQueueDescLow:
    case kMmioRegQueueDescHigh:
    case kMmioRegQueueDriverLow:
    case kMmioRegQueueDriverHigh:
    case kMmioRegQueueDeviceLow:
    case kMmioRegQueueDeviceHigh:
      return true;
    default:
      return false;
  }
}

bool IsWriteOnly(uint32_t reg) {
  if (IsQueueConfig(reg)) return true;
  switch (reg) {
    case kMmioRegDeviceFeaturesSel:
    case kMmioRegDriverFeatures:
    case kMmioRegDriverFeaturesSel:
    case kMmioRegQueueSel:
    case kMmioRegQueueNotify:
    case kMmioRegInterruptAck:
    case kMmioRegShmSel:
      return true;
    default:
      return false;
  }
}

constexpr NamedValue<MmioDriverError> kMmioDriverErrorNames[] = {
    {MmioDriverError::kNone, "no error"},
    {MmioDriverError::kBadAccess, "register access not 32-bit aligned"},
    {MmioDriverError::kReadWriteOnly, "read of a write-only register"},
    {MmioDriverError::kWriteReadOnly, "write to a read-only register"},
    {MmioDriverError::kUnknownRegister, "access to an undefined register"},
    {MmioDriverError::kNoSuchQueue, "no such queue"},
    {MmioDriverError::kQueueLocked, "queue register written while in use"},
    {MmioDriverError::kBadQueueConfig, "queue size or ring alignment invalid"},
    {MmioDriverError::kBadQueueReady, "invalid QueueReady write"},
    {MmioDriverError::kBadStatus, "invalid device status transition"},
    {MmioDriverError::kFeaturesRefused, "feature set refused"},
    {MmioDriverError::kFeaturesLocked, "driver features written after FEATURES_OK"},
    {MmioDriverError::kEarlyNotify, "queue notified before it is running"},
    {MmioDriverError::kBadInterruptAck, "undefined bits in InterruptACK"},
    {MmioDriverError::kConfigOutOfRange, "config access out of range"},
};

}  // namespace

const char* MmioDriverErrorName(MmioDriverError error) {
  return NameOf(kMmioDriverErrorNames, error, "unknown error");
}

QueueConfig MmioQueue::ToQueueConfig(uint64_t driver_features) const {
  QueueConfig c;
  c.size = size;
  c.desc_gpa = desc_gpa;
  c.avail_gpa = avail_gpa;
  c.used_gpa = used_gpa;
  c.event_idx = (driver_features & kVirtioRingFEventIdx) != 0;
  c.indirect = (driver_features & kVirtioRingFIndirectDesc) != 0;
  return c;
}

Result<MmioTransport> MmioTransport::Create(MmioDeviceInfo info, MmioTransportDelegate& delegate) {
  if (info.device_id == 0) return InvalidArgument("virtio-mmio: device id 0 is a placeholder");
  if (!(info.features & kVirtioFVersion1)) {
    return InvalidArgument("virtio-mmio: a modern device must offer VIRTIO_F_VERSION_1");
  }
  if (info.features & kMmioUnsupportedFeatures) {
    return InvalidArgument(
        "virtio-mmio: offered features include transport features this "
        "transport does not implement (packed, SR-IOV, notification data, "
        "ring reset)");
  }
  if (info.queue_max_sizes.size() > kMmioMaxQueues) {
    return InvalidArgument("virtio-mmio: more than " + std::to_string(kMmioMaxQueues) + " queues");
  }
  for (uint32_t max : info.queue_max_sizes) {
    if (!IsPowerOfTwo(max) || max > kMaxQueueSize) {
      return InvalidArgument("virtio-mmio: queue size " + std::to_string(max) +
                             " is not a power of two in 1..32768");
    }
  }
  if (info.config.size() > kMmioMaxConfigSize) {
    return InvalidArgument("virtio-mmio: device config larger than 256 bytes");
  }
  return MmioTransport(std::move(info), delegate);
}

MmioTransport::MmioTransport(MmioDeviceInfo info, MmioTransportDelegate& delegate)
    : info_(std::move(info)), delegate_(&delegate), queues_(info_.queue_max_sizes.size()) {}

uint8_t MmioTransport::status() const {
  return static_cast<uint8_t>(status_ | (needs_reset_ ? kVirtioStatusDeviceNeedsReset : 0));
}

void MmioTransport::DriverError(MmioDriverError error) {
  ++driver_errors_;
  last_error_ = error;
}

void MmioTransport::Read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  if (offset >= kMmioConfigOffset && offset < kMmioWindowSize) {
    const uint64_t off = offset - kMmioConfigOffset;
    const size_t n = data.size();
    if ((n != 1 && n != 2 && n != 4 && n != 8) || !InBounds(info_.config.size(), off, n)) {
      return DriverError(MmioDriverError::kConfigOutOfRange);
    }
    std::memcpy(data.data(), info_.config.data() + off, n);
    return;
  }
  // §4.2.2.2: control registers take 32-bit wide, aligned accesses only.
  if (offset >= kMmioConfigOffset || offset % 4 != 0 || data.size() != 4) {
    return DriverError(MmioDriverError::kBadAccess);
  }
  StoreLe<uint32_t>(data, 0, ReadRegister(static_cast<uint32_t>(offset)));
}

void MmioTransport::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= kMmioConfigOffset && offset < kMmioWindowSize) {
    const uint64_t off = offset - kMmioConfigOffset;
    const size_t n = data.size();
    if ((n != 1 && n != 2 && n != 4 && n != 8) || !InBounds(info_.config.size(), off, n)) {
      return DriverError(MmioDriverError::kConfigOutOfRange);
    }
    delegate_->OnConfigWrite(off, data);
    return;
  }
  if (offset >= kMmioConfigOffset || offset % 4 != 0 || data.size() != 4) {
    return DriverError(MmioDriverError::kBadAccess);
  }
  WriteRegister(static_cast<uint32_t>(offset), LoadLe<uint32_t>(data, 0).value_or(0));
}

MmioQueue* MmioTransport::SelectedQueue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

uint32_t MmioTransport::ReadRegister(uint32_t reg) {
  if (IsWriteOnly(reg)) {
    DriverError(MmioDriverError::kReadWriteOnly);
    return 0;
  }
  const MmioQueue* q = SelectedQueue();
  switch (reg) {
    case kMmioRegMagicValue:
      return kMmioMagicValue;
    case kMmioRegVersion:
      return kMmioVersion;
    case kMmioRegDeviceId:
      return info_.device_id;
    case kMmioRegVendorId:
      return kMmioVendorId;
    case kMmioRegDeviceFeatures:
      // Only words 0 and 1 exist: 64 feature bits (§2.2).
      if (device_features_sel_ == 0) return static_cast<uint32_t>(info_.features);
      if (device_features_sel_ == 1) return static_cast<uint32_t>(info_.features >> 32);
      return 0;
    case kMmioRegQueueNumMax:
      return q ? info_.queue_max_sizes[queue_sel_] : 0;
    case kMmioRegQueueReady:
      return q && q->ready ? 1 : 0;
    case kMmioRegInterruptStatus: {
      uint32_t s = interrupt_status_;
      if (info_.used_buffer_via_irqfd && activated()) s |= kMmioIntUsedBuffer;
      return s;
    }
    case kMmioRegStatus:
      return status();
    // No shared memory regions: length and base of a missing region read as all ones.
    case kMmioRegShmLenLow:
    case kMmioRegShmLenHigh:
    case kMmioRegShmBaseLow:
    case kMmioRegShmBaseHigh:
      return UINT32_MAX;
    case kMmioRegQueueReset:
      DriverError(MmioDriverError::kUnknownRegister);  // VIRTIO_F_RING_RESET never offered
      return 0;
    case kMmioRegConfigGeneration:
      return config_generation_;
    default:
      DriverError(MmioDriverError::kUnknownRegister);
      return 0;
  }
}

void MmioTransport::WriteRegister(uint32_t reg, uint32_t value) {
  if (IsQueueConfig(reg)) return WriteQueueField(reg, value);
  switch (reg) {
    case kMmioRegDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kMmioRegDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kMmioRegDriverFeatures:
      // §3.1.1 step 5: the feature set is fixed once FEATURES_OK is set.
      if (status_ & (kVirtioStatusFeaturesOk | kVirtioStatusFailed)) {
        return DriverError(MmioDriverError::kFeaturesLocked);
      }
      if (driver_features_sel_ == 0) {
        SetLow(driver_features_, value);
      } else if (driver_features_sel_ == 1) {
        SetHigh(driver_features_, value);
      } else if (value != 0) {
        driver_features_invalid_ = true;  // accepts a bit we cannot have offered
      }
      return;
    case kMmioRegQueueSel:
      queue_sel_ = value;
      return;
    case kMmioRegQueueReady:
      return WriteQueueReady(value);
    case kMmioRegQueueNotify:
      // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index (§4.2.3.3).
      if (value >= queues_.size()) return DriverError(MmioDriverError::kNoSuchQueue);
      if (!activated() || !queues_[value].ready) {
        return DriverError(MmioDriverError::kEarlyNotify);
      }
      delegate_->OnNotify(value);
      return;
    case kMmioRegInterruptAck: {
      if (value & ~(kMmioIntUsedBuffer | kMmioIntConfigChange)) {
        DriverError(MmioDriverError::kBadInterruptAck);  // the defined bits still count
      }
      const uint32_t before = interrupt_status_;
      interrupt_status_ &= ~value;
      if (before != 0 && interrupt_status_ == 0) delegate_->OnInterrupt(false);
      return;
    }
    case kMmioRegStatus:
      return WriteStatus(value);
    case kMmioRegShmSel:
      return;  // any id selects a missing region
    case kMmioRegMagicValue:
    case kMmioRegVersion:
    case kMmioRegDeviceId:
    case kMmioRegVendorId:
    case kMmioRegDeviceFeatures:
    case kMmioRegQueueNumMax:
    case kMmioRegInterruptStatus:
    case kMmioRegShmLenLow:
    case kMmioRegShmLenHigh:
    case kMmioRegShmBaseLow:
    case kMmioRegShmBaseHigh:
    case kMmioRegConfigGeneration:
      return DriverError(MmioDriverError::kWriteReadOnly);
    default:  // QueueReset included: VIRTIO_F_RING_RESET is never offered
      return DriverError(MmioDriverError::kUnknownRegister);
  }
}

void MmioTransport::WriteQueueField(uint32_t reg, uint32_t value) {
  MmioQueue* q = SelectedQueue();
  if (q == nullptr) return DriverError(MmioDriverError::kNoSuchQueue);
  // §4.2.2.2: not while QueueReady is set; and the backend got the configuration at
  // DRIVER_OK, so later changes could never reach it.
  if (q->ready || activated()) return DriverError(MmioDriverError::kQueueLocked);
  if (reg == kMmioRegQueueNum) {
    q->size = value;
    return;
  }
  for (const RingAddressRegs& a : kRingAddressRegs) {
    if (reg == a.low) return SetLow(q->*a.field, value);
    if (reg == a.high) return SetHigh(q->*a.field, value);
  }
}

bool MmioTransport::QueueConfigValid(const MmioQueue& q, uint32_t max) const {
  if (!IsPowerOfTwo(q.size) || q.size > max) return false;
  // §2.7: descriptor table 16-aligned, available ring 2, used ring 4; sizes as in §2.7
  // including the event fields, so the backend's ring mapping cannot wrap.
  const uint64_t n = q.size;
  return q.desc_gpa % 16 == 0 && q.avail_gpa % 2 == 0 && q.used_gpa % 4 == 0 &&
         RangeFits(q.desc_gpa, 16 * n) && RangeFits(q.avail_gpa, 6 + 2 * n) &&
         RangeFits(q.used_gpa, 6 + 8 * n);
}

void MmioTransport::WriteQueueReady(uint32_t value) {
  MmioQueue* q = SelectedQueue();
  if (q == nullptr) return DriverError(MmioDriverError::kNoSuchQueue);
  if (value == 0) {
    if (!q->ready) return;  // Linux writes 0 to every queue it deletes, after the reset
    q->ready = false;
    if (activated()) delegate_->OnQueueStop(queue_sel_);
    return;
  }
  if (value != 1) return DriverError(MmioDriverError::kBadQueueReady);
  if (q->ready) return;
  // §3.1.1 step 7: queues are set up after FEATURES_OK and before DRIVER_OK.
  if (!(status_ & kVirtioStatusFeaturesOk) ||
      (status_ & (kVirtioStatusDriverOk | kVirtioStatusFailed))) {
    return DriverError(MmioDriverError::kBadQueueReady);
  }
  if (!QueueConfigValid(*q, info_.queue_max_sizes[queue_sel_])) {
    return DriverError(MmioDriverError::kBadQueueConfig);
  }
  q->ready = true;
}

void MmioTransport::WriteStatus(uint32_t value) {
  if (value == 0) return Reset();
  // A driver that read DEVICE_NEEDS_RESET may write it back (read-modify-write, as Linux
  // does): the bit is the device's, so ignore it rather than refuse the write.
  const uint32_t bits = value & ~uint32_t{kVirtioStatusDeviceNeedsReset};
  if (bits & ~uint32_t{kDriverStatusBits}) return DriverError(MmioDriverError::kBadStatus);
  const uint8_t want = static_cast<uint8_t>(bits);
  // §2.1.1: the driver MUST NOT clear a status bit; only a reset does.
  if ((status_ & want) != status_) return DriverError(MmioDriverError::kBadStatus);
  const uint8_t added = want & ~status_;
  if (added == 0) return;
  // §2.1: FAILED may be set at any time; the driver must then reset before trying again.
  if (added & kVirtioStatusFailed) {
    status_ |= kVirtioStatusFailed;
    return;
  }
  if (status_ & kVirtioStatusFailed) return DriverError(MmioDriverError::kBadStatus);
  // §3.1.1: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, each needing all before it; one
  // write may set several at once.
  auto has = [&](uint8_t bit) { return (want & bit) != 0; };
  if ((has(kVirtioStatusDriver) && !has(kVirtioStatusAcknowledge)) ||
      (has(kVirtioStatusFeaturesOk) && !has(kVirtioStatusDriver)) ||
      (has(kVirtioStatusDriverOk) && !has(kVirtioStatusFeaturesOk))) {
    return DriverError(MmioDriverError::kBadStatus);
  }
  if (added & kVirtioStatusFeaturesOk) {
    // §2.2.1: only offered features; this transport serves modern drivers only (§6.1).
    const bool subset = (driver_features_ & ~info_.features) == 0 && !driver_features_invalid_;
    if (!subset || !(driver_features_ & kVirtioFVersion1)) {
      // §3.1.1 step 6: FEATURES_OK stays clear and the driver sees the refusal on read-back.
      return DriverError(MmioDriverError::kFeaturesRefused);
    }
  }
  if ((added & kVirtioStatusDriverOk) && needs_reset_) {
    return DriverError(MmioDriverError::kBadStatus);
  }
  status_ = want;
  if (added & kVirtioStatusDriverOk) {
    Result<void> r = delegate_->OnActivate(driver_features_, queues_);
    if (!r.has_value()) SetNeedsReset();
  }
}

void MmioTransport::Reset() {
  // §4.2.2.1: InterruptStatus and every QueueReady cleared; the rest of the driver-written
  // state goes too so that nothing from the previous driver survives. The config bytes and
  // their generation are the device's and stay.
  const bool was_pending = interrupt_status_ != 0;
  status_ = 0;
  needs_reset_ = false;
  driver_features_ = 0;
  driver_features_invalid_ = false;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  interrupt_status_ = 0;
  std::fill(queues_.begin(), queues_.end(), MmioQueue{});
  if (was_pending) delegate_->OnInterrupt(false);
  delegate_->OnReset();
}

void MmioTransport::Notify(uint32_t bits) {
  interrupt_status_ |= bits;
  delegate_->OnInterrupt(true);
}

void MmioTransport::RaiseInterrupt(uint32_t bits) {
  bits &= kMmioIntUsedBuffer | kMmioIntConfigChange;
  if (bits == 0 || !activated()) return;
  Notify(bits);
}

void MmioTransport::SetNeedsReset() {
  if (needs_reset_) return;
  needs_reset_ = true;
  if (activated()) Notify(kMmioIntConfigChange);  // §2.1.2
}

Result<void> MmioTransport::SetConfig(std::span<const uint8_t> config) {
  if (config.size() > kMmioMaxConfigSize) {
    return InvalidArgument("virtio-mmio: device config larger than 256 bytes");
  }
  info_.config.assign(config.begin(), config.end());
  ++config_generation_;
  if (activated()) Notify(kMmioIntConfigChange);
  return Ok();
}

}  // namespace vmm::virtio
