// The vhost-user wire format (QEMU docs/interop/vhost-user.rst, "Message Specification"):
// a 12-byte header, a fixed-layout payload per request and the fds that travel with it.
//
//   ASSIGN_OR_RETURN(Message m, Decode(bytes, std::move(fds), Direction::kRequest));
//   ASSIGN_OR_RETURN(auto reply, EncodeReply(m.request, uint64_t{features}));
//
// Pure code: no sockets (socket.h moves the bytes). Decode validates everything a message
// can get wrong on its own: header, payload size for the request, field ranges and the
// number of fds; whatever depends on session state (negotiated features, queue count,
// ordering) is for the caller. A decoded Message owns its fds; Decode takes the received
// fds by value and closes them all when it fails. Encode validates its own output the same
// way, so we never send what a strict peer would reject.
//
// All fields are in host byte order (the spec's rule; we only run on x86_64).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm::vhost_user {

// "Front-end message types". Codes the spec defines but we do not implement are listed so
// that errors can name them; Decode refuses them (see IsSupported).
enum class Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,  // unsupported: no live migration
  kSetLogFd = 7,    // unsupported
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,         // unsupported: net only
  kNetSetMtu = 20,        // unsupported: net only
  kSetBackendReqFd = 21,  // the back-end's own channel to the front-end
  kIotlbMsg = 22,         // unsupported: no VIRTIO_F_IOMMU_PLATFORM
  kSetVringEndian = 23,   // unsupported: legacy devices only
  kGetConfig = 24,
  kSetConfig = 25,
  kCreateCryptoSession = 26,  // unsupported
  kCloseCryptoSession = 27,   // unsupported
  kPostcopyAdvise = 28,       // unsupported: no postcopy migration
  kPostcopyListen = 29,       // unsupported
  kPostcopyEnd = 30,          // unsupported
  kGetInflightFd = 31,        // unsupported: no inflight I/O tracking
  kSetInflightFd = 32,        // unsupported
  kGpuSetSocket = 33,         // unsupported
  kResetDevice = 34,
  kVringKick = 35,  // unsupported: no in-band notifications
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};
// "VHOST_USER_SET_MEM_TABLE"; "unknown vhost-user request" for codes outside the enum.
const char* RequestName(Request request);
// True for the requests Decode and Encode accept.
bool IsSupported(Request request);

// Header flags ("Header"): version in bits 0-1, then REPLY and NEED_REPLY.
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 0x4;
inline constexpr uint32_t kFlagNeedReply = 0x8;
inline constexpr size_t kHeaderSize = 12;

// Limits of the payloads we accept. The 8-region table is the fixed layout of
// "Memory regions description"; bigger guests use ADD_MEM_REG. 256 bytes of config space
// covers every virtio device we build.
inline constexpr size_t kMaxMemoryRegions = 8;
inline constexpr size_t kMaxConfigSize = 256;
inline constexpr size_t kMaxFds = 8;  // "Back-end communication": at most 8 fds a message
inline constexpr size_t kMemoryRegionSize = 32;
inline constexpr size_t kMemoryTableHeaderSize = 8;
inline constexpr size_t kConfigHeaderSize = 12;
// Largest payload Decode can accept: a config access of kMaxConfigSize bytes.
inline constexpr size_t kMaxPayloadSize = kConfigHeaderSize + kMaxConfigSize;
static_assert(kMaxPayloadSize >= kMemoryTableHeaderSize + kMaxMemoryRegions * kMemoryRegionSize);

// The vring index occupies bits 0-7 of the SET_VRING_{KICK,CALL,ERR} payload, so no queue
// index above 255 can ever be given a kick fd: Decode holds every index to that range.
inline constexpr uint32_t kMaxVringIndex = 0xFF;
inline constexpr uint64_t kVringIndexMask = 0xFF;
inline constexpr uint64_t kVringNoFd = 0x100;
inline constexpr uint32_t kMaxVringSize = 32768;  // virtio 1.2 §2.7: queue size limit

// Virtio feature bit 30 (reserved by virtio, reused by vhost-user): the back-end speaks
// GET/SET_PROTOCOL_FEATURES ("Communication").
inline constexpr uint64_t kFProtocolFeatures = uint64_t{1} << 30;

// "Protocol features": bit numbers.
enum ProtocolFeature : uint32_t {
  kProtocolMq = 0,
  kProtocolLogShmfd = 1,
  kProtocolRarp = 2,
  kProtocolReplyAck = 3,
  kProtocolMtu = 4,
  kProtocolBackendReq = 5,
  kProtocolCrossEndian = 6,
  kProtocolCryptoSession = 7,
  kProtocolPagefault = 8,
  kProtocolConfig = 9,
  kProtocolBackendSendFd = 10,
  kProtocolHostNotifier = 11,
  kProtocolInflightShmfd = 12,
  kProtocolResetDevice = 13,
  kProtocolInbandNotifications = 14,
  kProtocolConfigureMemSlots = 15,
  kProtocolStatus = 16,
};
constexpr uint64_t ProtocolBit(ProtocolFeature f) { return uint64_t{1} << f; }

