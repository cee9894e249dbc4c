// The TCTI over the vTPM data channel, against libtpms in a forked child (ForkEnginePeer)
// and against scripted peers that misbehave. The test process never initialises libtpms.
#include "vtpm/tcti/fd_tcti.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <vector>

#include "vtpm/tcti/esys_context.h"
#include "vtpm/tcti/tpm_peer_fake.h"

namespace vmm::vtpm {
namespace {

using std::chrono::milliseconds;

// TPM2_GetRandom(16), Part 3 §16.1.
const std::vector<uint8_t> kGetRandom16 = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16};

ForkedPeer EnginePeer() {
  auto peer = ForkEnginePeer();
  EXPECT_TRUE(peer) << peer.error().ToString();
  return std::move(peer).value();
}

// A peer that reads one command and answers with `reply`, then waits for EOF
// (`then_close`: closes at once instead).
ForkedPeer ScriptedPeer(std::vector<uint8_t> reply, bool then_close) {
  auto peer = ForkedPeer::Start([reply, then_close](UniqueFd fd) {
    if (PeerReadCommand(fd.get()).empty()) return 1;
    if (!reply.empty() && !PeerWriteAll(fd.get(), reply.data(), reply.size())) return 2;
    if (then_close) return 0;
    uint8_t b;
    while (read(fd.get(), &b, 1) > 0) {
    }
    return 0;
  });
  EXPECT_TRUE(peer) << peer.error().ToString();
  return std::move(peer).value();
}

TSS2_RC EsysGetRandom(ESYS_CONTEXT* esys, std::vector<uint8_t>* out) {
  TPM2B_DIGEST* random = nullptr;
  TSS2_RC rc = Esys_GetRandom(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 16, &random);
  if (rc == TSS2_RC_SUCCESS && out != nullptr) {
    out->assign(random->buffer, random->buffer + random->size);
  }
  Esys_Free(random);
  return rc;
}

TEST(FdTcti, EsysGetRandomThroughTheEngine) {
  ForkedPeer peer = EnginePeer();
  auto esys = OpenEsys(peer.TakeFd());
  ASSERT_TRUE(esys) << esys.error().ToString();
  std::vector<uint8_t> a, b;
  ASSERT_EQ(EsysGetRandom(esys->get(), &a), TSS2_RC_SUCCESS);
  ASSERT_EQ(EsysGetRandom(esys->get(), &b), TSS2_RC_SUCCESS);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, b);
}

TEST(FdTcti, SizeQueryThenShortBufferThenWholeResponse) {
  ForkedPeer peer = EnginePeer();
  auto tcti = TctiOverFd(peer.TakeFd());
  ASSERT_TRUE(tcti) << tcti.error().ToString();
  TSS2_TCTI_CONTEXT* t = tcti->get();
  ASSERT_EQ(Tss2_Tcti_Transmit(t, kGetRandom16.size(), kGetRandom16.data()), TSS2_RC_SUCCESS);
  size_t size = 0;
  ASSERT_EQ(Tss2_Tcti_Receive(t, &size, nullptr, TSS2_TCTI_TIMEOUT_BLOCK), TSS2_RC_SUCCESS);
  EXPECT_EQ(size, 10u + 2 + 16);
  std::vector<uint8_t> rsp(64);
  size_t small = 11;
  EXPECT_EQ(Tss2_Tcti_Receive(t, &small, rsp.data(), TSS2_TCTI_TIMEOUT_BLOCK),
            TSS2_TCTI_RC_INSUFFICIENT_BUFFER);
  EXPECT_EQ(small, size);
  size_t got = rsp.size();
  ASSERT_EQ(Tss2_Tcti_Receive(t, &got, rsp.data(), TSS2_TCTI_TIMEOUT_BLOCK), TSS2_RC_SUCCESS);
  EXPECT_EQ(got, size);
  EXPECT_EQ(TpmResponseCode(std::span(rsp).first(got)), kTpmRcSuccess);
  // One response per command: nothing more to receive.
  EXPECT_EQ(Tss2_Tcti_Receive(t, &got, rsp.data(), 0), TSS2_TCTI_RC_BAD_SEQUENCE);
}

