// Sequences of guest packets and host events against the vsock connection engine
// (vmm/device/vsock/engine.h): headers with fuzzer-chosen fields (mostly near-valid, so the
// state machine is reached), payloads of any length, host connects, accepts, reads, EOFs
// and resets, and rx buffers of any room.
//
// Checked: the engine never holds more connections than its limit nor more guest bytes per
// connection than the credit it advertises; every packet it emits is addressed from the
// host to the guest, STREAM, with a payload no larger than the room it was given and only
// on RW; host sends never exceed HostSendRoom.
#include <cstdint>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"
#include "vmm/device/vsock/engine.h"

namespace {

using namespace vmm::vsock;

constexpr uint64_t kGuest = 3;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in{data, size};
  EngineOptions o;
  o.guest_cid = kGuest;
  o.max_connections = 1 + in.U8() % 8;
  o.buf_alloc = 1 + in.U16();
  o.max_to_guest_pending = 1 + in.U16();
  o.max_payload = 1 + in.U16() % 4096;
  o.max_queued_rsts = in.U8() % 16;
  VsockEngine engine(o);
  std::vector<ConnKey> host_keys;

  for (int step = 0; step < 256 && !in.done(); ++step) {
    const uint8_t what = in.U8();
    switch (what % 8) {
      case 0:
      case 1:
      case 2: {  // a guest packet
        const uint8_t mutate = in.U8();
        Header h;
        h.src_cid = (mutate & 1) ? in.U64() : kGuest;
        h.dst_cid = (mutate & 2) ? in.U64() : kHostCid;
        h.src_port = in.U8() % 4;
        h.dst_port = (mutate & 4) ? in.U32() : 5000 + in.U8() % 2;
        if ((mutate & 8) && !host_keys.empty()) {  // answer a host-initiated connection
          const ConnKey k = host_keys[in.U8() % host_keys.size()];
          h.src_port = k.guest_port;
          h.dst_port = k.host_port;
        }
        h.type = (mutate & 16) ? in.U16() : kTypeStream;
        h.op = (mutate & 32) ? in.U16() : 1 + in.U8() % 7;
        h.flags = (mutate & 64) ? in.U32() : in.U8() % 4;
        h.buf_alloc = in.U32();
        h.fwd_cnt = in.U32();
        std::vector<uint8_t> payload = in.Bytes(in.U16() % 5000);
        h.len = (mutate & 128) ? in.U32() : static_cast<uint32_t>(payload.size());
        auto r = engine.FromGuest(h, payload);
        if (!r) CHECK(!r.error().message().empty());
        break;
      }
      case 3: {  // the host side answers connects and consumes guest bytes
        while (auto a = engine.PopHostAction()) {
          if (a->kind == HostAction::Kind::kConnect) engine.HostConnectResult(a->key, what & 16);
        }
        for (const ConnKey& k : engine.Keys()) {
          const size_t n = engine.ToHost(k).size();
          CHECK(n <= o.buf_alloc);
          engine.ToHostConsumed(k, n / (1 + in.U8() % 3));
        }
        break;
      }
      case 4: {  // a host client connects
        auto k = engine.HostConnect(in.U8());
        if (k) host_keys.push_back(*k);
        break;
      }
      case 5: {  // host bytes for a connection
        const auto keys = engine.Keys();
        if (keys.empty()) break;
        const ConnKey k = keys[in.U8() % keys.size()];
        const uint32_t room = engine.HostSendRoom(k);
        std::vector<uint8_t> bytes(in.U16() % 3000, 0x5a);
        auto r = engine.FromHost(k, bytes);
        CHECK(r.has_value() == (bytes.size() <= room));
        break;
      }
      case 6: {  // host EOF or reset
        const auto keys = engine.Keys();
        if (keys.empty()) break;
        const ConnKey k = keys[in.U8() % keys.size()];
        if (what & 16) {
          engine.HostEof(k);
        } else {
          engine.HostReset(k);
        }
        break;
      }
      case 7: {  // the guest posts rx buffers
        const uint32_t room = in.U16() % 5000;
        for (int i = 0; i < 8; ++i) {
          auto p = engine.PopToGuest(room);
          if (!p) break;
          CHECK(p->header.src_cid == kHostCid && p->header.dst_cid == kGuest);
          CHECK(p->header.type == kTypeStream);
          CHECK(p->header.len == p->payload.size() && p->payload.size() <= room);
          CHECK(p->payload.empty() || p->header.op == static_cast<uint16_t>(Op::kRw));
          CHECK(p->header.op >= 1 && p->header.op <= 7);
        }
        break;
      }
    }
    CHECK(engine.connections() <= o.max_connections);
  }
  return 0;
}
