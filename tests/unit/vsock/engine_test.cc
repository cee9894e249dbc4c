#include "vmm/device/vsock/engine.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vmm::vsock {
namespace {

constexpr uint64_t kGuest = 3;
constexpr uint32_t kGuestPort = 40000;
constexpr uint32_t kHostPort = 5000;
constexpr ConnKey kKey{kGuestPort, kHostPort};

class VsockEngineTest : public testing::Test {
 protected:
  EngineOptions Options() {
    EngineOptions o;
    o.guest_cid = kGuest;
    o.max_connections = 4;
    o.buf_alloc = 1000;
    o.max_to_guest_pending = 600;
    o.max_payload = 500;
    o.max_queued_rsts = 8;
    return o;
  }

  Header From(Op op, ConnKey key = kKey, uint32_t len = 0) {
    Header h;
    h.src_cid = kGuest;
    h.dst_cid = kHostCid;
    h.src_port = key.guest_port;
    h.dst_port = key.host_port;
    h.len = len;
    h.type = kTypeStream;
    h.op = static_cast<uint16_t>(op);
    h.buf_alloc = guest_buf_alloc;
    h.fwd_cnt = guest_fwd_cnt;
    return h;
  }

  Result<void> Send(Op op, ConnKey key = kKey, const std::string& data = "", uint32_t flags = 0) {
    Header h = From(op, key, static_cast<uint32_t>(data.size()));
    h.flags = flags;
    return engine.FromGuest(h,
                            std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  }

  // The next packet for the guest, checked to be addressed from the host to the guest.
  std::optional<OutPacket> Next(uint32_t room = 4096) {
    auto p = engine.PopToGuest(room);
    if (p) {
      EXPECT_EQ(p->header.src_cid, kHostCid);
      EXPECT_EQ(p->header.dst_cid, kGuest);
      EXPECT_EQ(p->header.type, kTypeStream);
      EXPECT_EQ(p->header.len, p->payload.size());
    }
    return p;
  }

  Op NextOp() {
    auto p = Next();
    return p ? static_cast<Op>(p->header.op) : static_cast<Op>(0);
  }

  std::vector<HostAction> Actions() {
    std::vector<HostAction> out;
    while (auto a = engine.PopHostAction()) out.push_back(*a);
    return out;
  }

  void Establish(ConnKey key = kKey) {
    ASSERT_TRUE(Send(Op::kRequest, key));
    ASSERT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kConnect, key}}));
    engine.HostConnectResult(key, true);
    auto p = Next();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->header.op, static_cast<uint16_t>(Op::kResponse));
    EXPECT_EQ(p->header.src_port, key.host_port);
    EXPECT_EQ(p->header.dst_port, key.guest_port);
    EXPECT_EQ(p->header.buf_alloc, 1000u);
    EXPECT_TRUE(engine.Established(key));
  }

  static std::string Text(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }
  static std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

  uint32_t guest_buf_alloc = 300;
  uint32_t guest_fwd_cnt = 0;
  VsockEngine engine{Options()};
};

TEST_F(VsockEngineTest, GuestConnectHandshake) {
  Establish();
  EXPECT_FALSE(engine.HasToGuest());
  EXPECT_EQ(engine.connections(), 1u);
}

TEST_F(VsockEngineTest, RefusedHostConnectIsRst) {
  ASSERT_TRUE(Send(Op::kRequest));
  Actions();
  engine.HostConnectResult(kKey, false);
  EXPECT_EQ(NextOp(), Op::kRst);
  EXPECT_FALSE(engine.Exists(kKey));
}

TEST_F(VsockEngineTest, PacketsForUnknownConnectionsAreAnsweredWithRst) {
  for (Op op : {Op::kRw, Op::kShutdown, Op::kCreditUpdate, Op::kCreditRequest, Op::kResponse}) {
    ASSERT_TRUE(Send(op, kKey, op == Op::kRw ? "x" : "")) << OpName(static_cast<uint16_t>(op));
    auto p = Next();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->header.op, static_cast<uint16_t>(Op::kRst));
    EXPECT_EQ(p->header.dst_port, kGuestPort);
  }
  ASSERT_TRUE(Send(Op::kRst));  // never answered: two sides would RST each other forever
  EXPECT_FALSE(engine.HasToGuest());
}

TEST_F(VsockEngineTest, RstQueueIsBounded) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Send(Op::kRw, kKey, "x"));
  int rsts = 0;
  while (Next()) ++rsts;
  EXPECT_EQ(rsts, 8);
  EXPECT_EQ(engine.dropped_rsts(), 12u);
}

