// The vhost-user back-end session (vmm/device/vhost_user_backend.h) served by Run over a
// socketpair: negotiation, rings over a sealed memfd, kicks and calls, blk and rng; what
// the guest breaks in its ring stops that ring only. Refusals of a hostile front-end:
// backend_hostile_test.cc.
#include "vmm/device/vhost_user_backend.h"

#include <gtest/gtest.h>

#include "tests/unit/vhost_user/backend_fixture.h"
#include "tests/unit/vhost_user/test_util.h"

namespace vmm::vhost_user {
namespace {

using namespace testing;

std::vector<uint8_t> Counting(uint8_t first, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(first + i);
  return v;
}

TEST(VhostUserBackend, RngOffersVersion1AndProtocolFeatures) {
  RngRig rig;
  Session s(rig.dev);
  uint64_t features = s.Ask<uint64_t>(Request::kGetFeatures);
  EXPECT_NE(features & virtio::kVirtioFVersion1, 0u);
  EXPECT_NE(features & kFProtocolFeatures, 0u);
  uint64_t protocol = s.Ask<uint64_t>(Request::kGetProtocolFeatures);
  EXPECT_NE(protocol & ProtocolBit(kProtocolReplyAck), 0u);
  EXPECT_NE(protocol & ProtocolBit(kProtocolMq), 0u);
  EXPECT_EQ(protocol & ProtocolBit(kProtocolConfig), 0u);  // rng has no config space
  EXPECT_EQ(s.Ask<uint64_t>(Request::kGetQueueNum), 1u);
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, NeedReplyIsAnsweredOnlyOnceReplyAckIsNegotiated) {
  RngRig rig;
  Session s(rig.dev);
  s.Send(Request::kSetOwner, std::monostate{}, {}, /*need_reply=*/true);  // no REPLY_ACK yet
  EXPECT_EQ(s.Ask<uint64_t>(Request::kGetQueueNum), 1u);  // so this is the next reply
  Negotiate(s);                                           // acks SET_PROTOCOL_FEATURES
  s.Ack(Request::kSetFeatures, uint64_t{virtio::kVirtioFVersion1 | kFProtocolFeatures});
  s.Ack(Request::kSetOwner, std::monostate{});
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, RngFillsAKickedBufferAndSignalsTheCall) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;

  uint64_t buf = drv.Alloc(64);
  uint16_t head = drv.AddChain({{buf, 64, true}});
  drv.Publish(head);
  ASSERT_TRUE(fds.KickThenCalled());
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_EQ(drv.UsedElem(0), std::make_pair(uint32_t{head}, uint32_t{64}));
  EXPECT_EQ(mem.Read(buf, 64), Counting(1, 64));
  EXPECT_FALSE(Signalled(fds.err.get()));
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, GetVringBaseReturnsTheNextAvailIndexAndStopsTheRing) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;
  drv.Publish(drv.AddChain({{drv.Alloc(16), 16, true}}));
  ASSERT_TRUE(fds.KickThenCalled());

  EXPECT_EQ(s.Ask<VringState>(Request::kGetVringBase, VringState{0, 0}), (VringState{0, 1}));
  drv.Publish(drv.AddChain({{drv.Alloc(16), 16, true}}));
  Kick(fds.kick.get());  // the back-end closed its kick fd: nobody listens
  s.Sync();
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_FALSE(Signalled(fds.call.get()));

