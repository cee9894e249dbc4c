// MmioTransport: the device side of the virtio-mmio register window (virtio 1.2 §4.2.2,
// register layout version 2, modern devices only), as a pure state machine.
//
//   ASSIGN_OR_RETURN(MmioTransport t, MmioTransport::Create(info, delegate));
//   t.Write(0x070, status_bytes);  t.Read(0x100, config_bytes);   // from MMIO exits
//
// It sits in the vCPU process in front of an out-of-process (vhost-user) backend: it never
// touches guest RAM or queues. It records what the driver configures, enforces the status
// progression of §2.1 / §3.1.1 and the queue rules of §4.2.3.2, and tells its owner about
// reset, activation, queue stop and notifications through MmioTransportDelegate. The
// transport borrows the delegate, which must outlive it. Callbacks run after the transport's
// state is updated, so a delegate may call back into it (SetNeedsReset, RaiseInterrupt, ...).
//
// Every guest access is bounded: a malformed one (bad width, read of a write-only register,
// out-of-order status, bad queue, config access outside the config bytes) changes nothing,
// reads as zeros and is counted in driver_errors() with last_driver_error() saying why.
// Not thread-safe: the bus calls a device with its own lock held (vmm/vm/devices/io_bus.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "vmm/formats/virtio/features.h"
#include "vmm/formats/virtio/split_queue.h"

namespace vmm::virtio {

// §4.2.2: 0x100 bytes of registers, then the device-specific configuration.
inline constexpr uint64_t kMmioWindowSize = 0x200;
inline constexpr uint64_t kMmioConfigOffset = 0x100;
inline constexpr uint64_t kMmioMaxConfigSize = kMmioWindowSize - kMmioConfigOffset;
inline constexpr uint32_t kMmioMagicValue = 0x74726976;  // "virt", little-endian
inline constexpr uint32_t kMmioVersion = 2;              // modern; legacy devices say 1
// Our subsystem vendor ID, "CVMM" as little-endian bytes. Drivers only report it (§4.2.2
// leaves it free); it tells a guest this is not QEMU's 0x554D4551 ("QEMU").
inline constexpr uint32_t kMmioVendorId = 0x4D4D5643;
// Bound on queues per device: enough for multi-queue blk/net, small enough to scan.
inline constexpr uint32_t kMmioMaxQueues = 256;

// Register offsets, §4.2.2 table "MMIO Device Register Layout". R, W or RW per the spec.
enum MmioRegister : uint32_t {
  kMmioRegMagicValue = 0x000,         // R
  kMmioRegVersion = 0x004,            // R
  kMmioRegDeviceId = 0x008,           // R
  kMmioRegVendorId = 0x00c,           // R
  kMmioRegDeviceFeatures = 0x010,     // R
  kMmioRegDeviceFeaturesSel = 0x014,  // W
  kMmioRegDriverFeatures = 0x020,     // W
  kMmioRegDriverFeaturesSel = 0x024,  // W
  kMmioRegQueueSel = 0x030,           // W
  kMmioRegQueueNumMax = 0x034,        // R
  kMmioRegQueueNum = 0x038,           // W
  kMmioRegQueueReady = 0x044,         // RW
  kMmioRegQueueNotify = 0x050,        // W
  kMmioRegInterruptStatus = 0x060,    // R
  kMmioRegInterruptAck = 0x064,       // W
  kMmioRegStatus = 0x070,             // RW
  kMmioRegQueueDescLow = 0x080,       // W
  kMmioRegQueueDescHigh = 0x084,      // W
  kMmioRegQueueDriverLow = 0x090,     // W
  kMmioRegQueueDriverHigh = 0x094,    // W
  kMmioRegQueueDeviceLow = 0x0a0,     // W
  kMmioRegQueueDeviceHigh = 0x0a4,    // W
  kMmioRegShmSel = 0x0ac,             // W
  kMmioRegShmLenLow = 0x0b0,          // R
  kMmioRegShmLenHigh = 0x0b4,         // R
  kMmioRegShmBaseLow = 0x0b8,         // R
  kMmioRegShmBaseHigh = 0x0bc,        // R
  kMmioRegQueueReset = 0x0c0,         // RW, only with VIRTIO_F_RING_RESET: never offered
  kMmioRegConfigGeneration = 0x0fc,   // R
};

// InterruptStatus / InterruptACK bits, §4.2.2.
inline constexpr uint32_t kMmioIntUsedBuffer = 1;
inline constexpr uint32_t kMmioIntConfigChange = 2;

// Device status bits, §2.1 (DEVICE_NEEDS_RESET, set by the device only, is in features.h).
inline constexpr uint8_t kVirtioStatusAcknowledge = 1;
inline constexpr uint8_t kVirtioStatusDriver = 2;
inline constexpr uint8_t kVirtioStatusDriverOk = 4;
inline constexpr uint8_t kVirtioStatusFeaturesOk = 8;
inline constexpr uint8_t kVirtioStatusFailed = 128;

// Transport features (§6) this transport cannot carry, refused by Create if offered: packed
// rings (the §2.7 alignment checks are split-ring ones), SR-IOV (PCI only), notification
// data (QueueNotify is read as a bare queue index), NOTIF_CONFIG_DATA (PCI only) and
// RING_RESET (QueueReset is not implemented).
inline constexpr uint64_t kMmioUnsupportedFeatures =
    (1ull << 34) | (1ull << 37) | (1ull << 38) | (1ull << 39) | (1ull << 40);

// Why the last malformed guest access was refused. The owner can log it, rate-limited.
enum class MmioDriverError : uint8_t {
  kNone,
  kBadAccess,         // not an aligned 32-bit register access, or outside the window
  kReadWriteOnly,     // read of a write-only register (§4.2.2.2)
  kWriteReadOnly,     // write to a read-only register (§4.2.2.2)
  kUnknownRegister,   // an offset the register table does not describe
  kNoSuchQueue,       // QueueSel or QueueNotify names a queue the device lacks
  kQueueLocked,       // queue register written while ready or after DRIVER_OK (§4.2.2.2)
  kBadQueueConfig,    // QueueReady=1 with a bad size or misaligned ring (§2.7, §4.2.3.2)
  kBadQueueReady,     // a QueueReady value other than 0 or 1, or 1 out of sequence
  kBadStatus,         // status bits cleared, skipped or set out of order (§2.1.1, §3.1.1)
  kFeaturesRefused,   // FEATURES_OK with features not offered or without VERSION_1
  kFeaturesLocked,    // DriverFeatures written after FEATURES_OK (§3.1.1)
  kEarlyNotify,       // QueueNotify before DRIVER_OK or for a queue not ready (§3.1.1)
  kBadInterruptAck,   // InterruptACK with undefined bits
  kConfigOutOfRange,  // config access not 1/2/4/8 bytes fully inside the config
};
const char* MmioDriverErrorName(MmioDriverError error);

// One virtqueue as the driver configured it. Fields mirror QueueConfig; `size` is
// QueueNum as written and is valid (checked) only while `ready`.
struct MmioQueue {
  uint32_t size = 0;
  uint64_t desc_gpa = 0;   // Descriptor Area
  uint64_t avail_gpa = 0;  // Driver Area
  uint64_t used_gpa = 0;   // Device Area
  bool ready = false;

