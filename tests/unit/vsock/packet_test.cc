#include "vmm/formats/vsock/packet.h"

#include <gtest/gtest.h>

#include <vector>

namespace vmm::vsock {
namespace {

constexpr uint64_t kGuest = 3;

Header Valid(Op op, uint32_t len = 0) {
  Header h;
  h.src_cid = kGuest;
  h.dst_cid = kHostCid;
  h.src_port = 1234;
  h.dst_port = 5000;
  h.len = len;
  h.type = kTypeStream;
  h.op = static_cast<uint16_t>(op);
  h.buf_alloc = 4096;
  return h;
}

std::string Refusal(const Header& h, uint64_t payload, uint32_t max = 64 * 1024) {
  auto r = CheckGuestHeader(h, payload, {kGuest, max});
  if (r) return "";
  EXPECT_EQ(r.error().kind(), ErrorKind::kGuest);
  return r.error().message();
}

TEST(VsockPacket, EncodeThenParseIsIdentityAndLittleEndian) {
  Header h{0x0102030405060708, 2, 0xAABBCCDD, 7, 9, 1, 5, 0, 65536, 77};
  auto bytes = EncodeHeader(h);
  EXPECT_EQ(bytes[0], 0x08);
  EXPECT_EQ(bytes[7], 0x01);
  EXPECT_EQ(bytes[16], 0xDD);
  EXPECT_EQ(bytes[30], 5);
  auto back = ParseHeader(bytes);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, h);
}

TEST(VsockPacket, ShortHeaderIsRefused) {
  std::vector<uint8_t> b(kHeaderSize - 1);
  auto r = ParseHeader(b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("shorter than its 44-byte header"), std::string::npos);
}

TEST(VsockPacket, ValidPacketsPass) {
  for (uint16_t op = 1; op <= 7; ++op) {
    Header h = Valid(static_cast<Op>(op));
    if (op == static_cast<uint16_t>(Op::kShutdown)) h.flags = kShutdownRcv | kShutdownSend;
    EXPECT_EQ(Refusal(h, 0), "") << OpName(op);
  }
  EXPECT_EQ(Refusal(Valid(Op::kRw, 100), 100), "");
}

TEST(VsockPacket, EveryMalformedFieldIsRefusedByName) {
  Header h = Valid(Op::kRw, 10);
  h.type = 2;  // SEQPACKET: not offered
  EXPECT_NE(Refusal(h, 10).find("not STREAM"), std::string::npos);
  h = Valid(Op::kRw, 10);
  h.src_cid = 4;
  EXPECT_NE(Refusal(h, 10).find("src_cid"), std::string::npos);
  h = Valid(Op::kRw, 10);
  h.dst_cid = 3;
  EXPECT_NE(Refusal(h, 10).find("dst_cid"), std::string::npos);
  for (uint16_t op : {0, 8, 0xffff}) {
    h = Valid(Op::kRw, 0);
    h.op = op;
    EXPECT_NE(Refusal(h, 0).find("unknown op"), std::string::npos) << op;
  }
  h = Valid(Op::kRw, 10);
  EXPECT_NE(Refusal(h, 9).find("len says 10 bytes but the buffers hold 9"), std::string::npos);
  EXPECT_NE(Refusal(h, 11).find("len says"), std::string::npos);
  h = Valid(Op::kRw, 65);
  EXPECT_NE(Refusal(h, 65, 64).find("above the limit of 64"), std::string::npos);
  h = Valid(Op::kRequest, 4);
  EXPECT_NE(Refusal(h, 4).find("payload on an op other than RW"), std::string::npos);
  h = Valid(Op::kShutdown);
  h.flags = 4;
  EXPECT_NE(Refusal(h, 0).find("flags 4"), std::string::npos);
  h = Valid(Op::kRw, 0);
  h.flags = 1;
  EXPECT_NE(Refusal(h, 0).find("flags 1"), std::string::npos);
}

}  // namespace
}  // namespace vmm::vsock
