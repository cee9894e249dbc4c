#include "vmm/vm/virtio_mmio/vhost_mmio_device.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace vmm {
namespace {

// One event on an eventfd; a full counter (EAGAIN) already means "pending".
void Signal(const UniqueFd& fd) {
  uint64_t one = 1;
  (void)!write(fd.get(), &one, sizeof(one));
}

}  // namespace

Result<std::unique_ptr<VhostMmioDevice>> VhostMmioDevice::Create(
    kvm::KvmVm& vm, const GuestMemory& mem, vhost_user::Frontend frontend,
    const VhostMmioSpec& spec, std::function<void(const std::string&)> on_failure) {
  const uint32_t queues = frontend.num_queues();
  std::vector<vhost_user::GuestRegion> regions;
  for (const MemoryRegion& r : mem.regions())
    regions.push_back({r.guest_phys, r.size, r.file_offset});
  RETURN_IF_ERROR(frontend.SetMemTable(regions, mem.memfd()));
  ASSIGN_OR_RETURN(std::vector<uint8_t> config, frontend.GetConfig(spec.config_size));

  virtio::MmioDeviceInfo info;
  info.device_id = spec.device_id;
  info.features = frontend.device_features() & ~virtio::kMmioUnsupportedFeatures;
  info.queue_max_sizes.assign(queues, spec.queue_size);
  info.config = std::move(config);
  info.used_buffer_via_irqfd = true;

  std::unique_ptr<VhostMmioDevice> dev(
      new VhostMmioDevice(mem, std::move(frontend), spec, std::move(on_failure)));
  ASSIGN_OR_RETURN(virtio::MmioTransport t, virtio::MmioTransport::Create(std::move(info), *dev));
  dev->transport_ = std::make_unique<virtio::MmioTransport>(std::move(t));
  for (uint32_t q = 0; q < queues; ++q) {
    UniqueFd kick(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    UniqueFd call(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    UniqueFd err(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!kick.valid() || !call.valid() || !err.valid()) {
      return Error(ErrorKind::kSystem, "eventfd", errno);
    }
    RETURN_IF_ERROR(vm.AddIoeventfd(spec.base + virtio::kMmioRegQueueNotify, 4, q, kick.get()));
    RETURN_IF_ERROR(vm.AddIrqfd(call.get(), spec.gsi));
    dev->kicks_.push_back(std::move(kick));
    dev->calls_.push_back(std::move(call));
    dev->errs_.push_back(std::move(err));
  }
  dev->running_.assign(queues, false);
  return dev;
}

void VhostMmioDevice::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard<std::mutex> g(lock_);
  transport_->Read(offset, data);
}
void VhostMmioDevice::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard<std::mutex> g(lock_);
  transport_->Write(offset, data);
}

std::vector<int> VhostMmioDevice::error_fds() const {
  std::vector<int> fds;
  for (const UniqueFd& e : errs_) fds.push_back(e.get());
  return fds;
}

void VhostMmioDevice::OnRingError(int fd) {
  uint64_t count;
  if (read(fd, &count, sizeof(count)) != sizeof(count)) return;
  std::lock_guard<std::mutex> g(lock_);
  transport_->SetNeedsReset();
}

void VhostMmioDevice::Fail(const Error& e) {
  failed_ = true;
  if (on_failure_) on_failure_(spec_.name + ": " + e.ToString());
}

void VhostMmioDevice::OnReset() {
  for (uint32_t q = 0; q < running_.size(); ++q) OnQueueStop(q);
}

Result<void> VhostMmioDevice::OnActivate(uint64_t driver_features,
                                         std::span<const virtio::MmioQueue> queues) {
  if (failed_)
    return Error(ErrorKind::kProtocol, spec_.name + ": the device process failed earlier");
  // Rings outside guest RAM are the guest's mistake: refuse the activation (the transport
  // sets DEVICE_NEEDS_RESET) rather than hand the device process an address it must
  // reject as a protocol violation (virtio 1.2 §2.7: sizes of the three areas).
  for (uint32_t q = 0; q < queues.size(); ++q) {
    const virtio::MmioQueue& mq = queues[q];
    if (!mq.ready) continue;
    const uint64_t n = mq.size;
    if (mem_.Span(mq.desc_gpa, 16 * n).empty() || mem_.Span(mq.avail_gpa, 6 + 2 * n).empty() ||
        mem_.Span(mq.used_gpa, 6 + 8 * n).empty()) {
      return Error(ErrorKind::kGuest,
                   spec_.name + ": queue " + std::to_string(q) + " has a ring outside guest RAM");
    }
  }
  auto r = [&]() -> Result<void> {
    RETURN_IF_ERROR(frontend_.SetFeatures(driver_features));
    for (uint32_t q = 0; q < queues.size() && q < running_.size(); ++q) {
      if (!queues[q].ready) continue;
      vhost_user::RingSetup ring{queues[q].size, queues[q].desc_gpa, queues[q].avail_gpa,
                                 queues[q].used_gpa};
      RETURN_IF_ERROR(
          frontend_.StartQueue(q, ring, kicks_[q].get(), calls_[q].get(), errs_[q].get()));
      running_[q] = true;
      // Kicks before DRIVER_OK were dropped (§3.1.1): have the device look at the ring now.
      Signal(kicks_[q]);
    }
    return Ok();
  }();
  if (!r) Fail(r.error());
  return r;
}

void VhostMmioDevice::OnQueueStop(uint32_t queue) {
  if (queue >= running_.size() || !running_[queue] || failed_) return;
  running_[queue] = false;
  auto r = frontend_.StopQueue(queue);
  if (!r) Fail(r.error());
}

void VhostMmioDevice::OnNotify(uint32_t queue) {
  // Reached only if KVM did not take the write through the ioeventfd (e.g. another width).
  if (queue >= kicks_.size()) return;
  Signal(kicks_[queue]);
}

void VhostMmioDevice::OnInterrupt(bool asserted) {
  // Config changes and DEVICE_NEEDS_RESET: the same edge-triggered GSI, through the irqfd.
  if (!asserted || calls_.empty()) return;
  Signal(calls_[0]);
}

}  // namespace vmm