  // Started again where it stopped, by a new kick fd (vhost-user "Starting and stopping
  // rings").
  RingFds again;
  s.Ack(Request::kSetVringBase, VringState{0, 1});
  s.Ack(Request::kSetVringKick, VringFd{0, false}, {again.kick.get()});
  Kick(again.kick.get());
  ASSERT_TRUE(WaitSignalled(fds.call.get()));
  EXPECT_EQ(drv.used_idx(), 2);
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, BuffersAddedWhileDisabledAreServedOnEnable) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;
  s.Ack(Request::kSetVringEnable, VringState{0, 0});
  drv.Publish(drv.AddChain({{drv.Alloc(16), 16, true}}));
  Kick(fds.kick.get());
  s.Sync();
  EXPECT_EQ(drv.used_idx(), 0);
  s.Ack(Request::kSetVringEnable, VringState{0, 1});
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_TRUE(WaitSignalled(fds.call.get()));
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, BlkGetConfigReturnsTheCapacity) {
  BlkRig rig;
  Session s(*rig.dev);
  EXPECT_NE(s.Ask<uint64_t>(Request::kGetProtocolFeatures) & ProtocolBit(kProtocolConfig), 0u);
  DeviceConfig asked{.offset = 0, .flags = 0, .bytes = std::vector<uint8_t>(8)};
  DeviceConfig got = s.Ask<DeviceConfig>(Request::kGetConfig, asked);
  ASSERT_EQ(got.bytes.size(), 8u);
  uint64_t capacity;
  std::memcpy(&capacity, got.bytes.data(), 8);
  EXPECT_EQ(capacity, BlkRig::kImageSize / 512);
  // Past the 60 bytes of config: zeros, not whatever lies beyond.
  asked = {.offset = 56, .flags = 0, .bytes = std::vector<uint8_t>(16, 0xAA)};
  got = s.Ask<DeviceConfig>(Request::kGetConfig, asked);
  ASSERT_EQ(got.bytes.size(), 16u);
  for (size_t i = 4; i < 16; ++i) EXPECT_EQ(got.bytes[i], 0) << i;
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, BlkWriteThenReadOfAPatternHitsTheImage) {
  StartedRing<BlkRig> t;
  auto& [rig, s, mem, drv, fds] = t;

  const uint64_t sector = 8;
  std::vector<uint8_t> pattern = Counting(0x40, 512);
  auto header = [&](uint32_t type) {
    uint64_t at = drv.Alloc(16);
    mem.Put<uint32_t>(at, type);
    mem.Put<uint32_t>(at + 4, 0);
    mem.Put<uint64_t>(at + 8, sector);
    return at;
  };
  uint64_t out_hdr = header(virtio::kVirtioBlkTOut), out_data = drv.Alloc(512);
  uint64_t out_status = drv.Alloc(1);
  mem.Write(out_data, pattern);
  mem.Put<uint8_t>(out_status, 0xFF);
  drv.Publish(drv.AddChain({{out_hdr, 16, false}, {out_data, 512, false}, {out_status, 1, true}}));
  ASSERT_TRUE(fds.KickThenCalled());
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_EQ(mem.Get<uint8_t>(out_status), virtio::kVirtioBlkSOk);
  std::vector<uint8_t> on_disk(512);
  ASSERT_EQ(pread(rig.image.get(), on_disk.data(), 512, sector * 512), 512);
  EXPECT_EQ(on_disk, pattern);

  uint64_t in_hdr = header(virtio::kVirtioBlkTIn), in_data = drv.Alloc(512);
  uint64_t in_status = drv.Alloc(1);
  mem.Put<uint8_t>(in_status, 0xFF);
  uint16_t head = drv.AddChain({{in_hdr, 16, false}, {in_data, 512, true}, {in_status, 1, true}});
  drv.Publish(head);
  ASSERT_TRUE(fds.KickThenCalled());
  EXPECT_EQ(drv.used_idx(), 2);
  EXPECT_EQ(drv.UsedElem(1), std::make_pair(uint32_t{head}, uint32_t{513}));
  EXPECT_EQ(mem.Get<uint8_t>(in_status), virtio::kVirtioBlkSOk);
  EXPECT_EQ(mem.Read(in_data, 512), pattern);
  EXPECT_TRUE(s.Hangup().has_value());
}