TEST_F(VsockEngineTest, DataGuestToHostAndCreditUpdates) {
  Establish();
  ASSERT_TRUE(Send(Op::kRw, kKey, "hello"));
  EXPECT_EQ(Text(engine.ToHost(kKey)), "hello");
  engine.ToHostConsumed(kKey, 2);
  EXPECT_EQ(Text(engine.ToHost(kKey)), "llo");
  EXPECT_FALSE(engine.HasToGuest());  // 2 bytes freed: below a quarter of the credit
  // Fill the credit: 1000 bytes buffered at most.
  ASSERT_TRUE(Send(Op::kRw, kKey, std::string(497, 'a')));
  ASSERT_TRUE(Send(Op::kRw, kKey, std::string(500, 'b')));
  EXPECT_EQ(engine.ToHost(kKey).size(), 1000u);
  engine.ToHostConsumed(kKey, 250);
  auto p = Next();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->header.op, static_cast<uint16_t>(Op::kCreditUpdate));
  EXPECT_EQ(p->header.fwd_cnt, 252u);
  EXPECT_EQ(p->header.buf_alloc, 1000u);
}

TEST_F(VsockEngineTest, RwBeyondCreditResetsTheConnection) {
  Establish();
  ASSERT_TRUE(Send(Op::kRw, kKey, std::string(500, 'a')));
  ASSERT_TRUE(Send(Op::kRw, kKey, std::string(500, 'b')));
  auto r = Send(Op::kRw, kKey, "c");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("beyond the 0 bytes of credit"), std::string::npos);
  EXPECT_EQ(NextOp(), Op::kRst);
  EXPECT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kClose, kKey}}));
  EXPECT_FALSE(engine.Exists(kKey));
}

TEST_F(VsockEngineTest, CreditRequestIsAnswered) {
  Establish();
  ASSERT_TRUE(Send(Op::kCreditRequest));
  auto p = Next();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->header.op, static_cast<uint16_t>(Op::kCreditUpdate));
}

TEST_F(VsockEngineTest, HostToGuestRespectsGuestCredit) {
  Establish();
  // The guest has 300 bytes of buffer and has consumed nothing.
  EXPECT_EQ(engine.HostSendRoom(kKey), 300u);
  ASSERT_TRUE(engine.FromHost(kKey, Bytes(std::string(300, 'x'))));
  EXPECT_EQ(engine.HostSendRoom(kKey), 0u);
  EXPECT_FALSE(engine.FromHost(kKey, Bytes("y")));
  // Split by the room the rx buffer has.
  auto p = Next(200);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->header.op, static_cast<uint16_t>(Op::kRw));
  EXPECT_EQ(p->payload.size(), 200u);
  p = Next(200);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->payload.size(), 100u);
  EXPECT_FALSE(Next());
  // The guest read 120 bytes and says so.
  guest_fwd_cnt = 120;
  ASSERT_TRUE(Send(Op::kCreditUpdate));
  EXPECT_EQ(engine.HostSendRoom(kKey), 120u);
  // A guest that claims to have read more than it was sent gets no credit from it.
  guest_fwd_cnt = 5000;
  ASSERT_TRUE(Send(Op::kCreditUpdate));
  EXPECT_EQ(engine.HostSendRoom(kKey), 0u);
}

TEST_F(VsockEngineTest, HostToGuestIsCappedByPendingLimit) {
  guest_buf_alloc = 1u << 20;
  Establish();
  EXPECT_EQ(engine.HostSendRoom(kKey), 600u);
  ASSERT_TRUE(engine.FromHost(kKey, Bytes(std::string(600, 'x'))));
  EXPECT_EQ(engine.HostSendRoom(kKey), 0u);
  ASSERT_TRUE(Next(600));
  EXPECT_EQ(engine.HostSendRoom(kKey), 600u);
}

TEST_F(VsockEngineTest, HostInitiatedConnection) {
  auto key = engine.HostConnect(52);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->guest_port, 52u);
  EXPECT_GE(key->host_port, kFirstLocalPort);
  auto p = Next();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->header.op, static_cast<uint16_t>(Op::kRequest));
  EXPECT_EQ(p->header.dst_port, 52u);
  EXPECT_EQ(engine.HostSendRoom(*key), 0u);  // the guest's credit is not known yet
  ASSERT_TRUE(Send(Op::kResponse, *key));
  EXPECT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kEstablished, *key}}));
  ASSERT_TRUE(engine.FromHost(*key, Bytes("ping")));
  p = Next();
  ASSERT_TRUE(p);
  EXPECT_EQ(Text(p->payload), "ping");
  ASSERT_TRUE(Send(Op::kRw, *key, "pong"));
  EXPECT_EQ(Text(engine.ToHost(*key)), "pong");
}

TEST_F(VsockEngineTest, GuestRefusingHostConnectionClosesHostSide) {
  auto key = engine.HostConnect(52);
  ASSERT_TRUE(key);
  Next();
  ASSERT_TRUE(Send(Op::kRst, *key));
  EXPECT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kClose, *key}}));
  EXPECT_FALSE(engine.Exists(*key));
}

