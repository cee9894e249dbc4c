// The swtpm control protocol codec, checked against swtpm's own header (tpm_ioctl.h from
// Debian's swtpm-dev) and against hostile input.
#include "vtpm/protocol/swtpm_protocol.h"

#include <gtest/gtest.h>
#include <swtpm/tpm_ioctl.h>

#include <cstddef>
#include <random>
#include <utility>

namespace vmm::vtpm::swtpm {
namespace {

std::vector<uint8_t> Bytes(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> out;
  for (uint32_t w : words) AppendBe<uint32_t>(out, w);
  return out;
}

// sizeof a (nested) member of one of swtpm's structs.
template <typename T, typename F>
constexpr size_t FieldSize(F f) {
  return sizeof(decltype(f(std::declval<const T&>())));
}

Request Req(Command c) {
  Request r;
  r.command = c;
  return r;
}

TEST(SwtpmProtocol, ConstantsMatchSwtpmHeader) {
  EXPECT_EQ(uint32_t(Command::kGetCapability), uint32_t(CMD_GET_CAPABILITY));
  EXPECT_EQ(uint32_t(Command::kInit), uint32_t(CMD_INIT));
  EXPECT_EQ(uint32_t(Command::kSetLocality), uint32_t(CMD_SET_LOCALITY));
  EXPECT_EQ(uint32_t(Command::kGetStateBlob), uint32_t(CMD_GET_STATEBLOB));
  EXPECT_EQ(uint32_t(Command::kSetStateBlob), uint32_t(CMD_SET_STATEBLOB));
  EXPECT_EQ(uint32_t(Command::kStop), uint32_t(CMD_STOP));
  EXPECT_EQ(uint32_t(Command::kSetDataFd), uint32_t(CMD_SET_DATAFD));
  EXPECT_EQ(uint32_t(Command::kSetBufferSize), uint32_t(CMD_SET_BUFFERSIZE));
  EXPECT_EQ(uint32_t(Command::kGetInfo), uint32_t(CMD_GET_INFO));
  EXPECT_EQ(kCapInit, uint32_t(PTM_CAP_INIT));
  EXPECT_EQ(kCapHashing, uint32_t(PTM_CAP_HASHING));
  EXPECT_EQ(kCapSetDataFd, uint32_t(PTM_CAP_SET_DATAFD));
  EXPECT_EQ(kCapGetInfo, uint32_t(PTM_CAP_GET_INFO));
  EXPECT_EQ(kCapSendCommandHeader, uint32_t(PTM_CAP_SEND_COMMAND_HEADER));
  EXPECT_EQ(kInitFlagDeleteVolatile, uint32_t(PTM_INIT_FLAG_DELETE_VOLATILE));
  EXPECT_EQ(uint32_t(BlobType::kSaveState), uint32_t(PTM_BLOB_TYPE_SAVESTATE));
  EXPECT_EQ(kStateFlagEncrypted, uint32_t(PTM_STATE_FLAG_ENCRYPTED));
  EXPECT_EQ(kConfigFlagMigrationKey, uint32_t(PTM_CONFIG_FLAG_MIGRATION_KEY));
  EXPECT_EQ(kMaxHashData,
            FieldSize<ptm_hdata>([](const ptm_hdata& s) -> const auto& { return s.u.req.data; }));
}

TEST(SwtpmProtocol, RequestSizesMatchSwtpmStructs) {
  // The body of each request is its ptm_* request struct (packed by layout).
  EXPECT_EQ(
      EncodeRequest(Req(Command::kInit)).size(),
      kCodeSize + FieldSize<ptm_init>([](const ptm_init& s) -> const auto& { return s.u.req; }));
  EXPECT_EQ(
      EncodeRequest(Req(Command::kSetLocality)).size(),
      kCodeSize + FieldSize<ptm_loc>([](const ptm_loc& s) -> const auto& { return s.u.req; }));
  EXPECT_EQ(EncodeRequest(Req(Command::kGetStateBlob)).size(),
            kCodeSize + FieldSize<ptm_getstate>(
                            [](const ptm_getstate& s) -> const auto& { return s.u.req; }));
  EXPECT_EQ(EncodeRequest(Req(Command::kSetStateBlob)).size(),
            kCodeSize + offsetof(ptm_setstate, u.req.data));
  EXPECT_EQ(EncodeRequest(Req(Command::kSetBufferSize)).size(),
            kCodeSize + FieldSize<ptm_setbuffersize>(
                            [](const ptm_setbuffersize& s) -> const auto& { return s.u.req; }));
  EXPECT_EQ(EncodeRequest(Req(Command::kGetInfo)).size(),
            kCodeSize + FieldSize<ptm_getinfo>(
                            [](const ptm_getinfo& s) -> const auto& { return s.u.req; }));
  // Answers: their ptm_* response structs.
  EXPECT_EQ(EncodeEstablished(0, true).size(),
            FieldSize<ptm_est>([](const ptm_est& s) -> const auto& { return s.u.resp; }));
  EXPECT_EQ(
      EncodeConfig(0, 0).size(),
      FieldSize<ptm_getconfig>([](const ptm_getconfig& s) -> const auto& { return s.u.resp; }));
  EXPECT_EQ(EncodeBufferSize(0, {}).size(), FieldSize<ptm_setbuffersize>([
            ](const ptm_setbuffersize& s) -> const auto& { return s.u.resp; }));
  EXPECT_EQ(EncodeStateBlob(0, 0, {}).size(), offsetof(ptm_getstate, u.resp.data));
  EXPECT_EQ(EncodeCapability(0).size(), sizeof(ptm_cap));
}

TEST(SwtpmProtocol, EveryRequestRoundTrips) {
  for (uint32_t code = 1; code <= 0x13; ++code) {
    Request r = Req(Command(code));
    r.init_flags = code == uint32_t(Command::kInit) ? kInitFlagDeleteVolatile : 0;
    r.locality = 3;
    r.state_flags = kStateFlagEncrypted;
    r.blob_type = BlobType::kVolatile;
    r.offset = 7;
    r.buffer_size = 3000;
    r.info_flags = 0x0000000100000002ull;
    r.retries = 9;
    if (code == uint32_t(Command::kHashData) || code == uint32_t(Command::kSetStateBlob)) {
      r.data = {1, 2, 3, 4, 5};
    }
    std::vector<uint8_t> wire = EncodeRequest(r);
    Decoded d = DecodeRequest(wire);
    ASSERT_EQ(d.status, Decoded::kRequest) << CommandName(code) << ": " << d.error;
    EXPECT_EQ(d.size, wire.size()) << CommandName(code);
    EXPECT_EQ(d.request.command, r.command);
    EXPECT_EQ(EncodeRequest(d.request), wire) << CommandName(code);
    // Every proper prefix needs more, and says how much at least.
    for (size_t n = 0; n < wire.size(); ++n) {
      Decoded p = DecodeRequest(std::span(wire).first(n));
      ASSERT_EQ(p.status, Decoded::kNeedMore) << CommandName(code) << " prefix " << n;
      EXPECT_GT(p.size, n);
      EXPECT_LE(p.size, wire.size());
    }
  }
}

TEST(SwtpmProtocol, PipelinedRequestsDecodeOneAtATime) {
  std::vector<uint8_t> wire = EncodeRequest(Req(Command::kGetCapability));
  Request loc = Req(Command::kSetLocality);
  loc.locality = 2;
  std::vector<uint8_t> second = EncodeRequest(loc);
  wire.insert(wire.end(), second.begin(), second.end());
  Decoded d = DecodeRequest(wire);
  ASSERT_EQ(d.status, Decoded::kRequest);
  EXPECT_EQ(d.size, 4u);
  d = DecodeRequest(std::span(wire).subspan(4));
  ASSERT_EQ(d.status, Decoded::kRequest);
  EXPECT_EQ(d.request.locality, 2);
}

TEST(SwtpmProtocol, UnknownCommandsAreErrors) {
  for (uint32_t code : {0u, 0x14u, 0x100u, 0xffffffffu}) {
    Decoded d = DecodeRequest(Bytes({code, 0, 0}));
    EXPECT_EQ(d.status, Decoded::kError) << code;
    EXPECT_NE(d.error.find("unknown control command"), std::string::npos) << d.error;
  }
}

TEST(SwtpmProtocol, OversizedPayloadsAreErrorsBeforeTheyArrive) {
  Decoded d = DecodeRequest(Bytes({uint32_t(Command::kHashData), kMaxHashData + 1}));
  EXPECT_EQ(d.status, Decoded::kError);
  d = DecodeRequest(Bytes({uint32_t(Command::kHashData), kMaxHashData}));
  EXPECT_EQ(d.status, Decoded::kNeedMore);
  EXPECT_EQ(d.size, 8u + kMaxHashData);

  d = DecodeRequest(Bytes({uint32_t(Command::kSetStateBlob), 0, 1, kMaxStateBlob + 1}));
  EXPECT_EQ(d.status, Decoded::kError);
  d = DecodeRequest(Bytes({uint32_t(Command::kSetStateBlob), 0, 1, 0xffffffffu}));
  EXPECT_EQ(d.status, Decoded::kError);
  DecodeLimits small;
  small.max_state_blob = 100;
  d = DecodeRequest(Bytes({uint32_t(Command::kSetStateBlob), 0, 1, 101}), small);
  EXPECT_EQ(d.status, Decoded::kError);
  EXPECT_NE(d.error.find("at most 100"), std::string::npos) << d.error;
}

TEST(SwtpmProtocol, BadFieldValuesAreErrors) {
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kInit), 2})).status, Decoded::kError);
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kInit), 1})).status, Decoded::kRequest);
  // Blob types 1..3 only; state flags DECRYPTED|ENCRYPTED only.
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kGetStateBlob), 0, 0, 0})).status,
            Decoded::kError);
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kGetStateBlob), 0, 4, 0})).status,
            Decoded::kError);
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kGetStateBlob), 4, 1, 0})).status,
            Decoded::kError);
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kGetStateBlob), 3, 3, 0})).status,
            Decoded::kRequest);
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kSetStateBlob), 0, 9, 0})).status,
            Decoded::kError);
  EXPECT_EQ(DecodeRequest(Bytes({uint32_t(Command::kGetInfo), 0, 1, 0, 1})).status,
            Decoded::kError);
  // A locality above 4 is the protocol's to answer (TPM_BAD_LOCALITY), not a framing error.
  std::vector<uint8_t> loc = Bytes({uint32_t(Command::kSetLocality)});
  loc.push_back(7);
  Decoded d = DecodeRequest(loc);
  ASSERT_EQ(d.status, Decoded::kRequest);
  EXPECT_EQ(d.request.locality, 7);
}