// "A vring state description": SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE and its reply.
struct VringState {
  uint32_t index = 0;
  uint32_t num = 0;
  bool operator==(const VringState&) const = default;
};

// "A vring address description". Addresses are front-end user (virtual) addresses,
// translated through the memory table's userspace_addr, except `log` (a guest address).
inline constexpr uint32_t kVringFlagLog = 0x1;  // VHOST_VRING_F_LOG
struct VringAddress {
  uint32_t index = 0;
  uint32_t flags = 0;
  uint64_t descriptor = 0;
  uint64_t used = 0;
  uint64_t available = 0;
  uint64_t log = 0;
  bool operator==(const VringAddress&) const = default;
};

// One region of "Memory regions description" / "Single memory region description": the
// front-end's mapping [userspace_addr, +memory_size) of guest-physical
// [guest_phys_addr, +memory_size), found at mmap_offset in the region's fd.
struct MemoryRegion {
  uint64_t guest_phys_addr = 0;
  uint64_t memory_size = 0;
  uint64_t userspace_addr = 0;
  uint64_t mmap_offset = 0;
  bool operator==(const MemoryRegion&) const = default;
};

// SET_MEM_TABLE: 1..8 regions; Message::fds[i] backs regions[i].
struct MemoryTable {
  std::vector<MemoryRegion> regions;
  bool operator==(const MemoryTable&) const = default;
};

// ADD_MEM_REG (with one fd) and REM_MEM_REG (without).
struct SingleRegion {
  MemoryRegion region;
  bool operator==(const SingleRegion&) const = default;
};

// "Virtio device config space": GET_CONFIG (request and reply) and SET_CONFIG.
inline constexpr uint32_t kConfigFlagWritable = 0;   // a guest write of a writable field
inline constexpr uint32_t kConfigFlagMigration = 1;  // restoring state on a migration target
struct DeviceConfig {
  uint32_t offset = 0;
  uint32_t flags = kConfigFlagWritable;
  std::vector<uint8_t> bytes;  // its size is the wire `size` field, <= kMaxConfigSize
  bool operator==(const DeviceConfig&) const = default;
};

// SET_VRING_KICK/CALL/ERR: the u64 split into its vring index and the NOFD flag
// (no fd: the back-end polls, or the front-end does not want calls).
struct VringFd {
  uint32_t index = 0;
  bool no_fd = false;
  bool operator==(const VringFd&) const = default;
};

// monostate: no payload. uint64_t: features, status, queue and slot counts, REPLY_ACK codes.
using Payload = std::variant<std::monostate, uint64_t, VringState, VringAddress, MemoryTable,
                             SingleRegion, DeviceConfig, VringFd>;

enum class Direction {
  kRequest,  // front-end to back-end: REPLY clear
  kReply,    // back-end to front-end: REPLY set, NEED_REPLY clear, never fds
};

struct Message {
  Request request = Request::kGetFeatures;
  uint32_t flags = kVersion;
  Payload payload;
  std::vector<UniqueFd> fds;  // owned; count and order fixed per request (see Decode)

  bool is_reply() const { return (flags & kFlagReply) != 0; }
  bool need_reply() const { return (flags & kFlagNeedReply) != 0; }
};

// Parses one whole message (header plus exactly `size` payload bytes) that arrived with
// `fds`, checking it is well formed as a message travelling in `direction`:
//  - version 1, no unknown flag bits, REPLY/NEED_REPLY as the direction allows;
//  - a known, supported request, and the exact payload size its payload needs;
//  - memory tables of 1..8 regions, each non-empty with no address range wrapping past
//    2^64 and no two overlapping; config accesses of at most 256 bytes inside 256 bytes of
//    config space, with flags 0 or 1; vring indexes <= 255, SET_VRING_NUM in 1..32768,
//    SET_VRING_ENABLE 0 or 1, no unknown bits in vring flags or KICK/CALL/ERR payloads;
//  - the fds: SET_MEM_TABLE one per region, ADD_MEM_REG and SET_BACKEND_REQ_FD one,
//    KICK/CALL/ERR one unless NOFD is set (then none), REM_MEM_REG none or one (the
//    spec lets back-ends accept and close one from older front-ends: it is closed here),
//    anything else and every reply none.
// Any violation is an Error of kind kProtocol naming the request and the rule broken.
Result<Message> Decode(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds,
                       Direction direction);

// A front-end request carrying `payload`, to be sent with `fd_count` fds.
Result<std::vector<uint8_t>> EncodeRequest(Request request, const Payload& payload, size_t fd_count,
                                           bool need_reply = false);
// A back-end reply to `request` (a REPLY_ACK status is a uint64_t payload, 0 = success).
Result<std::vector<uint8_t>> EncodeReply(Request request, const Payload& payload);

}  // namespace vmm::vhost_user
