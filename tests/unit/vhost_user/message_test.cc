// Decode over hand-built bytes: each validation rule, and what a well-behaved front-end
// (QEMU's layout: memory tables sized to their regions) sends.
#include "vmm/formats/vhost_user/message.h"

#include <gtest/gtest.h>

#include "tests/unit/vhost_user/test_util.h"

namespace vmm::vhost_user {
namespace {

using testing::DevNullFds;
using testing::IsOpen;
using testing::OpenFdCount;
using testing::PayloadBytes;
using testing::Wire;

constexpr uint32_t kReplyFlags = kVersion | kFlagReply;

Result<Message> DecodeRequest(const std::vector<uint8_t>& bytes, size_t fds = 0) {
  return Decode(bytes, DevNullFds(fds), Direction::kRequest);
}

// Expects a kProtocol error whose message contains every one of `words`.
void ExpectRejected(const Result<Message>& r, std::initializer_list<const char*> words) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kProtocol);
  for (const char* w : words)
    EXPECT_NE(r.error().message().find(w), std::string::npos)
        << "'" << w << "' not in: " << r.error().message();
}

PayloadBytes Table(std::initializer_list<MemoryRegion> regions) {
  PayloadBytes p;
  p.U32(static_cast<uint32_t>(regions.size())).U32(0);
  for (const MemoryRegion& m : regions)
    p.Region(m.guest_phys_addr, m.memory_size, m.userspace_addr, m.mmap_offset);
  return p;
}

PayloadBytes Config(uint32_t offset, uint32_t size, uint32_t flags, size_t bytes) {
  return PayloadBytes().U32(offset).U32(size).U32(flags).Zeros(bytes);
}

TEST(VhostUserDecode, GetFeaturesHasNoPayload) {
  auto m = DecodeRequest(Wire(Request::kGetFeatures));
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(m->request, Request::kGetFeatures);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(m->payload));
  EXPECT_FALSE(m->need_reply());
  EXPECT_TRUE(m->fds.empty());
}

TEST(VhostUserDecode, SetFeaturesCarriesU64AndNeedReply) {
  auto m = Decode(Wire(2, kVersion | kFlagNeedReply, PayloadBytes().U64(kFProtocolFeatures | 1)),
                  {}, Direction::kRequest);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(std::get<uint64_t>(m->payload), kFProtocolFeatures | 1);
  EXPECT_TRUE(m->need_reply());
}

TEST(VhostUserDecode, RejectsTruncatedHeader) {
  for (size_t n : {0, 1, 4, 11}) {
    std::vector<uint8_t> bytes = Wire(Request::kGetFeatures);
    bytes.resize(n);
    ExpectRejected(DecodeRequest(bytes), {"header"});
  }
}

TEST(VhostUserDecode, RejectsVersionOtherThanOne) {
  for (uint32_t version : {0u, 2u, 3u})
    ExpectRejected(Decode(Wire(1, version), {}, Direction::kRequest),
                   {"VHOST_USER_GET_FEATURES", "version"});
}

TEST(VhostUserDecode, RejectsUnknownFlagBits) {
  ExpectRejected(Decode(Wire(1, kVersion | 0x10), {}, Direction::kRequest), {"flags"});
  ExpectRejected(Decode(Wire(1, kVersion | 0x80000000), {}, Direction::kRequest), {"flags"});
}

TEST(VhostUserDecode, RejectsUnknownRequests) {
  for (uint32_t code : {0u, 41u, 1000u, 0xFFFFFFFFu})
    ExpectRejected(Decode(Wire(code, kVersion), {}, Direction::kRequest), {"unknown"});
}

TEST(VhostUserDecode, RejectsUnsupportedRequestsByName) {
  ExpectRejected(DecodeRequest(Wire(31, kVersion, PayloadBytes().Zeros(24))),
                 {"VHOST_USER_GET_INFLIGHT_FD", "not supported"});
  ExpectRejected(DecodeRequest(Wire(6, kVersion, PayloadBytes().U64(0)), 1),
                 {"VHOST_USER_SET_LOG_BASE", "not supported"});
  EXPECT_FALSE(IsSupported(Request::kSetInflightFd));
  EXPECT_TRUE(IsSupported(Request::kAddMemReg));
}