TEST(SwtpmProtocol, GarbageNeverOverreads) {
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> b(rng() % 40);
    for (auto& x : b) x = uint8_t(rng());
    if (b.size() >= 4 && i % 2) b[0] = b[1] = b[2] = 0, b[3] = uint8_t(rng() % 0x16);
    Decoded d = DecodeRequest(b);
    if (d.status == Decoded::kRequest) {
      EXPECT_LE(d.size, b.size());
      EXPECT_GE(d.size, 4u);
    } else if (d.status == Decoded::kError) {
      EXPECT_FALSE(d.error.empty());
    } else {
      EXPECT_GT(d.size, b.size());
    }
    Decoded t = FrameTpmCommand(b, 4096);
    if (t.status == Decoded::kRequest) {
      EXPECT_LE(t.size, b.size());
    }
  }
}

TEST(SwtpmProtocol, TpmCommandFraming) {
  std::vector<uint8_t> cmd = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0};
  EXPECT_EQ(FrameTpmCommand(std::span(cmd).first(9), 4096).status, Decoded::kNeedMore);
  Decoded d = FrameTpmCommand(std::span(cmd).first(11), 4096);
  EXPECT_EQ(d.status, Decoded::kNeedMore);
  EXPECT_EQ(d.size, 12u);
  d = FrameTpmCommand(cmd, 4096);
  ASSERT_EQ(d.status, Decoded::kRequest);
  EXPECT_EQ(d.size, 12u);
  cmd[5] = 9;  // below the header
  EXPECT_EQ(FrameTpmCommand(cmd, 4096).status, Decoded::kError);
  // Longer than the buffer: a front end (QEMU's CRB) sends it truncated to the buffer size;
  // exactly that many bytes are one command, which the TPM answers TPM_RC_COMMAND_SIZE.
  cmd[4] = 0x10, cmd[5] = 0x01;  // 4097
  EXPECT_EQ(FrameTpmCommand(cmd, 4096).status, Decoded::kNeedMore);
  std::vector<uint8_t> truncated(4096 + 7, 0);  // the truncated command, then the next bytes
  std::copy(cmd.begin(), cmd.begin() + 10, truncated.begin());
  d = FrameTpmCommand(truncated, 4096);
  ASSERT_EQ(d.status, Decoded::kRequest);
  EXPECT_EQ(d.size, 4096u);
  cmd[4] = 0x0b, cmd[5] = 0xb9;  // 3001 > a negotiated 3000
  truncated.resize(3000);
  std::copy(cmd.begin(), cmd.begin() + 10, truncated.begin());
  d = FrameTpmCommand(truncated, 3000);
  ASSERT_EQ(d.status, Decoded::kRequest);
  EXPECT_EQ(d.size, 3000u);
}

