// A hostile driver against the virtio-mmio register window (vmm/vm/virtio_mmio/mmio_transport.h):
// any sequence of reads and writes of any width at any offset, interleaved with the owner's
// own calls (interrupts, DEVICE_NEEDS_RESET, new config bytes), with a delegate that may
// fail activation and that calls back into the transport from inside its callbacks.
//
// Input: a 4-byte header (queue count and sizes, config length, flags), then 7-byte ops:
//   op, offset lo, offset hi, value (4 bytes, little-endian).
// Checked after every op: the invariants a backend relies on. Nothing reaches the owner
// unless the spec's state allows it (activation only with FEATURES_OK and VERSION_1, every
// ready queue valid, notifications only for running queues), identity registers never
// change, InterruptStatus holds only defined bits, reads never leave stale bytes.
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"
#include "vmm/vm/virtio_mmio/mmio_transport.h"

namespace {

using namespace vmm::virtio;

MmioTransport* g_transport = nullptr;
const MmioDeviceInfo* g_info = nullptr;

bool QueueValid(const MmioQueue& q, uint32_t max) {
  return q.size != 0 && (q.size & (q.size - 1)) == 0 && q.size <= max && q.desc_gpa % 16 == 0 &&
         q.avail_gpa % 2 == 0 && q.used_gpa % 4 == 0;
}

struct CheckingDelegate : MmioTransportDelegate {
  void OnReset() override {
    CHECK(g_transport->status() == 0 && g_transport->interrupt_status() == 0);
  }
  vmm::Result<void> OnActivate(uint64_t features, std::span<const MmioQueue> queues) override {
    CHECK(features & kVirtioFVersion1);
    CHECK((features & ~g_info->features) == 0);
    CHECK(queues.size() == g_info->queue_max_sizes.size());
    for (size_t i = 0; i < queues.size(); ++i) {
      if (queues[i].ready) CHECK(QueueValid(queues[i], g_info->queue_max_sizes[i]));
    }
    if (flags & 1) g_transport->RaiseInterrupt(kMmioIntUsedBuffer);  // re-entry
    if (flags & 2) return vmm::Error(vmm::ErrorKind::kProtocol, "backend refused");
    return vmm::Ok();
  }
  void OnQueueStop(uint32_t queue) override {
    CHECK(queue < g_info->queue_max_sizes.size() && g_transport->activated());
  }
  void OnNotify(uint32_t queue) override {
    CHECK(queue < g_info->queue_max_sizes.size() && g_transport->activated());
    CHECK(g_transport->queues()[queue].ready);
    if (flags & 4) g_transport->SetNeedsReset();  // a backend fault on the kick
  }
  void OnInterrupt(bool asserted) override {
    CHECK(asserted == (g_transport->interrupt_status() != 0));
  }
  void OnConfigWrite(uint64_t offset, std::span<const uint8_t> data) override {
    CHECK(offset < g_transport->config().size() &&
          data.size() <= g_transport->config().size() - offset);
  }
  uint8_t flags = 0;
};

// Mostly register offsets, so the state machine gets deep; sometimes anything.
uint64_t PickOffset(uint8_t op, uint16_t raw) {
  if (op & 0x20) return raw;                    // raw: beyond the window too
  if (op & 0x40) return 0x100 + (raw % 0x110);  // config, past its end as well
  return (raw % 0x40) * 4;                      // an aligned register
}

constexpr size_t kWidths[8] = {4, 4, 4, 1, 2, 8, 0, 3};

void W32(MmioTransport& t, uint32_t reg, uint32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  t.Write(reg, b);
}

// A plausible driver move, mostly well-formed, so that random inputs get past FEATURES_OK
// and DRIVER_OK to the states where queues run and the owner is called.
void DriverStep(MmioTransport& t, uint64_t offered, uint16_t raw, uint32_t value) {
  const bool odd = value & 0x80000000;  // now and then a wrong value instead
  switch (raw % 8) {
    case 0: {  // the next status step, as Linux's virtio_add_status does it
      uint8_t b[4];
      t.Read(kMmioRegStatus, b);
      uint8_t step = kVirtioStatusFailed;
      for (uint8_t bit : {kVirtioStatusAcknowledge, kVirtioStatusDriver, kVirtioStatusFeaturesOk,
                          kVirtioStatusDriverOk}) {
        if (!(b[0] & bit)) {
          step = bit;
          break;
        }
      }
      if ((value & 0xF) == 0xF) step = kVirtioStatusFailed;
      W32(t, kMmioRegStatus, odd ? value & 0x1FF : uint32_t{b[0]} | step);
      break;
    }
    case 1:  // accept the offered features, minus whatever `value` drops
      W32(t, kMmioRegDriverFeaturesSel, 0);
      W32(t, kMmioRegDriverFeatures, static_cast<uint32_t>(offered) & (odd ? value : ~0u));
      W32(t, kMmioRegDriverFeaturesSel, 1);
      W32(t, kMmioRegDriverFeatures, static_cast<uint32_t>(offered >> 32) ^ (value & 1));
      break;
    case 2:  // a whole queue, as in §4.2.3.2
      W32(t, kMmioRegQueueSel, value % 4);
      W32(t, kMmioRegQueueNum, 1u << ((value >> 2) % 17));
      W32(t, kMmioRegQueueDescLow, (value & 0xFFF0) << 8);
      W32(t, kMmioRegQueueDriverLow, (value & 0xFFFE) << 4);
      W32(t, kMmioRegQueueDeviceLow, (value & 0xFFFC) << 12);
      W32(t, kMmioRegQueueReady, odd ? value : 1);
      break;
    case 3:
      W32(t, kMmioRegQueueSel, odd ? value : value % 4);
      break;
    case 4:
      W32(t, kMmioRegQueueNum, odd ? value : 1u << (value % 17));
      break;
    case 5: {  // one of the three ring addresses, aligned unless odd
      static constexpr uint32_t kLow[] = {kMmioRegQueueDescLow, kMmioRegQueueDriverLow,
                                          kMmioRegQueueDeviceLow};
      const uint32_t reg = kLow[value % 3];
      W32(t, reg, odd ? value : value & ~0xFu);
      W32(t, reg + 4, (value & 0x40000000) ? 0xFFFFFFFF : 0);
      break;
    }
    case 6:
      W32(t, kMmioRegQueueReady, odd ? value : value & 1);
      break;
    case 7:
      if (value & 0x100) {
        W32(t, kMmioRegQueueNotify, odd ? value : value % 4);
      } else {
        W32(t, kMmioRegInterruptAck, odd ? value : value & 3);
      }
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  MmioDeviceInfo info;
  info.device_id = kVirtioIdBlock;
  info.features = kVirtioFVersion1 | kVirtioRingFEventIdx | kVirtioRingFIndirectDesc | 0x3FF;
  const unsigned queues = data[0] % 4;
  for (unsigned i = 0; i < queues; ++i) {
    info.queue_max_sizes.push_back(1u << ((data[1] >> i) % 16));
  }
  info.config.resize(data[2] % 0x101);
  for (size_t i = 0; i < info.config.size(); ++i) info.config[i] = static_cast<uint8_t>(i);
  info.used_buffer_via_irqfd = data[3] & 0x80;

  CheckingDelegate delegate;
  delegate.flags = data[3];
  auto created = MmioTransport::Create(info, delegate);
  CHECK(created.has_value());
  MmioTransport& t = created.value();
  g_transport = &t;
  g_info = &info;

  uint8_t buf[16];
  for (FuzzReader in{data + 4, size - 4}; in.left() >= FuzzReader::kAccessBytes;) {
    const auto [op, raw, value] = in.NextAccess();
    const uint64_t offset = PickOffset(op, raw);
    const size_t width = kWidths[(op >> 2) & 7];
    switch (op & 3) {
      case 0: {  // read: every byte of the access is written
        const uint8_t* b = CheckedRead(width, [&](std::span<uint8_t> out) { t.Read(offset, out); });
        if (width == 4 && offset < 0x100) {
          uint32_t v;
          std::memcpy(&v, b, 4);
          if (offset == kMmioRegMagicValue) CHECK(v == kMmioMagicValue);
          if (offset == kMmioRegVersion) CHECK(v == kMmioVersion);
          if (offset == kMmioRegInterruptStatus) CHECK((v & ~3u) == 0);
        }
        break;
      }
      case 1: {
        std::memset(buf, 0, sizeof(buf));
        std::memcpy(buf, &value, 4);
        std::memcpy(buf + 4, &value, 4);
        t.Write(offset, std::span<const uint8_t>(buf, width));
        break;
      }
      case 2:
        DriverStep(t, info.features, raw, value);
        break;
      case 3:  // the owner
        switch (raw % 4) {
          case 0:
            t.RaiseInterrupt(value);
            break;
          case 1:
            t.SetNeedsReset();
            break;
          case 2: {
            std::vector<uint8_t> config(value % 0x110, static_cast<uint8_t>(op));
            const bool ok = t.SetConfig(config).has_value();
            CHECK(ok == (config.size() <= kMmioMaxConfigSize));
            break;
          }
          case 3:
            CHECK(t.driver_errors() >= (t.last_driver_error() != MmioDriverError::kNone));
            break;
        }
        break;
    }
    // Invariants between accesses.
    const uint8_t s = t.status();
    if (s & kVirtioStatusDriverOk) CHECK(s & kVirtioStatusFeaturesOk);
    if (s & kVirtioStatusFeaturesOk) {
      CHECK(t.driver_features() & kVirtioFVersion1);
      CHECK((t.driver_features() & ~info.features) == 0);
    }
    if (s & kVirtioStatusFeaturesOk) CHECK(s & kVirtioStatusDriver);
    if (s & kVirtioStatusDriver) CHECK(s & kVirtioStatusAcknowledge);
    CHECK((t.interrupt_status() & ~3u) == 0);
    if (!t.activated()) CHECK(t.interrupt_status() == 0);
    for (size_t i = 0; i < t.queues().size(); ++i) {
      if (t.queues()[i].ready) CHECK(QueueValid(t.queues()[i], info.queue_max_sizes[i]));
    }
  }
  g_transport = nullptr;
  return 0;
}
