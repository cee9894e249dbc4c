#include "vmm/formats/vsock/packet.h"

#include "base/bytes.h"

namespace vmm::vsock {
namespace {

Error GuestError(const std::string& what, const Header& h) {
  return Error(ErrorKind::kGuest, "vsock packet " + Describe(h) + ": " + what);
}

}  // namespace

const char* OpName(uint16_t op) {
  switch (static_cast<Op>(op)) {
    case Op::kRequest:
      return "REQUEST";
    case Op::kResponse:
      return "RESPONSE";
    case Op::kRst:
      return "RST";
    case Op::kShutdown:
      return "SHUTDOWN";
    case Op::kRw:
      return "RW";
    case Op::kCreditUpdate:
      return "CREDIT_UPDATE";
    case Op::kCreditRequest:
      return "CREDIT_REQUEST";
  }
  return "op?";
}

Result<Header> ParseHeader(std::span<const uint8_t> b) {
  if (b.size() < kHeaderSize) {
    return Error(ErrorKind::kGuest, "vsock packet of " + std::to_string(b.size()) +
                                        " bytes: shorter than its " + std::to_string(kHeaderSize) +
                                        "-byte header");
  }
  Header h;
  h.src_cid = *LoadLe<uint64_t>(b, 0);
  h.dst_cid = *LoadLe<uint64_t>(b, 8);
  h.src_port = *LoadLe<uint32_t>(b, 16);
  h.dst_port = *LoadLe<uint32_t>(b, 20);
  h.len = *LoadLe<uint32_t>(b, 24);
  h.type = *LoadLe<uint16_t>(b, 28);
  h.op = *LoadLe<uint16_t>(b, 30);
  h.flags = *LoadLe<uint32_t>(b, 32);
  h.buf_alloc = *LoadLe<uint32_t>(b, 36);
  h.fwd_cnt = *LoadLe<uint32_t>(b, 40);
  return h;
}

std::array<uint8_t, kHeaderSize> EncodeHeader(const Header& h) {
  std::array<uint8_t, kHeaderSize> out{};
  std::span<uint8_t> b(out);
  StoreLe<uint64_t>(b, 0, h.src_cid);
  StoreLe<uint64_t>(b, 8, h.dst_cid);
  StoreLe<uint32_t>(b, 16, h.src_port);
  StoreLe<uint32_t>(b, 20, h.dst_port);
  StoreLe<uint32_t>(b, 24, h.len);
  StoreLe<uint16_t>(b, 28, h.type);
  StoreLe<uint16_t>(b, 30, h.op);
  StoreLe<uint32_t>(b, 32, h.flags);
  StoreLe<uint32_t>(b, 36, h.buf_alloc);
  StoreLe<uint32_t>(b, 40, h.fwd_cnt);
  return out;
}

Result<void> CheckGuestHeader(const Header& h, uint64_t payload_len, const GuestLimits& limits) {
  if (h.type != kTypeStream) {
    return GuestError("type " + std::to_string(h.type) + " is not STREAM (1)", h);
  }
  if (h.src_cid != limits.guest_cid) {
    return GuestError("src_cid is not the guest's CID " + std::to_string(limits.guest_cid), h);
  }
  if (h.dst_cid != kHostCid) return GuestError("dst_cid is not the host's CID 2", h);
  if (h.op < static_cast<uint16_t>(Op::kRequest) ||
      h.op > static_cast<uint16_t>(Op::kCreditRequest)) {
    return GuestError("unknown op " + std::to_string(h.op), h);
  }
  if (h.len != payload_len) {
    return GuestError("len says " + std::to_string(h.len) + " bytes but the buffers hold " +
                          std::to_string(payload_len),
                      h);
  }
  if (h.len > limits.max_payload) {
    return GuestError("len above the limit of " + std::to_string(limits.max_payload), h);
  }
  if (h.op != static_cast<uint16_t>(Op::kRw) && h.len != 0) {
    return GuestError("payload on an op other than RW", h);
  }
  const uint32_t allowed_flags =
      h.op == static_cast<uint16_t>(Op::kShutdown) ? (kShutdownRcv | kShutdownSend) : 0;
  if (h.flags & ~allowed_flags) {
    return GuestError("flags " + std::to_string(h.flags) + " not defined for this op", h);
  }
  return Ok();
}

std::string Describe(const Header& h) {
  return std::string(OpName(h.op)) + " " + std::to_string(h.src_cid) + ":" +
         std::to_string(h.src_port) + " -> " + std::to_string(h.dst_cid) + ":" +
         std::to_string(h.dst_port) + " len " + std::to_string(h.len);
}

}  // namespace vmm::vsock
