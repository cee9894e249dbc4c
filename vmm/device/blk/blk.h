// BlkDevice: virtio-blk request handling (virtio 1.2 §5.2) over a BlockBackend: one request
// per descriptor chain, header + data + status byte, served synchronously.
//
//   ASSIGN_OR_RETURN(BlkDevice blk, BlkDevice::Create(disk, {.serial = "vda"}));
//   blk.SetDriverFeatures(acked);                   // after FEATURES_OK
//   ASSIGN_OR_RETURN(SplitQueue q, SplitQueue::Create(ram, config, blk.queue_limits()));
//   ASSIGN_OR_RETURN(QueueRun run, blk.ProcessQueue(q));   // on each kick
//
// BlkDevice borrows the backend, which must outlive it. A malformed request that still has
// a status byte is answered VIRTIO_BLK_S_IOERR (the device carries on); only a chain with no
// writable byte at all is an Error (the caller sets DEVICE_NEEDS_RESET). The image is never
// touched outside [0, capacity * 512), and a read-only image is never written.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"
#include "vmm/device/blk/block_backend.h"
#include "vmm/formats/virtio/split_queue.h"

namespace vmm::virtio {

// Feature bits, §5.2.3.
inline constexpr uint64_t kVirtioBlkFSizeMax = 1ull << 1;
inline constexpr uint64_t kVirtioBlkFSegMax = 1ull << 2;
inline constexpr uint64_t kVirtioBlkFRo = 1ull << 5;
inline constexpr uint64_t kVirtioBlkFBlkSize = 1ull << 6;
inline constexpr uint64_t kVirtioBlkFFlush = 1ull << 9;

// Request types and status values, §5.2.6.
inline constexpr uint32_t kVirtioBlkTIn = 0;
inline constexpr uint32_t kVirtioBlkTOut = 1;
inline constexpr uint32_t kVirtioBlkTFlush = 4;
inline constexpr uint32_t kVirtioBlkTGetId = 8;
inline constexpr uint8_t kVirtioBlkSOk = 0;
inline constexpr uint8_t kVirtioBlkSIoErr = 1;
inline constexpr uint8_t kVirtioBlkSUnsupp = 2;

inline constexpr uint64_t kSectorSize = 512;           // protocol unit, whatever blk_size says
inline constexpr uint64_t kBlkRequestHeaderSize = 16;  // le32 type, le32 reserved, le64 sector
inline constexpr size_t kBlkIdBytes = 20;              // GET_ID: NUL-padded, no NUL if 20 long

// struct virtio_blk_config up to write_zeroes_may_unmap/unused1 (§5.2.4); the later fields
// belong to features we do not offer.
inline constexpr size_t kBlkConfigSize = 60;
inline constexpr size_t kBlkConfigCapacity = 0;    // le64, 512-byte sectors
inline constexpr size_t kBlkConfigSizeMax = 8;     // le32
inline constexpr size_t kBlkConfigSegMax = 12;     // le32
inline constexpr size_t kBlkConfigBlkSize = 20;    // le32
inline constexpr size_t kBlkConfigNumQueues = 34;  // le16

struct BlkOptions {
  std::string serial = {};  // GET_ID string; bytes past 20 are dropped
  // Data segments per request. A request is seg_max + 2 descriptors (header, status) and
  // a chain is at most the queue size long (§2.7.5.3.1): keep seg_max <= queue size - 2.
  uint32_t seg_max = 126;
  // Bytes per segment (VIRTIO_BLK_F_SIZE_MAX). With seg_max it bounds a request, so the
  // queue's chain cap is a limit the driver knows about rather than a surprise.
  uint32_t size_max = 64 * 1024;
  uint32_t blk_size = 512;  // power of two, 512..65536
};

class BlkDevice {
 public:
  // Checks the options; the capacity is the backend's size in whole sectors.
  static Result<BlkDevice> Create(BlockBackend& backend, BlkOptions options = {});

  // Offered features (§5.2.3): VERSION_1, FLUSH, SEG_MAX, SIZE_MAX, BLK_SIZE, EVENT_IDX,
  // INDIRECT_DESC, and RO for a read-only backend.
  uint64_t features() const { return features_; }
  // What the driver accepted. Without FLUSH every write is made stable before it completes
  // (§5.2.6.2, first case). Until called, writes are written through.
  void SetDriverFeatures(uint64_t acked) { flush_negotiated_ = (acked & kVirtioBlkFFlush) != 0; }

  std::span<const uint8_t> config() const { return config_; }
  // Copies config bytes [offset, offset + out.size()); fails unless the range is non-empty
  // and inside the config (the transport then answers zeros). Any offset/width.
  Result<void> ReadConfig(uint64_t offset, std::span<uint8_t> out) const;

  // Chain limits matching what we offer: seg_max * size_max of data plus header and status.
  QueueLimits queue_limits() const;
  uint64_t capacity_sectors() const { return capacity_sectors_; }

  // Serves one request; returns the used length (the whole writable part: the status byte
  // is its last byte). Error only when the chain has no writable byte to put a status in.
  Result<uint32_t> HandleChain(const DescriptorChain& chain);

  // Serves up to queue.size() chains (one kick's worth of work).
  Result<QueueRun> ProcessQueue(SplitQueue& queue);

 private:
  BlkDevice(BlockBackend& backend, const BlkOptions& options);
  uint8_t Execute(const DescriptorChain& chain);
  uint8_t Read(const DescriptorChain& chain, uint64_t sector);
  uint8_t Write(const DescriptorChain& chain, uint64_t sector);
  uint8_t GetId(const DescriptorChain& chain);
  bool DataInImage(uint64_t sector, uint64_t len) const;

  BlockBackend* backend_;
  std::array<uint8_t, kBlkIdBytes> id_{};
  std::array<uint8_t, kBlkConfigSize> config_{};
  uint64_t features_ = 0;
  uint64_t capacity_sectors_ = 0;
  uint64_t max_data_bytes_ = 0;
  bool read_only_ = false;
  bool flush_negotiated_ = false;
};

}  // namespace vmm::virtio