// A second SET_MEM_TABLE (QEMU sends one on every memory hotplug) must not rewind a
// running ring to its SET_VRING_BASE: that replayed old requests and moved used idx back.
TEST(VhostUserBackend, SecondMemTableKeepsARunningRingWhereItWas) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;
  uint64_t first = drv.Alloc(64), second = drv.Alloc(64);
  drv.Publish(drv.AddChain({{first, 64, true}}));
  ASSERT_TRUE(fds.KickThenCalled());

  s.Ack(Request::kSetMemTable, mem.Table(kUserBase + (1ull << 32)), {mem.fd()});
  uint16_t head = drv.AddChain({{second, 64, true}});
  drv.Publish(head);
  ASSERT_TRUE(fds.KickThenCalled());
  EXPECT_EQ(drv.used_idx(), 2);
  EXPECT_EQ(drv.UsedElem(1), std::make_pair(uint32_t{head}, uint32_t{64}));
  EXPECT_EQ(mem.Read(first, 64), Counting(1, 64));  // not filled again
  EXPECT_EQ(mem.Read(second, 64), Counting(65, 64));
  EXPECT_EQ(s.Ask<VringState>(Request::kGetVringBase, VringState{0, 0}), (VringState{0, 2}));
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, DescriptorLoopStopsTheRingSignalsErrAndTheSessionGoesOn) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;
  uint64_t buf = drv.Alloc(16);
  drv.SetDesc(0, buf, 16, virtio::kVirtqDescFWrite | virtio::kVirtqDescFNext, 1);
  drv.SetDesc(1, buf, 16, virtio::kVirtqDescFWrite | virtio::kVirtqDescFNext, 0);
  drv.Publish(0);
  Kick(fds.kick.get());
  ASSERT_TRUE(WaitSignalled(fds.err.get()));
  EXPECT_EQ(drv.used_idx(), 0);
  s.Sync();
  ASSERT_FALSE(s.log().empty());
  EXPECT_NE(s.log().back().find("queue 0 stopped"), std::string::npos) << s.log().back();

  // Broken until the front-end stops it: repairing the chain and kicking changes nothing.
  drv.SetDesc(0, buf, 16, virtio::kVirtqDescFWrite, 0);
  Kick(fds.kick.get());
  s.Sync();
  EXPECT_EQ(drv.used_idx(), 0);

  // GET_VRING_BASE names the chain that broke it; a fresh start from there serves it.
  EXPECT_EQ(s.Ask<VringState>(Request::kGetVringBase, VringState{0, 0}), (VringState{0, 0}));
  RingFds again;
  s.Ack(Request::kSetVringBase, VringState{0, 0});
  s.Ack(Request::kSetVringKick, VringFd{0, false}, {again.kick.get()});
  Kick(again.kick.get());
  ASSERT_TRUE(WaitSignalled(fds.call.get()));
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_EQ(mem.Read(buf, 16), Counting(1, 16));
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, BufferOutsideRamStopsTheRingWithoutTouchingIt) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;
  // Straddles the end of the only region, then lies wholly past it.
  drv.Publish(drv.AddChain({{kRamSize - 8, 64, true}}));
  Kick(fds.kick.get());
  ASSERT_TRUE(WaitSignalled(fds.err.get()));
  EXPECT_EQ(mem.Read(kRamSize - 8, 8), std::vector<uint8_t>(8, 0));
  EXPECT_EQ(s.Ask<VringState>(Request::kGetVringBase, VringState{0, 0}), (VringState{0, 0}));

  RingFds again;
  drv.SetDesc(0, kRamSize + 4096, 64, virtio::kVirtqDescFWrite, 0);
  s.Ack(Request::kSetVringBase, VringState{0, 0});
  s.Ack(Request::kSetVringKick, VringFd{0, false}, {again.kick.get()});
  Kick(again.kick.get());
  ASSERT_TRUE(WaitSignalled(fds.err.get()));
  EXPECT_EQ(drv.used_idx(), 0);
  EXPECT_EQ(rig.entropy.calls, 0u);
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, GetVringBaseAfterAFaultNamesTheChainThatBrokeTheRing) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;
  drv.Publish(drv.AddChain({{drv.Alloc(16), 16, true}}));
  ASSERT_TRUE(fds.KickThenCalled());
  drv.Publish(drv.AddChain({{drv.Alloc(16), 0, true}}));  // zero-length buffer
  Kick(fds.kick.get());
  ASSERT_TRUE(WaitSignalled(fds.err.get()));
  // Not the last SET_VRING_BASE (0): resuming there would replay the served chain.
  EXPECT_EQ(s.Ask<VringState>(Request::kGetVringBase, VringState{0, 0}), (VringState{0, 1}));
  EXPECT_TRUE(s.Hangup().has_value());
}