TEST(SwtpmProtocol, ResponsesHaveSwtpmLayouts) {
  EXPECT_EQ(EncodeResult(kResBadOrdinal), (std::vector<uint8_t>{0, 0, 0, 0x0a}));
  // QEMU reads GET_CAPABILITY as one big-endian u64.
  EXPECT_EQ(EncodeCapability(0x1234), (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0x12, 0x34}));
  EXPECT_EQ(EncodeEstablished(0, true), (std::vector<uint8_t>{0, 0, 0, 0, 1, 0, 0, 0}));
  std::vector<uint8_t> blob = {9, 8, 7};
  EXPECT_EQ(EncodeStateBlob(0, 2, blob),
            (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3, 9, 8, 7}));
  // An error carries the header alone.
  EXPECT_EQ(EncodeStateBlob(kResFail, 2, blob).size(), 16u);
}

TEST(SwtpmProtocol, ResponseFramingFollowsTheResult) {
  auto total = [](Command c, std::vector<uint8_t> b) { return FrameResponse(c, b).total; };
  EXPECT_EQ(total(Command::kInit, Bytes({0})), 4u);
  EXPECT_EQ(total(Command::kGetCapability, Bytes({0})), 8u);
  EXPECT_EQ(total(Command::kGetTpmEstablished, Bytes({0})), 8u);
  EXPECT_EQ(total(Command::kGetTpmEstablished, Bytes({kResBadOrdinal})), 4u);
  EXPECT_EQ(total(Command::kSetBufferSize, Bytes({0})), 16u);
  EXPECT_EQ(total(Command::kGetStateBlob, Bytes({0})), std::nullopt);
  EXPECT_EQ(total(Command::kGetStateBlob, Bytes({0, 2, 5, 5})), 21u);
  EXPECT_EQ(total(Command::kGetStateBlob, Bytes({kResFail, 0, 5, 5})), 16u);
  ResponseFrame f = FrameResponse(Command::kGetStateBlob, Bytes({0, 2, 0, kMaxStateBlob + 1}));
  EXPECT_FALSE(f.error.empty());
  EXPECT_FALSE(f.total);
}

}  // namespace
}  // namespace vmm::vtpm::swtpm
