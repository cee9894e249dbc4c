// A hostile vhost-user back-end against the VM process's front-end
// (vmm/vm/virtio_mmio/vhost_user_frontend.h): Connect, then a fuzzer-chosen script of calls
// (GetConfig, SetMemTable, SetFeatures, StartQueue, StopQueue), while every byte the front-end
// reads comes from the fuzzer: replies built with the codec from fuzzer-chosen fields, mutated
// ones, and raw bytes. The replies are queued on a socketpair before the first call and the
// back-end's end then shuts down writing, so a front-end waiting for more sees EOF instead
// of blocking (its receive timeout bounds it besides). Replies carry bytes only, no fds.
//
// Checked, independently of the codec's Decode: after each call that succeeds, the bytes
// the front-end consumed are exactly one reply for each request it sent that wants one
// (GET_* and NEED_REPLY), in order, each with flags VERSION|REPLY, the request it answers,
// the payload size that request's reply has, a REPLY_ACK status of 0, GET_VRING_BASE for
// the ring asked, GET_CONFIG for offset 0 and the size asked; every request it sent decodes
// strictly; Connect only succeeds with VIRTIO_F_VERSION_1 offered and 1..64 queues; GetConfig
// returns the size asked. Nothing crashes (ASan, UBSan) and nothing blocks.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"
#include "vmm/formats/vhost_user/socket.h"
#include "vmm/vm/virtio_mmio/vhost_user_frontend.h"

