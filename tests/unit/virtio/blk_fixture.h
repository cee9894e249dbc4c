// Shared fixture for virtio-blk tests: fake RAM, a fake driver on a 16-entry queue, a 64 KiB
// fake image, and helpers that submit requests the way Linux's virtio_blk lays them out
// (header | data... | status), or any other way a test wants.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "tests/unit/virtio/fake_driver.h"
#include "vmm/device/blk/blk.h"
#include "vmm/device/blk/fake_block_backend.h"
#include "vmm/formats/virtio/fake_guest_ram.h"

namespace vmm::virtio::testing {

inline std::array<uint8_t, 16> BlkHeader(uint32_t type, uint64_t sector) {
  std::array<uint8_t, 16> h{};
  std::memcpy(h.data(), &type, 4);
  std::memcpy(h.data() + 8, &sector, 8);
  return h;
}

class BlkFixture : public ::testing::Test {
 protected:
  static constexpr uint64_t kImageSize = 64 * 1024;
  static constexpr uint8_t kStatusUnset = 0xEE;

  explicit BlkFixture(bool read_only = false)
      : mem_(1 << 20), drv_(mem_, 16), disk_(kImageSize, read_only) {
    for (size_t i = 0; i < disk_.image.size(); ++i) disk_.image[i] = static_cast<uint8_t>(i * 7);
  }

  BlkDevice& Device(BlkOptions options = {}) {
    if (!blk_) {
      auto d = BlkDevice::Create(disk_, std::move(options));
      if (!d.has_value()) ADD_FAILURE() << d.error().ToString();
      blk_.emplace(std::move(d).value());
      blk_->SetDriverFeatures(blk_->features());
    }
    return *blk_;
  }

  // Header bytes placed in guest RAM; returns the gpa.
  uint64_t PutHeader(uint32_t type, uint64_t sector) {
    return drv_.AllocBytes(BlkHeader(type, sector));
  }
  uint64_t PutStatus() {
    uint64_t s = drv_.Alloc(1);
    mem_.Put<uint8_t>(s, kStatusUnset);
    return s;
  }
  // Guest data filled with `fill`.
  uint64_t PutData(uint64_t len, uint8_t fill) {
    uint64_t d = drv_.Alloc(len);
    std::span<uint8_t> s = mem_.At(d, len);
    std::fill(s.begin(), s.end(), fill);
    return d;
  }

  // The usual request: header, one data buffer (writable for IN), status. Returns status gpa.
  uint64_t Submit(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t data_len,
                  bool data_writable) {
    uint64_t h = PutHeader(type, sector), s = PutStatus();
    uint16_t head =
        data_len
            ? drv_.AddChain({{h, 16, false}, {data_gpa, data_len, data_writable}, {s, 1, true}})
            : drv_.AddChain({{h, 16, false}, {s, 1, true}});
    drv_.Publish(head);
    return s;
  }

  // Serves the queue (created on first use with the device's limits).
  Result<QueueRun> Serve() {
    if (!queue_) {
      auto q = SplitQueue::Create(mem_.ram(), drv_.config(true, true), Device().queue_limits());
      if (!q.has_value()) return q.error();
      queue_.emplace(std::move(q).value());
    }
    return Device().ProcessQueue(*queue_);
  }
  // Serves and returns the status byte at `status_gpa`.
  uint8_t ServeStatus(uint64_t status_gpa) {
    auto run = Serve();
    EXPECT_TRUE(run.has_value()) << run.error().ToString();
    return mem_.Get<uint8_t>(status_gpa);
  }
  size_t CountOps(FakeBlockBackend::Kind kind) const {
    size_t n = 0;
    for (const auto& op : disk_.ops) n += op.kind == kind;
    return n;
  }

  FakeGuestRam mem_;
  FakeDriver drv_;
  FakeBlockBackend disk_;
  std::optional<BlkDevice> blk_;
  std::optional<SplitQueue> queue_;
};

}  // namespace vmm::virtio::testing