TEST(VhostUserDecode, RejectsSizeFieldThatDisagreesWithTheBytes) {
  ExpectRejected(DecodeRequest(Wire(2, kVersion, PayloadBytes().U32(0), 8)), {"size field"});
  ExpectRejected(DecodeRequest(Wire(1, kVersion, PayloadBytes().U64(0), 0)), {"size field"});
}

TEST(VhostUserDecode, RejectsWrongPayloadSizeForTheRequest) {
  struct Case {
    Request request;
    size_t size;
  } cases[] = {
      {Request::kGetFeatures, 8},   {Request::kSetOwner, 4},      {Request::kSetFeatures, 0},
      {Request::kSetFeatures, 4},   {Request::kSetFeatures, 16},  {Request::kSetVringNum, 4},
      {Request::kSetVringBase, 12}, {Request::kSetVringAddr, 32}, {Request::kSetVringAddr, 48},
      {Request::kGetVringBase, 0},  {Request::kAddMemReg, 32},    {Request::kRemMemReg, 48},
      {Request::kSetStatus, 4},     {Request::kGetQueueNum, 8},   {Request::kSetVringCall, 4},
  };
  for (const Case& c : cases) {
    ExpectRejected(DecodeRequest(Wire(c.request, PayloadBytes().Zeros(c.size))),
                   {RequestName(c.request), "payload"});
  }
}

TEST(VhostUserDecode, ReplyFlagMustMatchTheDirection) {
  ExpectRejected(Decode(Wire(1, kReplyFlags, PayloadBytes().U64(0)), {}, Direction::kRequest),
                 {"REPLY"});
  ExpectRejected(Decode(Wire(1, kVersion, PayloadBytes().U64(0)), {}, Direction::kReply),
                 {"REPLY"});
  ExpectRejected(
      Decode(Wire(1, kReplyFlags | kFlagNeedReply, PayloadBytes().U64(0)), {}, Direction::kReply),
      {"NEED_REPLY"});
}

TEST(VhostUserDecode, RepliesHaveTheirOwnPayloads) {
  auto features = Decode(Wire(1, kReplyFlags, PayloadBytes().U64(0x1234)), {}, Direction::kReply);
  ASSERT_TRUE(features.has_value()) << features.error().ToString();
  EXPECT_EQ(std::get<uint64_t>(features->payload), 0x1234u);
  EXPECT_TRUE(features->is_reply());
  auto base = Decode(Wire(11, kReplyFlags, PayloadBytes().U32(1).U32(77)), {}, Direction::kReply);
  ASSERT_TRUE(base.has_value()) << base.error().ToString();
  EXPECT_EQ(std::get<VringState>(base->payload), (VringState{1, 77}));
  auto ack = Decode(Wire(5, kReplyFlags, PayloadBytes().U64(0)), {}, Direction::kReply);
  ASSERT_TRUE(ack.has_value()) << ack.error().ToString();  // REPLY_ACK to SET_MEM_TABLE
  auto failed = Decode(Wire(24, kReplyFlags, Config(0, 0, 0, 0)), {}, Direction::kReply);
  ASSERT_TRUE(failed.has_value()) << failed.error().ToString();  // empty GET_CONFIG = failure
  ExpectRejected(
      Decode(Wire(1, kReplyFlags, PayloadBytes().U64(0)), DevNullFds(1), Direction::kReply),
      {"replies carry no fds"});
}