// SET_VRING_ADDR checks where each ring starts; one that runs off its region is found
// when the ring starts, and that is the guest's ring, not the session, breaking.
TEST(VhostUserBackend, RingRunningPastItsRegionBreaksOnlyThatRing) {
  RngRig rig;
  Session s(rig.dev);
  GuestMemory mem;
  RingFds fds;
  Negotiate(s);
  s.Ack(Request::kSetMemTable, mem.Table(), {mem.fd()});
  s.Ack(Request::kSetVringNum, VringState{0, kQueueSize});
  VringAddress a{.index = 0,
                 .flags = 0,
                 .descriptor = kUserBase + kRamSize - 64,
                 .used = kUserBase + kUsedGpa,
                 .available = kUserBase + kAvailGpa,
                 .log = 0};
  s.Ack(Request::kSetVringAddr, a);
  s.Ack(Request::kSetVringErr, VringFd{0, false}, {fds.err.get()});
  s.Ack(Request::kSetVringKick, VringFd{0, false}, {fds.kick.get()});
  EXPECT_TRUE(Signalled(fds.err.get()));
  s.Sync();
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, HangUpBetweenMessagesEndsTheSessionCleanly) {
  StartedRing<RngRig> t;
  auto& [rig, s, mem, drv, fds] = t;
  EXPECT_TRUE(s.Hangup().has_value());
}

TEST(VhostUserBackend, NoFdOutlivesTheSession) {
  const size_t before = OpenFdCount();
  {
    StartedRing<RngRig> t;
    auto& [rig, s, mem, drv, fds] = t;
    s.Ack(Request::kSetMemTable, mem.Table(), {mem.fd()});  // the first table's fd closes
    RingFds more;
    s.Ack(Request::kSetVringCall, VringFd{0, false}, {more.call.get()});
    s.Ack(Request::kSetVringKick, VringFd{0, false}, {more.kick.get()});
    EXPECT_TRUE(s.Hangup().has_value());
  }
  EXPECT_EQ(OpenFdCount(), before);
}

// Handle, without the poll loop, as the fuzzer drives it.
TEST(VhostUserBackend, HandleAndServeForTestWorkWithoutThePollLoop) {
  RngRig rig;
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd front(sv[0]), back(sv[1]);
  Backend b(rig.dev, back.get(), {.log = [](const std::string&) {}});
  GuestMemory mem;
  Driver drv(mem);
  RingFds fds;
  auto handle = [&](Request r, const Payload& p, std::vector<int> borrowed = {}) {
    auto bytes = EncodeRequest(r, p, borrowed.size());
    EXPECT_TRUE(bytes.has_value());
    std::vector<UniqueFd> owned;
    for (int fd : borrowed) owned.emplace_back(dup(fd));
    auto m = Decode(*bytes, std::move(owned), Direction::kRequest);
    EXPECT_TRUE(m.has_value());
    return b.Handle(*m);
  };
  const uint64_t acked = virtio::kVirtioFVersion1;
  ASSERT_TRUE(handle(Request::kSetFeatures, acked).has_value());  // rings start enabled
  EXPECT_EQ(b.acked_features(), acked);
  ASSERT_TRUE(handle(Request::kSetMemTable, mem.Table(), {mem.fd()}).has_value());
  ASSERT_TRUE(handle(Request::kSetVringNum, VringState{0, kQueueSize}).has_value());
  ASSERT_TRUE(handle(Request::kSetVringAddr, drv.Address()).has_value());
  ASSERT_TRUE(handle(Request::kSetVringCall, VringFd{0, false}, {fds.call.get()}).has_value());
  EXPECT_FALSE(b.ring_started(0));
  ASSERT_TRUE(handle(Request::kSetVringKick, VringFd{0, false}, {fds.kick.get()}).has_value());
  EXPECT_TRUE(b.ring_started(0));
  drv.Publish(drv.AddChain({{drv.Alloc(8), 8, true}}));
  ASSERT_TRUE(b.ServeForTest(0).has_value());
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_TRUE(Signalled(fds.call.get()));
  EXPECT_FALSE(b.ServeForTest(1).has_value());
  ASSERT_TRUE(handle(Request::kGetVringBase, VringState{0, 0}).has_value());
  EXPECT_FALSE(b.ring_started(0));
}

}  // namespace
}  // namespace vmm::vhost_user
