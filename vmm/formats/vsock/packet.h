// The virtio-vsock packet header (virtio 1.2 §5.10.6): 44 little-endian bytes in front of
// every packet on the rx and tx queues, and the checks a packet from the guest must pass.
//
//   ASSIGN_OR_RETURN(Header h, ParseHeader(bytes));          // any 44+ bytes
//   RETURN_IF_ERROR(CheckGuestHeader(h, guest_cid, payload_len, limits));
//   std::array<uint8_t, kHeaderSize> out = EncodeHeader(h);
//
// Pure: no sockets, no queues (ARCHITECTURE.md §7, vmm/formats/). Only stream sockets
// (VIRTIO_VSOCK_TYPE_STREAM) exist here: VIRTIO_VSOCK_F_SEQPACKET is not offered.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"

namespace vmm::vsock {

inline constexpr uint32_t kVirtioIdVsock = 19;  // virtio 1.2 §5.10.1
inline constexpr uint32_t kConfigSize = 8;      // le64 guest_cid (§5.10.4)
inline constexpr uint32_t kNumQueues = 3;       // rx, tx, event (§5.10.2)
inline constexpr uint32_t kRxQueue = 0;
inline constexpr uint32_t kTxQueue = 1;
inline constexpr uint32_t kEventQueue = 2;

inline constexpr uint64_t kHostCid = 2;  // VMADDR_CID_HOST
// CIDs 0, 1, 2 and 0xffffffff are reserved (§5.10.4: guest_cid is a 32-bit value in a
// 64-bit field; the upper 32 bits are 0).
inline constexpr uint64_t kMinGuestCid = 3;
inline constexpr uint64_t kMaxGuestCid = 0xfffffffe;

inline constexpr size_t kHeaderSize = 44;
inline constexpr uint16_t kTypeStream = 1;

enum class Op : uint16_t {
  kRequest = 1,
  kResponse = 2,
  kRst = 3,
  kShutdown = 4,
  kRw = 5,
  kCreditUpdate = 6,
  kCreditRequest = 7,
};
const char* OpName(uint16_t op);

// SHUTDOWN flags (§5.10.6.4): the sender will receive / send no more.
inline constexpr uint32_t kShutdownRcv = 1;
inline constexpr uint32_t kShutdownSend = 2;

struct Header {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = 0;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;
  bool operator==(const Header&) const = default;
};

// Decodes the first kHeaderSize bytes; Error if there are fewer. No field is judged here.
Result<Header> ParseHeader(std::span<const uint8_t> bytes);
std::array<uint8_t, kHeaderSize> EncodeHeader(const Header& h);

struct GuestLimits {
  uint64_t guest_cid = 0;
  uint32_t max_payload = 64 * 1024;  // bytes of an RW packet's payload
};

// A packet the guest put on its tx queue, with `payload_len` bytes after the header:
// STREAM type, from the guest's CID to the host's, a known op, a length that is the payload
// that is there and at most the limit, payload only on RW, flags only on SHUTDOWN (and
// only its two bits). Error (kGuest) naming the first field that fails.
Result<void> CheckGuestHeader(const Header& h, uint64_t payload_len, const GuestLimits& limits);

// "REQUEST 2:1234 -> 3:5000 len 0": for log lines.
std::string Describe(const Header& h);

}  // namespace vmm::vsock