TEST_F(VsockEngineTest, HandshakeViolationsReset) {
  auto r = Send(Op::kRequest, kKey);
  ASSERT_TRUE(r);
  Actions();
  // RW while the host side is still connecting.
  r = Send(Op::kRw, kKey, "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("before the connection was established"), std::string::npos);
  EXPECT_EQ(NextOp(), Op::kRst);
  EXPECT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kClose, kKey}}));
  EXPECT_FALSE(engine.Exists(kKey));
  // A RESPONSE the host never asked for.
  Establish();
  r = Send(Op::kResponse);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("without a REQUEST of ours"), std::string::npos);
  // A second REQUEST on a live connection.
  Actions();
  while (Next()) {
  }
  Establish();
  r = Send(Op::kRequest);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("exists"), std::string::npos);
}

TEST_F(VsockEngineTest, ConnectionLimitHoldsBothWays) {
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(Send(Op::kRequest, {kGuestPort + i, kHostPort}));
  }
  auto r = Send(Op::kRequest, {kGuestPort + 9, kHostPort});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("connection limit of 4"), std::string::npos);
  EXPECT_EQ(NextOp(), Op::kRst);
  auto h = engine.HostConnect(1);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("connection limit"), std::string::npos);
  EXPECT_EQ(engine.connections(), 4u);
}

TEST_F(VsockEngineTest, GuestMayNotConnectToLocalPorts) {
  auto r = Send(Op::kRequest, {kGuestPort, kFirstLocalPort + 1});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("host's own"), std::string::npos);
  EXPECT_EQ(NextOp(), Op::kRst);
  EXPECT_EQ(engine.connections(), 0u);
}

TEST_F(VsockEngineTest, MalformedPacketOnAConnectionResetsIt) {
  Establish();
  Header h = From(Op::kRw, kKey, 3);
  auto r = engine.FromGuest(h, Bytes("ab"));  // len says 3
  ASSERT_FALSE(r);
  EXPECT_EQ(NextOp(), Op::kRst);
  EXPECT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kClose, kKey}}));
  EXPECT_FALSE(engine.Exists(kKey));
  // A packet from another CID touches nothing.
  Establish();
  h = From(Op::kRst);
  h.src_cid = 7;
  ASSERT_FALSE(engine.FromGuest(h, {}));
  EXPECT_TRUE(engine.Exists(kKey));
  EXPECT_FALSE(engine.HasToGuest());
}

TEST_F(VsockEngineTest, GuestShutdownFlushesThenResets) {
  Establish();
  ASSERT_TRUE(Send(Op::kRw, kKey, "bye"));
  ASSERT_TRUE(Send(Op::kShutdown, kKey, "", kShutdownSend));
  EXPECT_TRUE(Actions().empty());  // "bye" not yet consumed
  auto r = Send(Op::kRw, kKey, "more");
  ASSERT_FALSE(r);  // after SHUTDOWN(SEND)
  EXPECT_NE(r.error().message().find("after the guest's SHUTDOWN"), std::string::npos);

  Actions();
  while (Next()) {
  }
  Establish();
  ASSERT_TRUE(Send(Op::kRw, kKey, "bye"));
  ASSERT_TRUE(Send(Op::kShutdown, kKey, "", kShutdownSend | kShutdownRcv));
  EXPECT_TRUE(engine.Exists(kKey));
  engine.ToHostConsumed(kKey, 3);
  EXPECT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kShutdownWrite, kKey},
                                                {HostAction::Kind::kClose, kKey}}));
  EXPECT_EQ(NextOp(), Op::kRst);
  EXPECT_FALSE(engine.Exists(kKey));
}

TEST_F(VsockEngineTest, GuestShutdownRcvStopsHostData) {
  Establish();
  ASSERT_TRUE(Send(Op::kShutdown, kKey, "", kShutdownRcv));
  EXPECT_EQ(engine.HostSendRoom(kKey), 0u);
}

TEST_F(VsockEngineTest, HostEofSendsShutdownAfterData) {
  Establish();
  ASSERT_TRUE(engine.FromHost(kKey, Bytes("last")));
  engine.HostEof(kKey);
  auto p = Next();
  ASSERT_TRUE(p);
  EXPECT_EQ(Text(p->payload), "last");
  p = Next();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->header.op, static_cast<uint16_t>(Op::kShutdown));
  EXPECT_EQ(p->header.flags, kShutdownRcv | kShutdownSend);
  ASSERT_TRUE(Send(Op::kRst));
  EXPECT_EQ(Actions(), (std::vector<HostAction>{{HostAction::Kind::kClose, kKey}}));
  EXPECT_EQ(engine.connections(), 0u);
}

TEST_F(VsockEngineTest, HostResetSendsRst) {
  Establish();
  engine.HostReset(kKey);
  EXPECT_EQ(NextOp(), Op::kRst);
  EXPECT_TRUE(Actions().empty());  // the host side closed it already
  EXPECT_EQ(engine.connections(), 0u);
}

}  // namespace
}  // namespace vmm::vsock