TEST(VhostUserDecode, MemTableOwnsOneFdPerRegion) {
  std::vector<UniqueFd> fds = DevNullFds(2);
  const int first = fds[0].get(), second = fds[1].get();
  auto m = Decode(
      Wire(Request::kSetMemTable, Table({{0, 0x80000000, 0x7f0000000000, 0},
                                         {0x100000000, 0x40000000, 0x7f0080000000, 0x80000000}})),
      std::move(fds), Direction::kRequest);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  const auto& table = std::get<MemoryTable>(m->payload);
  ASSERT_EQ(table.regions.size(), 2u);
  EXPECT_EQ(table.regions[1], (MemoryRegion{0x100000000, 0x40000000, 0x7f0080000000, 0x80000000}));
  ASSERT_EQ(m->fds.size(), 2u);
  EXPECT_EQ(m->fds[0].get(), first);
  EXPECT_EQ(m->fds[1].get(), second);
}

TEST(VhostUserDecode, MemTableNeedsOneToEightRegions) {
  ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable, PayloadBytes().U32(0).U32(0))),
                 {"VHOST_USER_SET_MEM_TABLE", "nregions is 0"});
  PayloadBytes nine = PayloadBytes().U32(9).U32(0);
  for (uint64_t i = 0; i < 9; ++i) nine.Region(i << 30, 1 << 30, i << 30, 0);
  ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable, nine), 9), {"nregions is 9"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable, PayloadBytes().U32(1))), {"8-byte"});
  PayloadBytes eight = PayloadBytes().U32(8).U32(0);
  for (uint64_t i = 0; i < 8; ++i) eight.Region(i << 30, 1 << 30, i << 30, 0);
  EXPECT_TRUE(DecodeRequest(Wire(Request::kSetMemTable, eight), 8).has_value());
}

TEST(VhostUserDecode, MemTableSizeFollowsNregions) {
  PayloadBytes p = Table({{0, 4096, 0x10000, 0}});
  p.bytes[0] = 2;  // claims two regions, carries one
  ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable, p), 2), {"needs exactly 72"});
  p = Table({{0, 4096, 0x10000, 0}}).Zeros(32);  // one region, trailing bytes
  ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable, p), 1), {"needs exactly 40"});
}

TEST(VhostUserDecode, MemTableFdCountMustEqualNregions) {
  auto p = Table({{0, 4096, 0x10000, 0}, {8192, 4096, 0x20000, 0}});
  for (size_t fds : {0, 1, 3, 8})
    ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable, p), fds),
                   {"VHOST_USER_SET_MEM_TABLE", "one fd per region"});
}

TEST(VhostUserDecode, RejectsEmptyAndWrappingRegions) {
  const uint64_t top = ~uint64_t{0} - 4095;
  struct Case {
    MemoryRegion region;
    const char* rule;
  } cases[] = {
      {{0, 0, 0x10000, 0}, "memory_size is 0"},
      {{top, 8192, 0x10000, 0}, "guest_phys_addr"},
      {{0, 8192, top, 0}, "userspace_addr"},
      {{0, 8192, 0x10000, top}, "mmap_offset"},
      {{0, 8192, 0x10000, uint64_t{1} << 63}, "off_t"},
  };
  for (const Case& c : cases) {
    ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable, Table({c.region})), 1), {c.rule});
    ExpectRejected(
        DecodeRequest(Wire(Request::kAddMemReg, PayloadBytes().U64(0).Region(
                                                    c.region.guest_phys_addr, c.region.memory_size,
                                                    c.region.userspace_addr, c.region.mmap_offset)),
                      1),
        {"VHOST_USER_ADD_MEM_REG", c.rule});
  }
  // Ending exactly at the top of the address space does not wrap.
  EXPECT_TRUE(
      DecodeRequest(Wire(Request::kSetMemTable, Table({{top, 4096, top, 0}})), 1).has_value());
}

TEST(VhostUserDecode, RejectsOverlappingRegions) {
  ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable,
                                    Table({{0, 0x2000, 0x10000, 0}, {0x1000, 0x1000, 0x90000, 0}})),
                               2),
                 {"overlap in guest-physical"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetMemTable,
                                    Table({{0, 0x1000, 0x10000, 0}, {0x1000, 0x1000, 0x10FFF, 0}})),
                               2),
                 {"overlap in front-end user"});
  EXPECT_TRUE(DecodeRequest(Wire(Request::kSetMemTable,
                                 Table({{0, 0x1000, 0x10000, 0}, {0x1000, 0x1000, 0x11000, 0}})),
                            2)
                  .has_value());  // adjacent is fine
}