TEST(FdTcti, RefusesMalformedCommandsAndOutOfOrderCalls) {
  ForkedPeer peer = EnginePeer();
  auto tcti = TctiOverFd(peer.TakeFd());
  ASSERT_TRUE(tcti);
  TSS2_TCTI_CONTEXT* t = tcti->get();
  size_t size = 64;
  std::vector<uint8_t> rsp(size);
  EXPECT_EQ(Tss2_Tcti_Receive(t, &size, rsp.data(), 0), TSS2_TCTI_RC_BAD_SEQUENCE);
  std::vector<uint8_t> lying = kGetRandom16;
  lying[5] = 40;  // header size != length
  EXPECT_EQ(Tss2_Tcti_Transmit(t, lying.size(), lying.data()), TSS2_TCTI_RC_BAD_VALUE);
  EXPECT_EQ(Tss2_Tcti_Transmit(t, 5, kGetRandom16.data()), TSS2_TCTI_RC_BAD_VALUE);
  std::vector<uint8_t> huge(kMaxTpmCommandSize + 1);
  EXPECT_EQ(Tss2_Tcti_Transmit(t, huge.size(), huge.data()), TSS2_TCTI_RC_BAD_VALUE);
  EXPECT_EQ(Tss2_Tcti_Transmit(t, kGetRandom16.size(), nullptr), TSS2_TCTI_RC_BAD_REFERENCE);
  ASSERT_EQ(Tss2_Tcti_Transmit(t, kGetRandom16.size(), kGetRandom16.data()), TSS2_RC_SUCCESS);
  EXPECT_EQ(Tss2_Tcti_Transmit(t, kGetRandom16.size(), kGetRandom16.data()),
            TSS2_TCTI_RC_BAD_SEQUENCE);
}

TEST(FdTcti, OversizedResponseIsMalformedAndBreaksTheContext) {
  std::vector<uint8_t> reply = {0x80, 0x01, 0, 0, 0x13, 0x88, 0, 0, 0, 0};  // size 5000
  reply.resize(200, 0xaa);
  ForkedPeer peer = ScriptedPeer(reply, false);
  auto esys = OpenEsys(peer.TakeFd());
  ASSERT_TRUE(esys);
  EXPECT_EQ(EsysGetRandom(esys->get(), nullptr), TSS2_TCTI_RC_MALFORMED_RESPONSE);
  // The stream is out of step: the TCTI refuses to go on (ESYS, for its part, answers
  // TSS2_ESYS_RC_BAD_SEQUENCE after a failed command).
  EXPECT_NE(EsysGetRandom(esys->get(), nullptr), TSS2_RC_SUCCESS);
  EXPECT_EQ(Tss2_Tcti_Transmit(esys->tcti(), kGetRandom16.size(), kGetRandom16.data()),
            TSS2_TCTI_RC_IO_ERROR);
}

TEST(FdTcti, BadTagOrTinySizeIsMalformed) {
  for (std::vector<uint8_t> reply : {std::vector<uint8_t>{0x12, 0x34, 0, 0, 0, 10, 0, 0, 0, 0},
                                     std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 9, 0, 0, 0, 0}}) {
    ForkedPeer peer = ScriptedPeer(reply, false);
    auto tcti = TctiOverFd(peer.TakeFd());
    ASSERT_TRUE(tcti);
    ASSERT_EQ(Tss2_Tcti_Transmit(tcti->get(), kGetRandom16.size(), kGetRandom16.data()),
              TSS2_RC_SUCCESS);
    size_t size = 0;
    EXPECT_EQ(Tss2_Tcti_Receive(tcti->get(), &size, nullptr, 1000),
              TSS2_TCTI_RC_MALFORMED_RESPONSE);
  }
}

TEST(FdTcti, TruncatedResponseThenCloseIsAnIoError) {
  ForkedPeer peer = ScriptedPeer({0x80, 0x01, 0, 0, 0, 28, 0, 0, 0, 0, 0, 16, 1, 2}, true);
  auto esys = OpenEsys(peer.TakeFd());
  ASSERT_TRUE(esys);
  EXPECT_EQ(EsysGetRandom(esys->get(), nullptr), TSS2_TCTI_RC_IO_ERROR);
}