  // For a ready queue: the SplitQueue/vhost-user view, with the ring features negotiated.
  QueueConfig ToQueueConfig(uint64_t driver_features) const;
};

struct MmioDeviceInfo {
  uint32_t device_id = 0;  // §5: 2 blk, 4 rng, ...; not 0 (a placeholder, §4.2.2)
  // Offered features: must include VIRTIO_F_VERSION_1 and nothing of
  // kMmioUnsupportedFeatures.
  uint64_t features = 0;
  std::vector<uint32_t> queue_max_sizes;  // QueueNumMax per queue: powers of 2, <= 32768
  std::vector<uint8_t> config;            // device-specific config, <= 0x100 bytes
  // Used-buffer notifications bypass the transport (the backend signals an irqfd straight
  // into KVM), so InterruptStatus bit 0 reads as set while DRIVER_OK and ACK cannot clear
  // it: otherwise the driver would see a cause-less interrupt and skip its queues. §4.2.3.4
  // makes bit 0 mean "check every active queue", so a spurious bit costs one ring check.
  bool used_buffer_via_irqfd = false;
};

class MmioTransportDelegate {
 public:
  virtual ~MmioTransportDelegate() = default;
  // Status was written 0 (§2.1, §4.2.2): all transport state is already cleared. The owner
  // stops the backend; called for every reset write, even of an idle device.
  virtual void OnReset() = 0;
  // DRIVER_OK was set (§3.1.1 step 8): features are final and `queues` holds every queue,
  // those with ready == false unused. Kicks before DRIVER_OK were dropped (§3.1.1 forbids
  // them), so the backend should look at each ready ring once on start. An Error sets
  // DEVICE_NEEDS_RESET.
  virtual Result<void> OnActivate(uint64_t driver_features, std::span<const MmioQueue> queues) = 0;
  // The driver wrote QueueReady=0 to a running queue (§4.2.2.2 "to stop using the queue");
  // it reads back 0 at once, so the backend must have stopped the ring when this returns.
  virtual void OnQueueStop(uint32_t queue) = 0;
  // QueueNotify for a ready queue after DRIVER_OK. In production KVM's ioeventfd catches
  // these writes; this path remains for completeness and tests.
  virtual void OnNotify(uint32_t queue) = 0;
  // `asserted`: an event was raised (every time, for edge-triggered lines); false: ACK or
  // reset left no event pending (for level-triggered lines).
  virtual void OnInterrupt(bool asserted) = 0;
  // A driver write into the config bytes (already bounds-checked). The stored bytes do not
  // change: the owner forwards it to the backend and calls SetConfig with the result.
  virtual void OnConfigWrite(uint64_t offset, std::span<const uint8_t> data) {
    (void)offset;
    (void)data;
  }
};

class MmioTransport {
 public:
  // Checks the description; the transport starts in the reset state.
  static Result<MmioTransport> Create(MmioDeviceInfo info, MmioTransportDelegate& delegate);

