// The CRB register file against TCG PC Client PTP §6.5.3.2 "CRB Register Space": identity
// and buffer registers, access widths, the locality handshake and the other localities.
#include <cstring>
#include <vector>

#include "tests/unit/vtpm/crb_device_fixture.h"

namespace vtpm_test {
namespace {

TEST_F(CrbDevice, CreateRejectsBadBuffers) {
  FakeCrbBackend backend;
  std::vector<uint8_t> page(0x1000), tiny(9);
  EXPECT_FALSE(vtpm::CrbDevice::Create(kGpa, tiny, backend).has_value());
  EXPECT_FALSE(vtpm::CrbDevice::Create(kGpa + 8, page, backend).has_value());
  EXPECT_FALSE(vtpm::CrbDevice::Create(kCrbBaseGpa + 0x1000, page, backend).has_value());
  const std::span<uint8_t> into_window = std::span(page).first(0x1001);
  EXPECT_FALSE(vtpm::CrbDevice::Create(kCrbBaseGpa - 0x1000, into_window, backend).has_value());
  EXPECT_FALSE(vtpm::CrbDevice::Create(~uint64_t{0xFFF}, page, backend).has_value());
  EXPECT_TRUE(vtpm::CrbDevice::Create(kCrbBaseGpa - 0x1000, page, backend).has_value());
}

TEST_F(CrbDevice, ResetStateIsIdleWithoutLocality) {
  EXPECT_EQ(R32(kCrbLocState), kCrbLocStateRegValid | kCrbLocStateEstablished);
  EXPECT_EQ(R32(kCrbLocSts), 0u);
  EXPECT_EQ(R32(kCrbCtrlReq), 0u);
  EXPECT_EQ(R32(kCrbCtrlSts), kCrbCtrlStsIdle);
  EXPECT_EQ(R32(kCrbCtrlCancel), 0u);
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_TRUE(crb_->idle());
  EXPECT_FALSE(crb_->locality_assigned());
  EXPECT_EQ(crb_->guest_errors(), 0u);
}

TEST_F(CrbDevice, InterfaceIdDescribesACrbWithLocalityZeroOnly) {
  const uint32_t id = R32(kCrbIntfId);
  EXPECT_EQ(id & 0xF, 1u);         // InterfaceType: CRB
  EXPECT_EQ((id >> 4) & 0xF, 1u);  // InterfaceVersion: CRB
  EXPECT_EQ((id >> 8) & 1, 0u);    // CapLocality: locality 0 only
  EXPECT_EQ((id >> 9) & 1, 0u);    // CapCRBIdleBypass
  EXPECT_EQ((id >> 13) & 1, 0u);   // CapFIFO
  EXPECT_EQ((id >> 14) & 1, 1u);   // CapCRB
  EXPECT_EQ((id >> 17) & 3, 1u);   // InterfaceSelector: CRB
  EXPECT_EQ((id >> 19) & 1, 1u);   // IntfSelLock
  EXPECT_EQ(id >> 24, kCrbRid);
  EXPECT_EQ(R32(kCrbIntfId2), kCrbVendorId | (uint32_t{kCrbDeviceId} << 16));
  EXPECT_EQ(Read(kCrbIntfId, 8), id | (uint64_t{R32(kCrbIntfId2)} << 32));
  W32(kCrbIntfId, 0);  // the selector is locked
  Write(kCrbIntfId, 0, 8);
  EXPECT_EQ(R32(kCrbIntfId), id);
}

TEST_F(CrbDevice, BufferRegistersPointAtTheSharedPage) {
  EXPECT_EQ(R32(kCrbCtrlCmdSize), kCrbSuggestedBufferSize);
  EXPECT_EQ(R32(kCrbCtrlCmdLaddr), static_cast<uint32_t>(kGpa));
  EXPECT_EQ(R32(kCrbCtrlCmdHaddr), 0u);
  EXPECT_EQ(R32(kCrbCtrlRspSize), kCrbSuggestedBufferSize);
  EXPECT_EQ(Read(kCrbCtrlRspAddr, 8), kGpa);
  for (uint32_t reg :
       std::initializer_list<uint32_t>{kCrbCtrlCmdSize, kCrbCtrlCmdLaddr, kCrbCtrlCmdHaddr,
                                       kCrbCtrlRspSize, kCrbCtrlRspAddr, kCrbCtrlRspAddr + 4}) {
    W32(reg, 0x12345678);  // fixed by the VMM: read-only
  }
  Write(kCrbCtrlRspAddr, 0, 8);
  EXPECT_EQ(R32(kCrbCtrlCmdSize), kCrbSuggestedBufferSize);
  EXPECT_EQ(Read(kCrbCtrlRspAddr, 8), kGpa);
}

TEST_F(CrbDevice, BufferAbove4GiBUsesTheHighAddressRegisters) {
  FakeCrbBackend backend;
  std::vector<uint8_t> page(0x800);
  auto crb = vtpm::CrbDevice::Create(0x123456000ull, page, backend).value();
  uint8_t b[8];
  crb->Read(kCrbCtrlCmdHaddr, std::span(b, 4));
  EXPECT_EQ(b[0], 1);
  crb->Read(kCrbCtrlCmdLaddr, std::span(b, 4));
  EXPECT_EQ(b[3], 0x23);
  crb->Read(kCrbCtrlRspAddr, std::span(b, 8));
  uint64_t rsp;
  std::memcpy(&rsp, b, 8);
  EXPECT_EQ(rsp, 0x123456000ull);
  crb->Read(kCrbCtrlRspSize, std::span(b, 4));
  EXPECT_EQ(b[0] | (b[1] << 8), 0x800);
}

TEST_F(CrbDevice, ReservedAndInterruptRegistersReadZeroAndIgnoreWrites) {
  for (uint32_t reg : {0x04u, 0x10u, 0x2Cu, 0x38u, 0x3Cu, 0x50u, 0x54u, 0x70u, 0x7Cu}) {
    W32(reg, 0xFFFFFFFF);
    EXPECT_EQ(R32(reg), 0u) << reg;
  }
  EXPECT_EQ(R32(kCrbLocCtrl), 0u);  // write-only
  EXPECT_EQ(crb_->guest_errors(), 0u);
}

TEST_F(CrbDevice, DataBufferAreaOfTheRegisterPageIsUnused) {
  W32(0x80, 0xDEADBEEF);
  EXPECT_EQ(R32(0x80), 0u);
  EXPECT_EQ(Read(0xFF8, 8), 0u);
  EXPECT_EQ(page_[0], 0);
}

TEST_F(CrbDevice, LocalityZeroIsGrantedOnRequestAndReleasedOnRelinquish) {
  W32(kCrbLocCtrl, kCrbLocCtrlRequestAccess);
  const uint32_t state = R32(kCrbLocState);
  EXPECT_TRUE(state & kCrbLocStateAssigned);
  EXPECT_TRUE(state & kCrbLocStateRegValid);
  EXPECT_EQ((state >> 2) & 7, 0u);  // activeLocality
  EXPECT_EQ(R32(kCrbLocSts), kCrbLocStsGranted);
  W32(kCrbLocCtrl, kCrbLocCtrlRelinquish);
  EXPECT_FALSE(R32(kCrbLocState) & kCrbLocStateAssigned);
  EXPECT_EQ(R32(kCrbLocSts), 0u);
  W32(kCrbLocCtrl, kCrbLocCtrlRequestAccess | kCrbLocCtrlRelinquish);  // contradictory
  EXPECT_FALSE(crb_->locality_assigned());
  EXPECT_EQ(crb_->guest_errors(), 1u);
}

TEST_F(CrbDevice, SeizeAndResetEstablishmentAreIgnoredAtLocalityZero) {
  W32(kCrbLocCtrl, kCrbLocCtrlSeize | kCrbLocCtrlResetEstablishment);
  EXPECT_EQ(R32(kCrbLocState), kCrbLocStateRegValid | kCrbLocStateEstablished);
  EXPECT_EQ(R32(kCrbLocSts) & kCrbLocStsBeenSeized, 0u);
}

TEST_F(CrbDevice, ControlWritesWithoutLocalityAreIgnored) {
  W32(kCrbCtrlReq, kCrbCtrlReqCmdReady);
  EXPECT_EQ(R32(kCrbCtrlSts), kCrbCtrlStsIdle);
  Put(Command(12));
  W32(kCrbCtrlStart, kCrbStart);
  W32(kCrbCtrlCancel, kCrbCancel);
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_EQ(R32(kCrbCtrlCancel), 0u);
  EXPECT_TRUE(backend_.commands.empty());
}

TEST_F(CrbDevice, CmdReadyLeavesIdleAndGoIdleReturnsToIt) {
  W32(kCrbLocCtrl, kCrbLocCtrlRequestAccess);
  W32(kCrbCtrlReq, kCrbCtrlReqCmdReady);
  EXPECT_EQ(R32(kCrbCtrlReq), 0u);  // handled at once
  EXPECT_EQ(R32(kCrbCtrlSts), 0u);
  W32(kCrbCtrlReq, kCrbCtrlReqGoIdle);
  EXPECT_EQ(R32(kCrbCtrlReq), 0u);
  EXPECT_EQ(R32(kCrbCtrlSts), kCrbCtrlStsIdle);
  W32(kCrbCtrlReq, kCrbCtrlReqCmdReady | kCrbCtrlReqGoIdle);  // undefined: nothing
  EXPECT_EQ(R32(kCrbCtrlSts), kCrbCtrlStsIdle);
}

TEST_F(CrbDevice, StartWithoutCmdReadyIsIgnored) {
  W32(kCrbLocCtrl, kCrbLocCtrlRequestAccess);
  Put(Command(12));
  W32(kCrbCtrlStart, kCrbStart);
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_TRUE(backend_.commands.empty());
}

TEST_F(CrbDevice, ByteAndWordAccessesReachTheRightBits) {
  EXPECT_EQ(Read(kCrbLocState, 1), kCrbLocStateRegValid | kCrbLocStateEstablished);
  EXPECT_EQ(Read(kCrbIntfId + 2, 2), R32(kCrbIntfId) >> 16);
  EXPECT_EQ(Read(kCrbIntfId + 3, 1), kCrbRid);
  EXPECT_EQ(Read(kCrbIntfId2 + 2, 2), kCrbDeviceId);
  Write(kCrbLocCtrl, kCrbLocCtrlRequestAccess, 1);
  Write(kCrbCtrlReq, kCrbCtrlReqCmdReady, 2);
  Put(Command(12));
  Write(kCrbCtrlStart + 1, 1, 1);  // bit 8: reserved, not START
  EXPECT_TRUE(backend_.commands.empty());
  Write(kCrbCtrlStart, 1, 1);
  EXPECT_EQ(backend_.commands.size(), 1u);
  EXPECT_EQ(Read(kCrbCtrlStart, 1), 1u);
  EXPECT_EQ(Read(kCrbCtrlStart, 2), 1u);
  EXPECT_EQ(Read(kCrbCtrlCmdLaddr + 2, 2), (kGpa >> 16) & 0xFFFF);
  EXPECT_EQ(crb_->guest_errors(), 0u);
}

TEST_F(CrbDevice, MalformedAccessesReadAllOnesAndAreCounted) {
  EXPECT_EQ(Read(kCrbCtrlSts, 3), 0xFFFFFFu);
  EXPECT_EQ(Read(kCrbCtrlSts + 1, 4), 0xFFFFFFFFu);
  EXPECT_EQ(Read(kCrbCtrlSts, 8), 0xFFFFFFFFFFFFFFFFu);  // 0x44 is not 8-aligned
  EXPECT_EQ(Read(kCrbWindowSize, 4), 0xFFFFFFFFu);
  EXPECT_EQ(Read(kCrbWindowSize - 2, 4), 0xFFFFFFFFu);
  EXPECT_EQ(Read(~uint64_t{0}, 1), 0xFFu);
  W32(kCrbLocCtrl + 1, kCrbLocCtrlRequestAccess);
  Write(kCrbCtrlReq, kCrbCtrlReqCmdReady, 8);  // a qword over CTRL_REQ and CTRL_STS
  crb_->Write(kCrbLocCtrl, {});
  EXPECT_FALSE(crb_->locality_assigned());
  EXPECT_EQ(crb_->guest_errors(), 9u);
}

TEST_F(CrbDevice, OtherLocalitiesReadAllOnesAndIgnoreWrites) {
  for (uint32_t loc = 1; loc < kCrbLocalityCount; ++loc) {
    const uint64_t base = loc * kCrbLocalitySize;
    EXPECT_EQ(R32(base + kCrbLocState), 0xFFFFFFFFu) << loc;
    EXPECT_EQ(R32(base + kCrbIntfId), 0xFFFFFFFFu) << loc;
    W32(base + kCrbLocCtrl, kCrbLocCtrlRequestAccess);  // never granted
    W32(base + kCrbLocCtrl, kCrbLocCtrlSeize);
    EXPECT_EQ(R32(kCrbLocState) & kCrbLocStateAssigned, 0u) << loc;
  }
  Ready();
  W32(3 * kCrbLocalitySize + kCrbLocCtrl, kCrbLocCtrlRequestAccess | kCrbLocCtrlSeize);
  EXPECT_EQ(R32(kCrbLocSts), kCrbLocStsGranted);  // locality 0 is not seized
  Put(Command(12));
  W32(2 * kCrbLocalitySize + kCrbCtrlStart, kCrbStart);
  EXPECT_TRUE(backend_.commands.empty());
  EXPECT_EQ(crb_->guest_errors(), 0u);
}

}  // namespace
}  // namespace vtpm_test
