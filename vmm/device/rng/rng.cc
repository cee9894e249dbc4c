#include "vmm/device/rng/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

namespace vmm::virtio {

Result<void> GetrandomEntropySource::Fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    // Short returns happen for large requests or on a signal; loop until full.
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("getrandom");
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<uint32_t> RngDevice::HandleChain(const DescriptorChain& chain) {
  uint32_t written = 0;
  for (const GuestBuffer& b : chain.writable) {
    if (written >= max_bytes_) break;
    const size_t n = std::min<uint64_t>(b.bytes.size(), max_bytes_ - written);
    // Straight into guest memory: nothing here is read back, so a racing guest only
    // changes what it will read itself.
    RETURN_IF_ERROR(source_->Fill(b.bytes.first(n)));
    written += static_cast<uint32_t>(n);
  }
  return written;
}

Result<QueueRun> RngDevice::ProcessQueue(SplitQueue& queue) {
  return ServeQueue(queue, queue.size(),
                    [this](const DescriptorChain& chain) { return HandleChain(chain); });
}

}  // namespace vmm::virtio
