// The CRB command path, PTP §6.5.3.4-6.5.3.6: cmdReady/goIdle around START, the command
// copied out of the shared page and size-checked, the backend's answer, cancel, reset, fatal.
#include <cstring>
#include <thread>
#include <vector>

#include "tests/unit/vtpm/crb_device_fixture.h"

namespace vtpm_test {
namespace {

TEST_F(CrbDevice, StartSubmitsTheCommandAndClearsWhenTheResponseArrives) {
  page_[100] = 0x77;  // stale bytes past the response must not survive
  StartCommand(12);
  ASSERT_EQ(backend_.commands.size(), 1u);
  EXPECT_EQ(backend_.commands[0], Command(12));
  EXPECT_EQ(R32(kCrbCtrlStart), kCrbStart);
  EXPECT_TRUE(crb_->command_outstanding());
  backend_.response = Command(16);
  backend_.response[9] = 0;
  EXPECT_TRUE(backend_.Answer());
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_FALSE(crb_->command_outstanding());
  EXPECT_TRUE(std::equal(backend_.response.begin(), backend_.response.end(), page_.begin()));
  EXPECT_EQ(page_[100], 0);
  EXPECT_EQ(R32(kCrbCtrlSts), 0u);  // still Ready: another command may follow
  Put(Command(10));
  W32(kCrbCtrlStart, kCrbStart);
  EXPECT_EQ(backend_.commands.size(), 2u);
  EXPECT_EQ(crb_->commands_submitted(), 2u);
}

TEST_F(CrbDevice, CommandIsCopiedOutOfTheSharedPageAtStart) {
  backend_.answer_in_submit = false;
  StartCommand(12);
  std::memset(page_.data(), 0xEE, 12);  // the guest rewrites the page while the TPM runs
  EXPECT_EQ(backend_.commands[0], Command(12));
}

TEST_F(CrbDevice, SecondStartWhileBusyIsIgnored) {
  StartCommand(12);
  Put(Command(20));
  W32(kCrbCtrlStart, kCrbStart);
  EXPECT_EQ(backend_.commands.size(), 1u);
  EXPECT_TRUE(backend_.Answer());
  EXPECT_FALSE(backend_.Answer());  // one answer per command
}

TEST_F(CrbDevice, BackendMayAnswerFromInsideSubmit) {
  backend_.answer_in_submit = true;
  StartCommand(12);
  EXPECT_EQ(backend_.commands.size(), 1u);
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_EQ(Rc(page_), 0u);
}

TEST_F(CrbDevice, ResponseMayComeFromAnotherThread) {
  StartCommand(12);
  std::thread([&] { EXPECT_TRUE(backend_.Answer()); }).join();
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
}

TEST_F(CrbDevice, CommandSizeBelowTheHeaderIsAnsweredWithoutTheBackend) {
  StartCommand(9);
  EXPECT_TRUE(backend_.commands.empty());
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_EQ(Rc(page_), kTpmRcCommandSize);
  EXPECT_EQ(page_[5], 10);
  EXPECT_EQ(crb_->commands_refused(), 1u);
}

TEST_F(CrbDevice, CommandSizeAboveTheBufferIsAnsweredWithoutTheBackend) {
  Ready();
  Put(Command(0x1001, 12));
  W32(kCrbCtrlStart, kCrbStart);
  EXPECT_TRUE(backend_.commands.empty());
  EXPECT_EQ(Rc(page_), kTpmRcCommandSize);
  Put(Command(0xFFFFFFFF, 12));
  W32(kCrbCtrlStart, kCrbStart);
  EXPECT_TRUE(backend_.commands.empty());
  Put(Command(0x1000));  // exactly the buffer: fine
  W32(kCrbCtrlStart, kCrbStart);
  EXPECT_EQ(backend_.commands.size(), 1u);
}

TEST_F(CrbDevice, MalformedResponsesBecomeTpmRcFailure) {
  for (std::vector<uint8_t> bad :
       {std::vector<uint8_t>(0x1001, 0), Command(10, 9), Command(12, 10), Command(10, 12)}) {
    StartCommand(12);
    backend_.response = bad;
    EXPECT_TRUE(backend_.Answer());
    EXPECT_EQ(R32(kCrbCtrlStart), 0u);
    EXPECT_EQ(Rc(page_), kTpmRcFailure);
    EXPECT_EQ(page_[5], 10);
  }
}

TEST_F(CrbDevice, CompleteWithoutACommandIsRefused) {
  EXPECT_FALSE(backend_.Answer());
  EXPECT_EQ(page_[0], 0);
}

TEST_F(CrbDevice, CancelWhileBusyReachesTheBackendOnce) {
  StartCommand(12);
  W32(kCrbCtrlCancel, kCrbCancel);
  W32(kCrbCtrlCancel, kCrbCancel);
  EXPECT_EQ(backend_.cancels, 1);
  EXPECT_EQ(R32(kCrbCtrlCancel), kCrbCancel);
  EXPECT_EQ(R32(kCrbCtrlStart), kCrbStart);  // still answered by the backend
  EXPECT_TRUE(backend_.Answer());
  W32(kCrbCtrlCancel, 0);
  EXPECT_EQ(R32(kCrbCtrlCancel), 0u);
  W32(kCrbCtrlCancel, kCrbCancel);  // nothing runs
  EXPECT_EQ(backend_.cancels, 1);
}

TEST_F(CrbDevice, GoIdleWhileBusyTakesEffectWhenTheResponseArrives) {
  StartCommand(12);
  W32(kCrbCtrlReq, kCrbCtrlReqGoIdle);
  EXPECT_EQ(R32(kCrbCtrlReq), kCrbCtrlReqGoIdle);
  EXPECT_EQ(R32(kCrbCtrlSts), 0u);
  EXPECT_TRUE(backend_.Answer());
  EXPECT_EQ(R32(kCrbCtrlReq), 0u);
  EXPECT_EQ(R32(kCrbCtrlSts), kCrbCtrlStsIdle);
}

TEST_F(CrbDevice, ResetAbandonsARunningCommand) {
  StartCommand(12);
  crb_->Reset();
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_EQ(R32(kCrbCtrlSts), kCrbCtrlStsIdle);
  EXPECT_FALSE(crb_->locality_assigned());
  EXPECT_TRUE(crb_->command_outstanding());
  page_[0] = 0x42;
  EXPECT_FALSE(backend_.Answer());  // dropped: nobody waits for it
  EXPECT_EQ(page_[0], 0x42);
  EXPECT_FALSE(crb_->command_outstanding());
}

TEST_F(CrbDevice, StartAfterResetWaitsForTheAbandonedCommand) {
  StartCommand(12);
  crb_->Reset();
  StartCommand(14);
  EXPECT_EQ(R32(kCrbCtrlStart), kCrbStart);
  EXPECT_EQ(backend_.commands.size(), 1u);
  EXPECT_FALSE(backend_.Answer());           // the old command's answer
  EXPECT_EQ(R32(kCrbCtrlStart), kCrbStart);  // this read sends the held command
  ASSERT_EQ(backend_.commands.size(), 2u);
  EXPECT_EQ(backend_.commands[1], Command(14));
  EXPECT_TRUE(backend_.Answer());
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
}

TEST_F(CrbDevice, FatalAnswersTheRunningCommandAndRefusesStart) {
  StartCommand(12);
  crb_->SetFatal();
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_EQ(R32(kCrbCtrlSts) & kCrbCtrlStsFatal, kCrbCtrlStsFatal);
  EXPECT_EQ(Rc(page_), kTpmRcFailure);
  EXPECT_FALSE(backend_.Answer());
  Put(Command(12));
  W32(kCrbCtrlStart, kCrbStart);
  EXPECT_EQ(R32(kCrbCtrlStart), 0u);
  EXPECT_EQ(backend_.commands.size(), 1u);
  crb_->Reset();
  EXPECT_EQ(R32(kCrbCtrlSts), kCrbCtrlStsIdle);
  StartCommand(12);
  EXPECT_EQ(backend_.commands.size(), 2u);
}

}  // namespace
}  // namespace vtpm_test
