#include "vmm/device/blk/blk.h"

#include <algorithm>
#include <cstring>

#include "base/bytes.h"
#include "vmm/formats/virtio/features.h"

namespace vmm::virtio {
namespace {

// Calls fn(position, span) over bytes [skip, skip + len) of the buffers laid end to end
// (§2.7.4: the device may not assume how the driver split a request into descriptors).
template <typename Fn>
Result<void> ForEachSegment(std::span<const GuestBuffer> buffers, uint64_t skip, uint64_t len,
                            Fn&& fn) {
  uint64_t pos = 0;
  for (const GuestBuffer& b : buffers) {
    if (len == 0) break;
    const uint64_t size = b.bytes.size();
    if (skip >= size) {
      skip -= size;
      continue;
    }
    const uint64_t n = std::min(size - skip, len);
    RETURN_IF_ERROR(fn(pos, b.bytes.subspan(skip, n)));
    pos += n;
    len -= n;
    skip = 0;
  }
  if (len != 0) return Error(ErrorKind::kInternal, "virtio-blk: buffers shorter than expected");
  return Ok();
}

// Copies the first out.size() bytes of `buffers`, each byte loaded once.
bool CopyFromGuest(std::span<const GuestBuffer> buffers, std::span<uint8_t> out) {
  auto copy = [&](uint64_t pos, std::span<uint8_t> seg) -> Result<void> {
    for (size_t i = 0; i < seg.size(); ++i) out[pos + i] = LoadShared<uint8_t>(&seg[i]);
    return Ok();
  };
  return ForEachSegment(buffers, 0, out.size(), copy).has_value();
}

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

Result<BlkDevice> BlkDevice::Create(BlockBackend& backend, BlkOptions options) {
  if (options.seg_max == 0 || options.seg_max > kMaxQueueSize - 2) {
    return InvalidArgument("virtio-blk: seg_max must be 1..32766");
  }
  if (options.size_max < 4096) return InvalidArgument("virtio-blk: size_max below one page");
  if (!IsPowerOfTwo(options.blk_size) || options.blk_size < 512 || options.blk_size > 65536) {
    return InvalidArgument("virtio-blk: blk_size must be a power of two in 512..65536");
  }
  return BlkDevice(backend, options);
}

BlkDevice::BlkDevice(BlockBackend& backend, const BlkOptions& options)
    : backend_(&backend),
      capacity_sectors_(backend.size() / kSectorSize),
      max_data_bytes_(uint64_t{options.seg_max} * options.size_max),
      read_only_(backend.read_only()) {
  std::memcpy(id_.data(), options.serial.data(), std::min(options.serial.size(), kBlkIdBytes));
  features_ = kVirtioFVersion1 | kVirtioRingFEventIdx | kVirtioRingFIndirectDesc |
              kVirtioBlkFFlush | kVirtioBlkFSegMax | kVirtioBlkFSizeMax | kVirtioBlkFBlkSize;
  if (read_only_) features_ |= kVirtioBlkFRo;
  // §5.2.4; everything not set here (geometry, topology, writeback, unused0/1) stays 0.
  StoreLe<uint64_t>(config_, kBlkConfigCapacity, capacity_sectors_);
  StoreLe<uint32_t>(config_, kBlkConfigSizeMax, options.size_max);
  StoreLe<uint32_t>(config_, kBlkConfigSegMax, options.seg_max);
  StoreLe<uint32_t>(config_, kBlkConfigBlkSize, options.blk_size);
  StoreLe<uint16_t>(config_, kBlkConfigNumQueues, 1);
}

Result<void> BlkDevice::ReadConfig(uint64_t offset, std::span<uint8_t> out) const {
  if (out.empty() || !InBounds(config_.size(), offset, out.size())) {
    return Error(ErrorKind::kGuest, "virtio-blk: config read outside the config space");
  }
  std::memcpy(out.data(), config_.data() + offset, out.size());
  return Ok();
}

QueueLimits BlkDevice::queue_limits() const {
  QueueLimits limits;
  // Header (16), status (1), and GET_ID's 20 bytes fit in the slack.
  limits.max_chain_bytes = max_data_bytes_ + 4096;
  return limits;
}

Result<QueueRun> BlkDevice::ProcessQueue(SplitQueue& queue) {
  return ServeQueue(queue, queue.size(),
                    [this](const DescriptorChain& chain) { return HandleChain(chain); });
}

Result<uint32_t> BlkDevice::HandleChain(const DescriptorChain& chain) {
  // §5.2.6: the status is the last byte of the device-writable part.
  if (chain.writable.empty() || chain.writable_len == 0) {
    return Error(ErrorKind::kGuest, "virtio-blk: request without a writable status byte");
  }
  const uint8_t status = Execute(chain);
  std::span<uint8_t> last = chain.writable.back().bytes;
  StoreShared<uint8_t>(&last[last.size() - 1], status);
  // The used length covers the status byte, which ends the writable part (as QEMU does,
  // also when a failed read left the data untouched).
  return static_cast<uint32_t>(std::min<uint64_t>(chain.writable_len, UINT32_MAX));
}

uint8_t BlkDevice::Execute(const DescriptorChain& chain) {
  // TOCTOU: the header is copied out once; type and sector come from this copy only, so a
  // driver rewriting it mid-request cannot move a checked request elsewhere.
  std::array<uint8_t, kBlkRequestHeaderSize> header;
  if (chain.readable_len < header.size() || !CopyFromGuest(chain.readable, header)) {
    return kVirtioBlkSIoErr;
  }
  const uint32_t type = LoadLe<uint32_t>(header, 0).value_or(0);
  const uint64_t sector = LoadLe<uint64_t>(header, 8).value_or(0);
  switch (type) {
    case kVirtioBlkTIn:
      return Read(chain, sector);
    case kVirtioBlkTOut:
      return Write(chain, sector);
    case kVirtioBlkTFlush:
      // Synchronous: the status is written only after fdatasync returned.
      return backend_->Flush().has_value() ? kVirtioBlkSOk : kVirtioBlkSIoErr;
    case kVirtioBlkTGetId:
      return GetId(chain);
    default:
      return kVirtioBlkSUnsupp;  // DISCARD, WRITE_ZEROES, ... are not offered
  }
}

// [sector * 512, + len) lies inside the image, checked without overflow (sector is the
// guest's, anything up to 2^64 - 1) and len is whole sectors (§5.2.6.1).
bool BlkDevice::DataInImage(uint64_t sector, uint64_t len) const {
  if (len % kSectorSize != 0 || len > max_data_bytes_) return false;
  return sector <= capacity_sectors_ && len / kSectorSize <= capacity_sectors_ - sector;
}

uint8_t BlkDevice::Read(const DescriptorChain& chain, uint64_t sector) {
  // Data goes to the device: readable bytes past the header mean the driver got the
  // direction wrong.
  if (chain.readable_len != kBlkRequestHeaderSize) return kVirtioBlkSIoErr;
  const uint64_t len = chain.writable_len - 1;  // all but the status byte
  if (!DataInImage(sector, len)) return kVirtioBlkSIoErr;
  const uint64_t offset = sector * kSectorSize;  // no overflow: sector <= capacity
  auto read = [&](uint64_t pos, std::span<uint8_t> seg) {
    return backend_->ReadAt(offset + pos, seg);
  };
  return ForEachSegment(chain.writable, 0, len, read).has_value() ? kVirtioBlkSOk
                                                                  : kVirtioBlkSIoErr;
}

uint8_t BlkDevice::Write(const DescriptorChain& chain, uint64_t sector) {
  if (read_only_) return kVirtioBlkSIoErr;               // §5.2.6.2: and MUST NOT write any data
  if (chain.writable_len != 1) return kVirtioBlkSIoErr;  // only the status is writable
  const uint64_t len = chain.readable_len - kBlkRequestHeaderSize;
  // Every check is done before the first byte is written: a request that would leave the
  // image writes nothing.
  if (!DataInImage(sector, len)) return kVirtioBlkSIoErr;
  const uint64_t offset = sector * kSectorSize;
  auto write = [&](uint64_t pos, std::span<uint8_t> seg) {
    return backend_->WriteAt(offset + pos, seg);
  };
  if (!ForEachSegment(chain.readable, kBlkRequestHeaderSize, len, write).has_value()) {
    return kVirtioBlkSIoErr;
  }
  // §5.2.6.2: if FLUSH was offered but not negotiated, a completed write must be stable.
  if (!flush_negotiated_ && !backend_->Flush().has_value()) return kVirtioBlkSIoErr;
  return kVirtioBlkSOk;
}

uint8_t BlkDevice::GetId(const DescriptorChain& chain) {
  const uint64_t len = std::min<uint64_t>(chain.writable_len - 1, kBlkIdBytes);
  if (len == 0) return kVirtioBlkSIoErr;
  auto put = [&](uint64_t pos, std::span<uint8_t> seg) -> Result<void> {
    std::memcpy(seg.data(), id_.data() + pos, seg.size());
    return Ok();
  };
  return ForEachSegment(chain.writable, 0, len, put).has_value() ? kVirtioBlkSOk : kVirtioBlkSIoErr;
}

}  // namespace vmm::virtio