TEST(FdTcti, PeerThatClosesMidExchangeIsAnIoError) {
  ForkedPeer peer = ScriptedPeer({}, true);
  auto esys = OpenEsys(peer.TakeFd());
  ASSERT_TRUE(esys);
  EXPECT_EQ(EsysGetRandom(esys->get(), nullptr), TSS2_TCTI_RC_IO_ERROR);
  EXPECT_EQ(Tss2_Tcti_Transmit(esys->tcti(), kGetRandom16.size(), kGetRandom16.data()),
            TSS2_TCTI_RC_IO_ERROR);  // stays broken
}

TEST(FdTcti, TransmitToAClosedPeerIsAnIoErrorNotSigpipe) {
  auto gone = ForkedPeer::Start([](UniqueFd) { return 0; });
  ASSERT_TRUE(gone);
  UniqueFd fd = gone->TakeFd();
  gone->Wait();  // the child and its end are gone
  auto tcti = TctiOverFd(std::move(fd));
  ASSERT_TRUE(tcti);
  EXPECT_EQ(Tss2_Tcti_Transmit(tcti->get(), kGetRandom16.size(), kGetRandom16.data()),
            TSS2_TCTI_RC_IO_ERROR);
}

TEST(FdTcti, StalledPeerGivesTryAgainThenTheBlockBoundFails) {
  // Half a header, then silence while keeping the connection open.
  ForkedPeer peer = ScriptedPeer({0x80, 0x01, 0, 0}, false);
  auto tcti = TctiOverFd(peer.TakeFd(), TctiOptions{.max_block = milliseconds(300)});
  ASSERT_TRUE(tcti);
  TSS2_TCTI_CONTEXT* t = tcti->get();
  ASSERT_EQ(Tss2_Tcti_Transmit(t, kGetRandom16.size(), kGetRandom16.data()), TSS2_RC_SUCCESS);
  size_t size = 0;
  EXPECT_EQ(Tss2_Tcti_Receive(t, &size, nullptr, 50), TSS2_TCTI_RC_TRY_AGAIN);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Tss2_Tcti_Receive(t, &size, nullptr, TSS2_TCTI_TIMEOUT_BLOCK), TSS2_TCTI_RC_IO_ERROR);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(5000));
}

TEST(FdTcti, ControlChannelCallbacksAreNotImplemented) {
  ForkedPeer peer = EnginePeer();
  UniqueFd fd = peer.TakeFd();
  int raw_fd = fd.get();
  auto tcti = TctiOverFd(std::move(fd));
  ASSERT_TRUE(tcti);
  TSS2_TCTI_CONTEXT* t = tcti->get();
  EXPECT_EQ(Tss2_Tcti_Cancel(t), TSS2_TCTI_RC_NOT_IMPLEMENTED);
  EXPECT_EQ(Tss2_Tcti_SetLocality(t, 3), TSS2_TCTI_RC_NOT_IMPLEMENTED);
  TPM2_HANDLE h = 0x80000000;
  EXPECT_EQ(Tss2_Tcti_MakeSticky(t, &h, 1), TSS2_TCTI_RC_NOT_IMPLEMENTED);
  size_t n = 0;
  ASSERT_EQ(Tss2_Tcti_GetPollHandles(t, nullptr, &n), TSS2_RC_SUCCESS);
  ASSERT_EQ(n, 1u);
  TSS2_TCTI_POLL_HANDLE handle{};
  ASSERT_EQ(Tss2_Tcti_GetPollHandles(t, &handle, &n), TSS2_RC_SUCCESS);
  EXPECT_EQ(handle.fd, raw_fd);
  EXPECT_EQ(handle.events, POLLIN);
}

TEST(FdTcti, InvalidFdIsAnError) {
  auto tcti = TctiOverFd(UniqueFd());
  ASSERT_FALSE(tcti);
  EXPECT_EQ(tcti.error().kind(), ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace vmm::vtpm