TEST(VhostUserDecode, AddMemRegNeedsExactlyOneFd) {
  auto p = PayloadBytes().U64(0).Region(0x100000000, 1 << 20, 0x7f0000000000, 0);
  auto m = DecodeRequest(Wire(Request::kAddMemReg, p), 1);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(std::get<SingleRegion>(m->payload).region.memory_size, 1u << 20);
  EXPECT_EQ(m->fds.size(), 1u);
  for (size_t fds : {0, 2})
    ExpectRejected(DecodeRequest(Wire(Request::kAddMemReg, p), fds), {"exactly 1 fd"});
}

TEST(VhostUserDecode, RemMemRegClosesATolerablyPassedFd) {
  auto p = PayloadBytes().U64(0).Region(0x100000000, 1 << 20, 0x7f0000000000, 0);
  auto none = DecodeRequest(Wire(Request::kRemMemReg, p), 0);
  ASSERT_TRUE(none.has_value()) << none.error().ToString();
  std::vector<UniqueFd> one = DevNullFds(1);
  const int fd = one[0].get();
  auto m = Decode(Wire(Request::kRemMemReg, p), std::move(one), Direction::kRequest);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_TRUE(m->fds.empty());
  EXPECT_FALSE(IsOpen(fd));
  ExpectRejected(DecodeRequest(Wire(Request::kRemMemReg, p), 2), {"VHOST_USER_REM_MEM_REG"});
}

TEST(VhostUserDecode, VringFdMessagesNeedAnFdUnlessNoFd) {
  for (Request r : {Request::kSetVringKick, Request::kSetVringCall, Request::kSetVringErr}) {
    auto with_fd = DecodeRequest(Wire(r, PayloadBytes().U64(3)), 1);
    ASSERT_TRUE(with_fd.has_value()) << with_fd.error().ToString();
    EXPECT_EQ(std::get<VringFd>(with_fd->payload), (VringFd{3, false}));
    EXPECT_EQ(with_fd->fds.size(), 1u);
    auto polled = DecodeRequest(Wire(r, PayloadBytes().U64(kVringNoFd | 255)), 0);
    ASSERT_TRUE(polled.has_value()) << polled.error().ToString();
    EXPECT_EQ(std::get<VringFd>(polled->payload), (VringFd{255, true}));
    ExpectRejected(DecodeRequest(Wire(r, PayloadBytes().U64(3)), 0), {RequestName(r), "1 fd"});
    ExpectRejected(DecodeRequest(Wire(r, PayloadBytes().U64(kVringNoFd | 3)), 1), {"NOFD"});
    ExpectRejected(DecodeRequest(Wire(r, PayloadBytes().U64(0x200 | 3)), 1), {"bits above 8"});
  }
}

TEST(VhostUserDecode, FdsWhereNoneBelongAreRefusedAndClosed) {
  const size_t before = OpenFdCount();
  for (Request r : {Request::kSetFeatures, Request::kSetProtocolFeatures, Request::kSetStatus}) {
    ExpectRejected(DecodeRequest(Wire(r, PayloadBytes().U64(0)), 1), {RequestName(r), "no fds"});
  }
  ExpectRejected(DecodeRequest(Wire(Request::kSetVringNum, PayloadBytes().U32(0).U32(8)), 8),
                 {"arrived with 8 fds"});
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(VhostUserDecode, SetBackendReqFdNeedsOneFd) {
  EXPECT_TRUE(DecodeRequest(Wire(Request::kSetBackendReqFd), 1).has_value());
  ExpectRejected(DecodeRequest(Wire(Request::kSetBackendReqFd), 0), {"exactly 1 fd"});
}

TEST(VhostUserDecode, VringIndexesStopAt255) {
  EXPECT_TRUE(
      DecodeRequest(Wire(Request::kSetVringBase, PayloadBytes().U32(255).U32(0))).has_value());
  ExpectRejected(DecodeRequest(Wire(Request::kSetVringBase, PayloadBytes().U32(256).U32(0))),
                 {"vring index 256"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetVringAddr, PayloadBytes().U32(256).Zeros(36))),
                 {"VHOST_USER_SET_VRING_ADDR", "vring index"});
}

