// EncodeRequest/EncodeReply: the exact bytes, round trips through Decode, and refusal to
// produce anything Decode would reject.
#include <gtest/gtest.h>

#include "tests/unit/vhost_user/test_util.h"
#include "vmm/formats/vhost_user/message.h"

namespace vmm::vhost_user {
namespace {

using testing::DevNullFds;
using testing::PayloadBytes;
using testing::Wire;

// Encodes `payload` as a request with `fds` fds and decodes it again.
Payload RoundTrip(Request request, const Payload& payload, size_t fds = 0) {
  auto bytes = EncodeRequest(request, payload, fds);
  EXPECT_TRUE(bytes.has_value()) << bytes.error().ToString();
  if (!bytes.has_value()) return {};
  auto m = Decode(*bytes, DevNullFds(fds), Direction::kRequest);
  EXPECT_TRUE(m.has_value()) << m.error().ToString();
  if (!m.has_value()) return {};
  EXPECT_EQ(m->request, request);
  EXPECT_EQ(m->fds.size(), fds);
  return std::move(m->payload);
}

TEST(VhostUserEncode, HeaderLayoutIsRequestFlagsSize) {
  auto bytes = EncodeRequest(Request::kSetFeatures, uint64_t{0x1122334455667788}, 0, true);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  EXPECT_EQ(*bytes, Wire(2, kVersion | kFlagNeedReply, PayloadBytes().U64(0x1122334455667788)));
  auto reply = EncodeReply(Request::kGetFeatures, uint64_t{7});
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(*reply, Wire(1, kVersion | kFlagReply, PayloadBytes().U64(7)));
}

TEST(VhostUserEncode, MemTableIsSizedToItsRegions) {
  MemoryTable t{{{0, 0x1000, 0x10000, 0}, {0x1000, 0x1000, 0x20000, 0x1000}}};
  auto bytes = EncodeRequest(Request::kSetMemTable, t, 2);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  EXPECT_EQ(bytes->size(), kHeaderSize + 8 + 2 * 32);  // what QEMU sends, not all 8 slots
}

TEST(VhostUserEncode, EveryPayloadRoundTrips) {
  EXPECT_EQ(std::get<uint64_t>(
                RoundTrip(Request::kSetProtocolFeatures,
                          uint64_t{ProtocolBit(kProtocolMq) | ProtocolBit(kProtocolReplyAck) |
                                   ProtocolBit(kProtocolConfig)})),
            0x209u);
  EXPECT_EQ(std::get<VringState>(RoundTrip(Request::kSetVringNum, VringState{2, 256})),
            (VringState{2, 256}));
  VringAddress a{1, 0, 0x7f0000001000, 0x7f0000003000, 0x7f0000002000, 0};
  EXPECT_EQ(std::get<VringAddress>(RoundTrip(Request::kSetVringAddr, a)), a);
  MemoryTable t{
      {{0, 0x80000000, 0x7f0000000000, 0}, {0x100000000, 0x40000000, 0x7f0080000000, 0x80000000}}};
  EXPECT_EQ(std::get<MemoryTable>(RoundTrip(Request::kSetMemTable, t, 2)), t);
  SingleRegion r{{0x100000000, 1 << 20, 0x7f0000000000, 0}};
  EXPECT_EQ(std::get<SingleRegion>(RoundTrip(Request::kAddMemReg, r, 1)), r);
  DeviceConfig c{20, kConfigFlagWritable, {1, 2, 3, 4}};
  EXPECT_EQ(std::get<DeviceConfig>(RoundTrip(Request::kSetConfig, c)), c);
  EXPECT_EQ(std::get<VringFd>(RoundTrip(Request::kSetVringCall, VringFd{4, false}, 1)),
            (VringFd{4, false}));
  EXPECT_EQ(std::get<VringFd>(RoundTrip(Request::kSetVringKick, VringFd{4, true}, 0)),
            (VringFd{4, true}));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(RoundTrip(Request::kGetMaxMemSlots, {})));
}

TEST(VhostUserEncode, RepliesRoundTrip) {
  auto bytes = EncodeReply(Request::kGetVringBase, VringState{0, 42});
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  auto m = Decode(*bytes, {}, Direction::kReply);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(std::get<VringState>(m->payload), (VringState{0, 42}));
  DeviceConfig c{0, 0, std::vector<uint8_t>(60, 0xAB)};
  bytes = EncodeReply(Request::kGetConfig, c);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  m = Decode(*bytes, {}, Direction::kReply);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(std::get<DeviceConfig>(m->payload), c);
  // A REPLY_ACK status for a request without a reply body.
  bytes = EncodeReply(Request::kSetVringAddr, uint64_t{1});
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
}

TEST(VhostUserEncode, WrongPayloadTypeIsAnInternalError) {
  auto bytes = EncodeRequest(Request::kSetFeatures, VringState{0, 1}, 0);
  ASSERT_FALSE(bytes.has_value());
  EXPECT_EQ(bytes.error().kind(), ErrorKind::kInternal);
  EXPECT_FALSE(EncodeReply(Request::kGetVringBase, uint64_t{0}).has_value());
}

TEST(VhostUserEncode, RefusesWhatDecodeWouldReject) {
  MemoryTable nine;
  for (uint64_t i = 0; i < 9; ++i) nine.regions.push_back({i << 30, 1 << 30, i << 30, 0});
  EXPECT_FALSE(EncodeRequest(Request::kSetMemTable, nine, 9).has_value());
  MemoryTable one{{{0, 0x1000, 0x10000, 0}}};
  EXPECT_FALSE(EncodeRequest(Request::kSetMemTable, one, 0).has_value());
  EXPECT_FALSE(EncodeRequest(Request::kSetVringNum, VringState{0, 0}, 0).has_value());
  EXPECT_FALSE(EncodeRequest(Request::kSetConfig, DeviceConfig{0, 0, std::vector<uint8_t>(257)}, 0)
                   .has_value());
  EXPECT_FALSE(EncodeRequest(Request::kSetVringKick, VringFd{256, false}, 1).has_value());
  EXPECT_FALSE(EncodeRequest(Request::kGetInflightFd, {}, 0).has_value());
  EXPECT_FALSE(EncodeRequest(static_cast<Request>(77), {}, 0).has_value());
}

TEST(VhostUserEncode, NamesRequests) {
  EXPECT_STREQ(RequestName(Request::kSetMemTable), "VHOST_USER_SET_MEM_TABLE");
  EXPECT_STREQ(RequestName(Request::kGetStatus), "VHOST_USER_GET_STATUS");
  EXPECT_STREQ(RequestName(static_cast<Request>(0)), "unknown vhost-user request");
}

}  // namespace
}  // namespace vmm::vhost_user
