// The front-end side of a vhost-user session: the VMM driving one device process.
//
//   ASSIGN_OR_RETURN(Frontend fe, Frontend::Connect(std::move(sock)));
//   RETURN_IF_ERROR(fe.SetMemTable(regions, memfd));      // once, before the guest runs
//   RETURN_IF_ERROR(fe.StartQueue(0, ring, kick, call));  // at DRIVER_OK
//
// The back-end is another (confined) process and may be compromised: every reply is
// decoded strictly (message.h, Direction::kReply), checked against what was asked, and
// bounded in time by the socket's receive timeout, so a back-end that stops answering
// costs the calling vCPU thread at most that long before the device is failed.
//
// Addresses: the memory table's "user addresses" are the guest-physical addresses
// themselves, and ring addresses are sent as guest-physical too. The back-end only needs
// a consistent mapping, and this way it learns nothing about the VMM's address space.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/formats/vhost_user/message.h"

namespace vmm::vhost_user {

struct GuestRegion {
  uint64_t guest_phys = 0;
  uint64_t size = 0;
  uint64_t memfd_offset = 0;
};

struct RingSetup {
  uint32_t size = 0;
  uint64_t desc_gpa = 0;
  uint64_t avail_gpa = 0;
  uint64_t used_gpa = 0;
};

class Frontend {
 public:
  // Negotiates with the back-end: GET_FEATURES, SET_OWNER, and (when offered) protocol
  // features REPLY_ACK and CONFIG; GET_QUEUE_NUM with MQ. `timeout_ms` bounds each reply.
  static Result<Frontend> Connect(UniqueFd sock, int timeout_ms = 5000);

  uint64_t device_features() const { return features_ & ~kFProtocolFeatures; }
  uint32_t num_queues() const { return num_queues_; }
  int fd() const { return sock_.get(); }

  // GET_CONFIG of `size` bytes from offset 0 (empty when the back-end has no CONFIG).
  Result<std::vector<uint8_t>> GetConfig(uint32_t size);
  // SET_MEM_TABLE: at most 8 regions of one memfd (borrowed; sent, not kept).
  Result<void> SetMemTable(std::span<const GuestRegion> regions, int memfd);
  // SET_FEATURES with what the driver accepted (plus the protocol-features bit).
  Result<void> SetFeatures(uint64_t driver_features);
  // SET_VRING_NUM/BASE(0)/ADDR/ERR/CALL/KICK/ENABLE(1): the ring runs. Fds are borrowed;
  // err_fd < 0 sends none (the back-end then only logs a ring it stopped).
  Result<void> StartQueue(uint32_t index, const RingSetup& ring, int kick_fd, int call_fd,
                          int err_fd = -1);
  // GET_VRING_BASE: stops the ring; returns where the back-end stopped.
  Result<uint32_t> StopQueue(uint32_t index);

 private:
  explicit Frontend(UniqueFd sock) : sock_(std::move(sock)) {}
  Result<void> Send(Request request, const Payload& payload, std::span<const int> fds = {});
  // Sends, then reads the reply of a GET_* request.
  Result<Message> Call(Request request, const Payload& payload);
  // The reply to `request`: strictly decoded, and for that request, or an Error.
  Result<Message> ReadReply(Request request);
  bool reply_ack() const { return (protocol_features_ & ProtocolBit(kProtocolReplyAck)) != 0; }

  UniqueFd sock_;
  uint64_t features_ = 0;
  uint64_t protocol_features_ = 0;
  uint32_t num_queues_ = 1;
};

}  // namespace vmm::vhost_user