TEST(VhostUserDecode, VringNumIsOneTo32768) {
  for (uint32_t num : {1u, 256u, 32768u})
    EXPECT_TRUE(
        DecodeRequest(Wire(Request::kSetVringNum, PayloadBytes().U32(0).U32(num))).has_value());
  for (uint32_t num : {0u, 32769u, 0xFFFFFFFFu})
    ExpectRejected(DecodeRequest(Wire(Request::kSetVringNum, PayloadBytes().U32(0).U32(num))),
                   {"queue size"});
}

TEST(VhostUserDecode, VringEnableIsZeroOrOne) {
  EXPECT_TRUE(
      DecodeRequest(Wire(Request::kSetVringEnable, PayloadBytes().U32(0).U32(1))).has_value());
  ExpectRejected(DecodeRequest(Wire(Request::kSetVringEnable, PayloadBytes().U32(0).U32(2))),
                 {"0 or 1"});
}

TEST(VhostUserDecode, VringAddressFields) {
  auto p = PayloadBytes()
               .U32(1)
               .U32(kVringFlagLog)
               .U64(0x7f0000001000)
               .U64(0x7f0000003000)
               .U64(0x7f0000002000)
               .U64(0x5000);
  auto m = DecodeRequest(Wire(Request::kSetVringAddr, p));
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(
      std::get<VringAddress>(m->payload),
      (VringAddress{1, kVringFlagLog, 0x7f0000001000, 0x7f0000003000, 0x7f0000002000, 0x5000}));
  p.bytes[4] = 2;  // an undefined vring flag
  ExpectRejected(DecodeRequest(Wire(Request::kSetVringAddr, p)), {"vring flags"});
}

TEST(VhostUserDecode, ConfigSizeMustMatchItsPayload) {
  auto m = DecodeRequest(Wire(Request::kGetConfig, Config(0, 60, 0, 60)));
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(std::get<DeviceConfig>(m->payload).bytes.size(), 60u);
  ExpectRejected(DecodeRequest(Wire(Request::kGetConfig, Config(0, 60, 0, 59))),
                 {"VHOST_USER_GET_CONFIG", "needs exactly 72"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetConfig, Config(0, 4, 0, 8))), {"exactly 16"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetConfig, PayloadBytes().U32(0).U32(4))),
                 {"12-byte"});
}

TEST(VhostUserDecode, ConfigAccessStaysInside256Bytes) {
  EXPECT_TRUE(DecodeRequest(Wire(Request::kSetConfig, Config(0, 256, 0, 256))).has_value());
  EXPECT_TRUE(DecodeRequest(Wire(Request::kSetConfig, Config(252, 4, 1, 4))).has_value());
  ExpectRejected(DecodeRequest(Wire(Request::kSetConfig, Config(0, 257, 0, 257))),
                 {"config size 257"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetConfig, Config(0, 0, 0, 0))), {"config size 0"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetConfig, Config(253, 4, 0, 4))), {"beyond 256"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetConfig, Config(0xFFFFFFFF, 4, 0, 4))),
                 {"beyond 256"});
  ExpectRejected(DecodeRequest(Wire(Request::kSetConfig, Config(0, 4, 2, 4))), {"flags 2"});
}

TEST(VhostUserDecode, EveryFailureClosesEveryFd) {
  const size_t before = OpenFdCount();
  std::vector<UniqueFd> fds = DevNullFds(3);
  std::vector<int> numbers;
  for (const UniqueFd& fd : fds) numbers.push_back(fd.get());
  ExpectRejected(Decode(Wire(99, kVersion), std::move(fds), Direction::kRequest), {"unknown"});
  for (int fd : numbers) EXPECT_FALSE(IsOpen(fd)) << fd;
  EXPECT_EQ(OpenFdCount(), before);
}

}  // namespace
}  // namespace vmm::vhost_user
