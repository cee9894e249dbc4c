#include "vmm/vm/virtio_mmio/vhost_user_frontend.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <optional>

#include "vmm/formats/vhost_user/socket.h"

namespace vmm::vhost_user {
namespace {

Error BackendError(Request r, const std::string& what) {
  return Error(ErrorKind::kProtocol,
               std::string("device process, ") + RequestName(r) + ": " + what);
}

// The u64 payload of a reply (features, queue count); Decode guarantees the shape.
Result<uint64_t> U64(const Message& m) {
  if (const uint64_t* v = std::get_if<uint64_t>(&m.payload)) return *v;
  return BackendError(m.request, "reply without a u64 payload");
}

}  // namespace

Result<Frontend> Frontend::Connect(UniqueFd sock, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  if (setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
      setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
    return Error(ErrorKind::kSystem, "setting the vhost-user socket timeouts", errno);
  }
  Frontend fe(std::move(sock));
  // Results of Call are held by reference, not moved out with ASSIGN_OR_RETURN: GCC 12
  // reports a false -Wmaybe-uninitialized for a moved std::variant inside Message.
  auto f_r = fe.Call(Request::kGetFeatures, std::monostate{});
  if (!f_r) return f_r.error();
  Message& f = *f_r;
  ASSIGN_OR_RETURN(fe.features_, U64(f));
  if (!(fe.features_ & (uint64_t{1} << 32))) {
    return BackendError(Request::kGetFeatures, "the device does not offer VIRTIO_F_VERSION_1");
  }
  RETURN_IF_ERROR(fe.Send(Request::kSetOwner, std::monostate{}));
  if (fe.features_ & kFProtocolFeatures) {
    auto p_r = fe.Call(Request::kGetProtocolFeatures, std::monostate{});
    if (!p_r) return p_r.error();
    Message& p = *p_r;
    ASSIGN_OR_RETURN(uint64_t offered, U64(p));
    uint64_t want =
        ProtocolBit(kProtocolReplyAck) | ProtocolBit(kProtocolConfig) | ProtocolBit(kProtocolMq);
    RETURN_IF_ERROR(fe.Send(Request::kSetProtocolFeatures, uint64_t{offered & want}));
    fe.protocol_features_ = offered & want;
    if (fe.protocol_features_ & ProtocolBit(kProtocolMq)) {
      auto q_r = fe.Call(Request::kGetQueueNum, std::monostate{});
      if (!q_r) return q_r.error();
      Message& q = *q_r;
      ASSIGN_OR_RETURN(uint64_t n, U64(q));
      if (n == 0 || n > 64) return BackendError(Request::kGetQueueNum, "queue count out of range");
      fe.num_queues_ = static_cast<uint32_t>(n);
    }
  }
  return fe;
}

Result<void> Frontend::Send(Request request, const Payload& payload, std::span<const int> fds) {
  // Requests without a reply of their own ask for a REPLY_ACK once it is negotiated, so a
  // refusal is seen here rather than as a silent device later.
  const bool ack = reply_ack() && request != Request::kGetFeatures &&
                   request != Request::kGetProtocolFeatures &&
                   request != Request::kSetProtocolFeatures && request != Request::kGetConfig &&
                   request != Request::kGetVringBase && request != Request::kGetQueueNum;
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeRequest(request, payload, fds.size(), ack));
  RETURN_IF_ERROR(SendMessage(sock_.get(), bytes, fds));
  if (!ack) return Ok();
  auto reply = ReadReply(request);
  if (!reply) return reply.error();
  const uint64_t* status = std::get_if<uint64_t>(&reply->payload);
  if (status == nullptr) return BackendError(request, "malformed REPLY_ACK");
  if (*status != 0)
    return BackendError(request, "refused (status " + std::to_string(*status) + ")");
  return Ok();
}

Result<Message> Frontend::Call(Request request, const Payload& payload) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeRequest(request, payload, 0, false));
  RETURN_IF_ERROR(SendMessage(sock_.get(), bytes));
  return ReadReply(request);
}

Result<Message> Frontend::ReadReply(Request request) {
  auto reply = ReceiveMessage(sock_.get(), Direction::kReply);
  if (!reply) return reply.error().Wrap(std::string("device process, ") + RequestName(request));
  if (!*reply) return BackendError(request, "the device process hung up");
  if ((*reply)->request != request) return BackendError(request, "reply to another request");
  return std::move(**reply);
}

Result<std::vector<uint8_t>> Frontend::GetConfig(uint32_t size) {
  if (!(protocol_features_ & ProtocolBit(kProtocolConfig)) || size == 0) {
    return std::vector<uint8_t>{};
  }
  DeviceConfig ask;
  ask.bytes.assign(size, 0);
  auto m_r = Call(Request::kGetConfig, ask);
  if (!m_r) return m_r.error();
  Message& m = *m_r;
  DeviceConfig* c = std::get_if<DeviceConfig>(&m.payload);
  if (c == nullptr || c->bytes.size() != size || c->offset != 0) {
    return BackendError(Request::kGetConfig, "reply does not match the request");
  }
  return std::move(c->bytes);
}

Result<void> Frontend::SetMemTable(std::span<const GuestRegion> regions, int memfd) {
  if (regions.empty() || regions.size() > kMaxMemoryRegions) {
    return Error(ErrorKind::kInternal, "SET_MEM_TABLE: 1 to 8 regions");
  }
  MemoryTable table;
  std::vector<int> fds;
  for (const GuestRegion& r : regions) {
    table.regions.push_back({r.guest_phys, r.size, r.guest_phys, r.memfd_offset});
    fds.push_back(memfd);
  }
  return Send(Request::kSetMemTable, table, fds);
}

Result<void> Frontend::SetFeatures(uint64_t driver_features) {
  uint64_t f = driver_features & device_features();
  if (features_ & kFProtocolFeatures) f |= kFProtocolFeatures;
  return Send(Request::kSetFeatures, f);
}

Result<void> Frontend::StartQueue(uint32_t index, const RingSetup& ring, int kick_fd, int call_fd,
                                  int err_fd) {
  RETURN_IF_ERROR(Send(Request::kSetVringNum, VringState{index, ring.size}));
  RETURN_IF_ERROR(Send(Request::kSetVringBase, VringState{index, 0}));
  VringAddress addr;
  addr.index = index;
  addr.descriptor = ring.desc_gpa;
  addr.available = ring.avail_gpa;
  addr.used = ring.used_gpa;
  RETURN_IF_ERROR(Send(Request::kSetVringAddr, addr));
  if (err_fd >= 0) {
    const int err[] = {err_fd};
    RETURN_IF_ERROR(Send(Request::kSetVringErr, VringFd{index, false}, err));
  }
  const int call[] = {call_fd};
  RETURN_IF_ERROR(Send(Request::kSetVringCall, VringFd{index, false}, call));
  const int kick[] = {kick_fd};
  RETURN_IF_ERROR(Send(Request::kSetVringKick, VringFd{index, false}, kick));
  if (features_ & kFProtocolFeatures) {
    RETURN_IF_ERROR(Send(Request::kSetVringEnable, VringState{index, 1}));
  }
  return Ok();
}

Result<uint32_t> Frontend::StopQueue(uint32_t index) {
  auto m_r = Call(Request::kGetVringBase, VringState{index, 0});
  if (!m_r) return m_r.error();
  Message& m = *m_r;
  const auto* s = std::get_if<VringState>(&m.payload);
  if (s == nullptr || s->index != index) {
    return BackendError(Request::kGetVringBase, "reply names another ring");
  }
  return s->num;
}

}  // namespace vmm::vhost_user
