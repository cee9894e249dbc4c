// A virtio device whose emulation runs in a device process: the virtio-mmio registers are
// here (trapped by MMIO exits); the data path runs between the guest and the device
// process without us: kicks by KVM ioeventfd, completions by KVM irqfd (ARCHITECTURE.md §1).
//
//   ASSIGN_OR_RETURN(auto dev, VhostMmioDevice::Create(vm, mem, std::move(frontend), spec));
//   RETURN_IF_ERROR(mmio_bus.Insert(spec.base, x86::kVirtioMmioSize, dev.get()));
//
// The device process is untrusted: when it refuses or fails to answer, the device is put in
// DEVICE_NEEDS_RESET and `on_failure` is told; the VM goes on.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/vm/devices/io_bus.h"
#include "vmm/vm/kvm/kvm.h"
#include "vmm/vm/memory/guest_memory.h"
#include "vmm/vm/virtio_mmio/mmio_transport.h"
#include "vmm/vm/virtio_mmio/vhost_user_frontend.h"

namespace vmm {

struct VhostMmioSpec {
  std::string name;        // "blk0", for messages
  uint32_t device_id = 0;  // virtio device id (2 blk, 4 rng)
  uint32_t config_size = 0;
  uint64_t base = 0;  // guest-physical window
  uint32_t gsi = 0;
  uint32_t queue_size = 256;
};

class VhostMmioDevice final : public devices::BusDevice, public virtio::MmioTransportDelegate {
 public:
  static Result<std::unique_ptr<VhostMmioDevice>> Create(
      kvm::KvmVm& vm, const GuestMemory& mem, vhost_user::Frontend frontend,
      const VhostMmioSpec& spec, std::function<void(const std::string&)> on_failure);

  // BusDevice: guest accesses to the register window.
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // MmioTransportDelegate.
  void OnReset() override;
  Result<void> OnActivate(uint64_t driver_features,
                          std::span<const virtio::MmioQueue> queues) override;
  void OnQueueStop(uint32_t queue) override;
  void OnNotify(uint32_t queue) override;
  void OnInterrupt(bool asserted) override;

  // The device process's per-ring error eventfds (it signals one when the guest broke the
  // ring and it stopped serving it). The VM's control loop polls them and calls
  // OnRingError, which sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) so the driver resets.
  std::vector<int> error_fds() const;
  void OnRingError(int fd);

 private:
  VhostMmioDevice(const GuestMemory& mem, vhost_user::Frontend frontend, VhostMmioSpec spec,
                  std::function<void(const std::string&)> on_failure)
      : mem_(mem),
        frontend_(std::move(frontend)),
        spec_(std::move(spec)),
        on_failure_(std::move(on_failure)) {}
  void Fail(const Error& e);

  const GuestMemory& mem_;
  vhost_user::Frontend frontend_;
  VhostMmioSpec spec_;
  std::function<void(const std::string&)> on_failure_;
  std::unique_ptr<virtio::MmioTransport> transport_;
  std::vector<UniqueFd> kicks_;  // registered with KVM_IOEVENTFD on QueueNotify
  std::vector<UniqueFd> calls_;  // registered with KVM_IRQFD on the device's GSI
  std::vector<UniqueFd> errs_;   // SET_VRING_ERR: the device process stopped the ring
  // Guards transport_: vCPU threads (register accesses) and the control loop (ring errors).
  std::mutex lock_;
  std::vector<bool> running_;
  bool failed_ = false;
};

}  // namespace vmm
