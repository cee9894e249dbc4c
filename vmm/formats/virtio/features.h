// Feature bits and constants shared by the virtio device cores (virtio 1.2 §2.2 and §6).
//
//   uint64_t offered = kVirtioFVersion1 | kVirtioRingFEventIdx;
//   bool event_idx = (acked & kVirtioRingFEventIdx) != 0;
//
// Modern (VIRTIO_F_VERSION_1) devices only: no legacy layouts, everything little-endian.
#pragma once

#include <cstdint>

namespace vmm::virtio {

// Reserved feature bits, virtio 1.2 §6.
inline constexpr uint64_t kVirtioRingFIndirectDesc = 1ull << 28;
inline constexpr uint64_t kVirtioRingFEventIdx = 1ull << 29;
inline constexpr uint64_t kVirtioFVersion1 = 1ull << 32;

// Device status bit the transport sets when a device core reports a fault (§2.1).
inline constexpr uint8_t kVirtioStatusDeviceNeedsReset = 64;

// Device IDs (§5): what the transport reports in DeviceID.
inline constexpr uint32_t kVirtioIdBlock = 2;
inline constexpr uint32_t kVirtioIdEntropy = 4;

}  // namespace vmm::virtio