  // A guest access at `offset` from the window base; data is the access width (the bus
  // gives 1, 2, 4 or 8 bytes; anything else is refused too). Never fails, never crashes.
  void Read(uint64_t offset, std::span<uint8_t> data);
  void Write(uint64_t offset, std::span<const uint8_t> data);

  // Owner side. Raises InterruptStatus bits (kMmioInt*) and calls OnInterrupt(true);
  // ignored before DRIVER_OK (§2.1.2: no notifications before it).
  void RaiseInterrupt(uint32_t bits);
  // Sets DEVICE_NEEDS_RESET until the next reset; after DRIVER_OK also sends a config
  // change notification (§2.1.2). DRIVER_OK is refused while it is set.
  void SetNeedsReset();
  // Replaces the config bytes (at most 0x100), bumps ConfigGeneration (§4.2.2: it must
  // change whenever a driver could see a torn read) and after DRIVER_OK notifies.
  Result<void> SetConfig(std::span<const uint8_t> config);

  // Driver status bits as the driver reads them, DEVICE_NEEDS_RESET included.
  uint8_t status() const;
  bool activated() const { return (status_ & kVirtioStatusDriverOk) != 0; }
  // The features the driver accepted; 0 until FEATURES_OK was accepted.
  uint64_t driver_features() const {
    return (status_ & kVirtioStatusFeaturesOk) ? driver_features_ : 0;
  }
  uint64_t device_features() const { return info_.features; }
  std::span<const MmioQueue> queues() const { return queues_; }
  uint32_t interrupt_status() const { return interrupt_status_; }
  uint32_t config_generation() const { return config_generation_; }
  std::span<const uint8_t> config() const { return info_.config; }
  uint64_t driver_errors() const { return driver_errors_; }
  MmioDriverError last_driver_error() const { return last_error_; }

 private:
  MmioTransport(MmioDeviceInfo info, MmioTransportDelegate& delegate);
  uint32_t ReadRegister(uint32_t reg);
  void WriteRegister(uint32_t reg, uint32_t value);
  void WriteStatus(uint32_t value);
  void WriteQueueReady(uint32_t value);
  void WriteQueueField(uint32_t reg, uint32_t value);
  bool QueueConfigValid(const MmioQueue& q, uint32_t max) const;
  MmioQueue* SelectedQueue();
  void Reset();
  void Notify(uint32_t bits);
  void DriverError(MmioDriverError error);

  MmioDeviceInfo info_;
  MmioTransportDelegate* delegate_;
  std::vector<MmioQueue> queues_;
  uint64_t driver_features_ = 0;  // as written, checked at FEATURES_OK
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t interrupt_status_ = 0;
  uint32_t config_generation_ = 0;
  uint8_t status_ = 0;  // driver-set bits; DEVICE_NEEDS_RESET is kept apart
  bool needs_reset_ = false;
  bool driver_features_invalid_ = false;  // a non-zero word beyond the 64 bits we know
  uint64_t driver_errors_ = 0;
  MmioDriverError last_error_ = MmioDriverError::kNone;
};

}  // namespace vmm::virtio