namespace {

using namespace vmm;              // NOLINT: a fuzzer
using namespace vmm::vhost_user;  // NOLINT: a fuzzer

constexpr size_t kMaxOps = 16;

// Fds the front-end sends (borrowed by it); shared by all runs.
struct Fds {
  Fds() {
    memfd = memfd_create("fuzz-ram", MFD_CLOEXEC);
    event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(memfd >= 0 && event >= 0 && ftruncate(memfd, 4096) == 0);
  }
  int memfd;
  int event;
};

uint32_t Le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// The replies, as the back-end's script says: codec-built, mutated, or raw.
std::vector<uint8_t> BuildReplies(FuzzReader& in) {
  std::vector<uint8_t> out;
  std::vector<uint8_t> last;
  while (!in.done() && out.size() < 8192) {
    const uint8_t tag = in.U8();
    Result<std::vector<uint8_t>> r = std::vector<uint8_t>{};
    const auto request = static_cast<Request>(in.U8() % 42);
    switch (tag % 6) {
      case 0:
        r = in.Bytes(in.U8());
        break;
      case 1:
        r = EncodeReply(request, uint64_t{in.U64()});
        break;
      case 2: {
        // The most useful u64 replies, with little to guess: an ack, features, a count.
        static constexpr Request kU64[] = {Request::kGetFeatures, Request::kGetProtocolFeatures,
                                           Request::kGetQueueNum, Request::kSetMemTable,
                                           Request::kSetFeatures, Request::kSetVringNum};
        const uint8_t pick = static_cast<uint8_t>(request) % std::size(kU64);
        uint64_t v = in.U8() & 0x80 ? in.U64() : (uint64_t{1} << 32) | (uint64_t{1} << 30);
        if (kU64[pick] == Request::kGetProtocolFeatures) v = in.U64() | 0x209;
        if (kU64[pick] != Request::kGetFeatures && kU64[pick] != Request::kGetProtocolFeatures) {
          v = in.U8() % 4;
        }
        r = EncodeReply(kU64[pick], v);
        break;
      }
      case 3:
        r = EncodeReply(Request::kGetVringBase, VringState{in.U8(), in.U16()});
        break;
      case 4: {
        DeviceConfig c;
        c.offset = in.U8() & 0x80 ? in.U16() : 0;
        c.flags = in.U8() % 3;
        c.bytes = in.Bytes(in.U16() % (kMaxConfigSize + 8));
        r = EncodeReply(Request::kGetConfig, c);
        break;
      }
      case 5:
        // The last reply with one byte changed (header or payload).
        r = last;
        if (!last.empty()) r->at(in.U16() % last.size()) ^= static_cast<uint8_t>(in.U8() | 1);
        break;
    }
    if (!r) continue;
    last = *r;
    out.insert(out.end(), r->begin(), r->end());
  }
  return out;
}

int Queued(int sock) {
  int n = 0;
  CHECK(ioctl(sock, FIONREAD, &n) == 0);
  return n;
}

// The requests the front-end sent, as the back-end reads them: each must decode strictly.
std::vector<Message> DrainRequests(int peer) {
  std::vector<Message> sent;
  while (Queued(peer) > 0) {
    auto raw = ReadRawMessage(peer);
    CHECK(raw.has_value() && raw->has_value());
    auto m = Decode((*raw)->bytes, std::move((*raw)->fds), Direction::kRequest);
    CHECK(m.has_value());
    sent.push_back(std::move(*m));
  }
  return sent;
}

// `consumed` must be exactly the replies to the requests in `sent` that want one.
void CheckConsumed(const std::vector<Message>& sent, std::span<const uint8_t> consumed) {
  size_t pos = 0;
  for (const Message& m : sent) {
    const bool get = m.request == Request::kGetFeatures ||
                     m.request == Request::kGetProtocolFeatures ||
                     m.request == Request::kGetQueueNum || m.request == Request::kGetConfig ||
                     m.request == Request::kGetVringBase;
    if (!get && !m.need_reply()) continue;
    CHECK(consumed.size() - pos >= kHeaderSize);
    const uint8_t* h = consumed.data() + pos;
    CHECK(Le32(h) == static_cast<uint32_t>(m.request));
    CHECK(Le32(h + 4) == (kVersion | kFlagReply));
    const uint32_t size = Le32(h + 8);
    CHECK(consumed.size() - pos - kHeaderSize >= size);
    const uint8_t* p = h + kHeaderSize;
    if (m.request == Request::kGetConfig) {
      const auto& asked = std::get<DeviceConfig>(m.payload);
      CHECK(size == kConfigHeaderSize + asked.bytes.size());
      CHECK(Le32(p) == 0 && Le32(p + 4) == asked.bytes.size());
    } else if (m.request == Request::kGetVringBase) {
      CHECK(size == 8 && Le32(p) == std::get<VringState>(m.payload).index);
    } else {
      CHECK(size == 8);
      if (!get) CHECK(Le64(p) == 0);  // a REPLY_ACK the front-end took as success
    }
    pos += kHeaderSize + size;
  }
  CHECK(pos == consumed.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fds fds;
  FuzzReader in{data, size};
  // The calls first (a count, then fixed-size records), then the replies.
  const size_t nops = in.U8() % (kMaxOps + 1);
  std::vector<uint8_t> ops = in.Bytes(nops * 40);
  std::vector<uint8_t> replies = BuildReplies(in);

  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd fe_sock(sv[0]);
  UniqueFd peer(sv[1]);
  size_t written = 0;
  while (written < replies.size()) {
    ssize_t n = send(peer.get(), replies.data() + written, replies.size() - written,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  CHECK(shutdown(peer.get(), SHUT_WR) == 0);
  const std::span<const uint8_t> stream(replies.data(), written);

  auto fe_r = Frontend::Connect(std::move(fe_sock), /*timeout_ms=*/50);
  std::vector<Message> sent = DrainRequests(peer.get());
  if (!fe_r) {
    CHECK(fe_r.error().kind() == ErrorKind::kProtocol || fe_r.error().kind() == ErrorKind::kSystem);
    return 0;
  }
  Frontend& fe = *fe_r;
  size_t before = written - static_cast<size_t>(Queued(fe.fd()));
  CheckConsumed(sent, stream.subspan(0, before));
  CHECK(fe.device_features() & (uint64_t{1} << 32));
  CHECK(fe.num_queues() >= 1 && fe.num_queues() <= 64);

  FuzzReader op{ops.data(), ops.size()};
  while (!op.done()) {
    Result<void> r = Ok();
    switch (op.U8() % 5) {
      case 0: {
        const uint32_t want = op.U16() % (kMaxConfigSize + 8);
        auto c = fe.GetConfig(want);
        if (c) CHECK(c->empty() || c->size() == want);
        r = c ? Ok() : Result<void>(c.error());
        break;
      }
      case 1: {
        std::vector<GuestRegion> regions(op.U8() % 10);
        for (GuestRegion& g : regions) {
          g = {op.U32() * uint64_t{4096}, op.U16() * uint64_t{4096} + 4096, 0};
        }
        r = fe.SetMemTable(regions, fds.memfd);
        break;
      }
      case 2:
        r = fe.SetFeatures(op.U64());
        break;
      case 3: {
        RingSetup ring{op.U16(), op.U32(), op.U32(), op.U32()};
        const uint32_t index = op.U8() % 4;
        r = fe.StartQueue(index, ring, fds.event, fds.event, op.U8() & 1 ? fds.event : -1);
        break;
      }
      case 4: {
        const uint32_t index = op.U8() % 4;
        auto b = fe.StopQueue(index);
        r = b ? Ok() : Result<void>(b.error());
        break;
      }
    }
    sent = DrainRequests(peer.get());
    const size_t after = written - static_cast<size_t>(Queued(fe.fd()));
    if (!r) {
      // The VMM fails the device on the first error; so does the script.
      CHECK(r.error().kind() != ErrorKind::kInternal || sent.empty());
      break;
    }
    CheckConsumed(sent, stream.subspan(before, after - before));
    before = after;
  }
  return 0;
}
