// RngDevice: virtio-rng / entropy device (virtio 1.2 §5.4): fills the device-writable
// buffers of each request from an EntropySource, at most a bounded number of bytes each.
//
//   GetrandomEntropySource entropy;
//   RngDevice rng(entropy);                 // borrows the source; it must outlive rng
//   ASSIGN_OR_RETURN(QueueRun run, rng.ProcessQueue(queue));   // on each kick
//
// §5.4.6.2 lets the device use less than the whole buffer, and the driver reads the used
// length (§5.4.6.1), so a per-request cap is conforming and bounds what one kick can drain.
#pragma once

#include <cstdint>
#include <span>

#include "base/result.h"
#include "vmm/formats/virtio/features.h"
#include "vmm/formats/virtio/split_queue.h"

namespace vmm::virtio {

class EntropySource {
 public:
  virtual ~EntropySource() = default;
  // Fills all of `out` or fails.
  virtual Result<void> Fill(std::span<uint8_t> out) = 0;
};

// getrandom(2) from the kernel's pool: no file to open, so it works inside the sandbox.
class GetrandomEntropySource final : public EntropySource {
 public:
  Result<void> Fill(std::span<uint8_t> out) override;
};

class RngDevice {
 public:
  static constexpr uint32_t kDefaultMaxBytesPerRequest = 4096;

  explicit RngDevice(EntropySource& source,
                     uint32_t max_bytes_per_request = kDefaultMaxBytesPerRequest)
      : source_(&source), max_bytes_(max_bytes_per_request) {}

  // §5.4.3: no device-specific features; the ring features are ours to offer.
  uint64_t features() const {
    return kVirtioFVersion1 | kVirtioRingFEventIdx | kVirtioRingFIndirectDesc;
  }
  QueueLimits queue_limits() const { return {}; }

  // Fills writable buffers in order up to the cap; returns the bytes written (the used
  // length). Readable buffers, which §5.4.6.1 forbids, are ignored, never written. Error if
  // the entropy source fails (a host problem: the caller decides whether to retry).
  Result<uint32_t> HandleChain(const DescriptorChain& chain);

  // Serves up to queue.size() chains (one kick's worth of work).
  Result<QueueRun> ProcessQueue(SplitQueue& queue);

 private:
  EntropySource* source_;
  uint32_t max_bytes_;
};

}  // namespace vmm::virtio
