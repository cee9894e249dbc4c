// libtpms is process-global, so every test body that starts an engine runs in a forked
// child (InChild); the gtest process itself never initialises libtpms. A child reports
// failures through gtest as usual and its exit code.
#include "vtpm/engine/tpm_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>

#include "base/unique_fd.h"
#include "tests/unit/common/in_child.h"
#include "tests/unit/common/temp_dir.h"
#include "tests/unit/vtpm/tpm_test_commands.h"

namespace vmm::vtpm {
namespace {

using namespace tpmtest;

using testing_util::InChild;

std::unique_ptr<TpmEngine> StartedEngine(SealedStateStore* store = nullptr) {
  auto engine = TpmEngine::Create(store);
  if (!engine) {
    ADD_FAILURE() << engine.error().ToString();
    return nullptr;
  }
  auto started = (*engine)->Startup();
  if (!started) ADD_FAILURE() << started.error().ToString();
  return std::move(*engine);
}

std::vector<uint8_t> Exec(TpmEngine& tpm, std::span<const uint8_t> cmd) {
  auto rsp = tpm.Execute(cmd);
  if (!rsp) {
    ADD_FAILURE() << rsp.error().ToString();
    return {};
  }
  return std::move(*rsp);
}

using TempStateDir = testing_util::TempDir;

Key TestKey() {
  std::array<uint8_t, kKeySize> b;
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 7 + 1);
  return Key(b);
}

// Starts an engine on `store` (nullptr: volatile), then body(engine); for a child process.
template <typename Body>
void OnStartedEngine(SealedStateStore* store, Body& body) {
  auto tpm = StartedEngine(store);
  ASSERT_TRUE(tpm);
  body(*tpm);
}

// In a child process: starts a volatile engine, then body(engine).
template <typename Body>
void InChildOnEngine(Body body) {
  InChild([&] { OnStartedEngine(nullptr, body); });
}

// In a child process: starts an engine on the sealed store of `vm` in `dir`, then body(engine).
template <typename Body>
void InChildOnSealedStore(TempStateDir& dir, const VmId& vm, Body body) {
  InChild([&] {
    SealedStateStore store(dir.fd(), TestKey(), vm);
    OnStartedEngine(&store, body);
  });
}

TEST(TpmEngine, ErrorResponseIsAHeaderWithTheCode) {
  std::vector<uint8_t> r = TpmErrorResponse(kTpmRcCommandSize);
  EXPECT_EQ(r, (std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x42}));
  EXPECT_EQ(TpmResponseCode(r), kTpmRcCommandSize);
  EXPECT_EQ(TpmResponseCode(std::span(r).first(9)), std::nullopt);
}

TEST(TpmEngine, GetRandomReturnsRequestedBytes) {
  InChildOnEngine([](TpmEngine& tpm) {
    std::vector<uint8_t> rsp = Exec(tpm, GetRandom(16));
    ASSERT_EQ(Rc(rsp), kTpmRcSuccess);
    ASSERT_EQ(rsp.size(), 10u + 2 + 16);
    EXPECT_EQ(Be16(rsp, 10), 16);
    EXPECT_NE(std::vector<uint8_t>(rsp.begin() + 12, rsp.end()), std::vector<uint8_t>(16, 0));
  });
}

TEST(TpmEngine, CommandsBeforeStartupAreRefused) {
  InChild([] {
    auto tpm = TpmEngine::Create(nullptr);
    ASSERT_TRUE(tpm) << tpm.error().ToString();
    EXPECT_EQ(Rc(Exec(**tpm, GetRandom(16))), kTpmRcInitialize);
  });
}

TEST(TpmEngine, SecondStartupIsAnError) {
  InChildOnEngine([](TpmEngine& tpm) {
    auto again = tpm.Startup();
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message().find("TPM_RC_INITIALIZE"), std::string::npos);
  });
}

TEST(TpmEngine, OnlyOneEnginePerProcess) {
  InChild([] {
    auto first = TpmEngine::Create(nullptr);
    ASSERT_TRUE(first) << first.error().ToString();
    auto second = TpmEngine::Create(nullptr);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message().find("already exists"), std::string::npos);
    (*first).reset();
    auto third = TpmEngine::Create(nullptr);  // after the first is gone, one may exist again
    EXPECT_TRUE(third) << third.error().ToString();
  });
}

TEST(TpmEngine, Pcr0IsZeroAfterStartup) {
  InChildOnEngine([](TpmEngine& tpm) {
    std::vector<uint8_t> rsp = Exec(tpm, PcrRead(0));
    ASSERT_EQ(Rc(rsp), kTpmRcSuccess);
    EXPECT_EQ(PcrReadDigest(rsp), std::vector<uint8_t>(32, 0));
  });
}

TEST(TpmEngine, PcrExtendWithPasswordSession) {
  InChildOnEngine([](TpmEngine& tpm) {
    std::array<uint8_t, 32> digest;
    for (size_t i = 0; i < digest.size(); ++i) digest[i] = uint8_t(0xA0 + i);
    std::vector<uint8_t> rsp = Exec(tpm, PcrExtend(16, digest));
    ASSERT_EQ(Rc(rsp), kTpmRcSuccess);
    // Part 1 §17.2: PCR_new = H(PCR_old || digest).
    std::vector<uint8_t> expected(32, 0);
    expected.insert(expected.end(), digest.begin(), digest.end());
    EXPECT_EQ(PcrReadDigest(Exec(tpm, PcrRead(16))), Sha256(expected));
    // A platform reset (reboot) brings PCR 16 back to zeros.
    ASSERT_TRUE(tpm.Reset());
    ASSERT_TRUE(tpm.Startup());
    EXPECT_EQ(PcrReadDigest(Exec(tpm, PcrRead(16))), std::vector<uint8_t>(32, 0));
  });
}

TEST(TpmEngine, SizeChecksAnswerCommandSizeWithoutLibtpms) {
  InChildOnEngine([](TpmEngine& tpm) {
    std::vector<uint8_t> cmd = GetRandom(16);
    EXPECT_EQ(Exec(tpm, std::span(cmd).first(9)), TpmErrorResponse(kTpmRcCommandSize));
    EXPECT_EQ(Exec(tpm, std::span(cmd).first(11)), TpmErrorResponse(kTpmRcCommandSize));
    EXPECT_EQ(Exec(tpm, std::span<const uint8_t>()), TpmErrorResponse(kTpmRcCommandSize));
    cmd.push_back(0);  // one byte more than the header says
    EXPECT_EQ(Exec(tpm, cmd), TpmErrorResponse(kTpmRcCommandSize));
    std::vector<uint8_t> big(kMaxTpmCommandSize + 1, 0);
    Writer w;
    w.U16(kStNoSessions).U32(uint32_t(big.size())).U32(kCcGetRandom);
    std::copy(w.bytes().begin(), w.bytes().end(), big.begin());
    EXPECT_EQ(Exec(tpm, big), TpmErrorResponse(kTpmRcCommandSize));
    EXPECT_EQ(Rc(Exec(tpm, GetRandom(16))), kTpmRcSuccess);  // still alive
  });
}

TEST(TpmEngine, GarbageGetsErrorResponses) {
  InChildOnEngine([](TpmEngine& tpm) {
    std::mt19937 rng(1234);
    for (int i = 0; i < 2000; ++i) {
      std::vector<uint8_t> cmd(10 + rng() % 200);
      for (auto& b : cmd) b = uint8_t(rng());
      if (i % 2) cmd[0] = 0x80, cmd[1] = uint8_t(1 + rng() % 2);  // plausible tags too
      cmd[2] = 0, cmd[3] = 0, cmd[4] = uint8_t(cmd.size() >> 8), cmd[5] = uint8_t(cmd.size());
      if (i % 4 == 1) cmd[6] = 0, cmd[7] = 0, cmd[8] = 0x01, cmd[9] = uint8_t(rng());  // real codes
      std::vector<uint8_t> rsp = Exec(tpm, cmd);
      ASSERT_GE(rsp.size(), 10u);
      EXPECT_EQ(Be32(rsp, 2), rsp.size());
    }
    EXPECT_EQ(Rc(Exec(tpm, GetRandom(16))), kTpmRcSuccess);
  });
}

TEST(TpmEngine, PermanentStatePersistsInTheSealedStore) {
  TempStateDir dir;
  const VmId vm = VmId::FromName("tpm-engine-test");
  InChildOnSealedStore(dir, vm, [](TpmEngine& tpm) {
    EXPECT_NE(Rc(Exec(tpm, NvReadPublic(kTestNvIndex))), kTpmRcSuccess);
    ASSERT_EQ(Rc(Exec(tpm, NvDefineSpace(kTestNvIndex, 8))), kTpmRcSuccess);
  });
  EXPECT_FALSE(dir.Read(kPermanentStateFile).empty());
  InChildOnSealedStore(dir, vm, [](TpmEngine& tpm) {
    EXPECT_EQ(Rc(Exec(tpm, NvReadPublic(kTestNvIndex))), kTpmRcSuccess);
  });
  // No libtpms file of its own choosing anywhere in the directory (or the cwd).
  for (const auto& e : std::filesystem::directory_iterator(dir.File(""))) {
    EXPECT_EQ(e.path().filename(), std::string(kPermanentStateFile));
  }
  EXPECT_FALSE(std::filesystem::exists("NVChip"));
  EXPECT_FALSE(std::filesystem::exists("tpm2-00.permall"));
}

TEST(TpmEngine, VolatileEngineKeepsStateAcrossReset) {
  InChildOnEngine([](TpmEngine& tpm) {
    ASSERT_EQ(Rc(Exec(tpm, NvDefineSpace(kTestNvIndex, 8))), kTpmRcSuccess);
    ASSERT_TRUE(tpm.Reset());
    ASSERT_TRUE(tpm.Startup());
    EXPECT_EQ(Rc(Exec(tpm, NvReadPublic(kTestNvIndex))), kTpmRcSuccess);
  });
}

TEST(TpmEngine, TamperedStateIsRefusedNotReset) {
  TempStateDir dir;
  const VmId vm = VmId::FromName("tpm-engine-test");
  InChildOnSealedStore(dir, vm, [](TpmEngine&) {});
  std::vector<uint8_t> file = dir.Read(kPermanentStateFile);
  ASSERT_GT(file.size(), kHeaderSize + kTagSize);
  file[kHeaderSize + 5] ^= 0x01;
  dir.Write(kPermanentStateFile, file);
  InChild([&] {
    SealedStateStore store(dir.fd(), TestKey(), vm);
    auto tpm = TpmEngine::Create(&store);
    ASSERT_FALSE(tpm);
    EXPECT_NE(tpm.error().message().find("permanent"), std::string::npos) << tpm.error().ToString();
    // The failed engine is gone; a correct store can start one again in this process.
  });
  EXPECT_EQ(dir.Read(kPermanentStateFile), file);  // never overwritten with a fresh TPM
}

TEST(TpmEngine, LocalityIsChecked) {
  InChild([] {
    auto tpm = TpmEngine::Create(nullptr);
    ASSERT_TRUE(tpm);
    EXPECT_FALSE((*tpm)->SetLocality(5));
    EXPECT_TRUE((*tpm)->SetLocality(3));
    ASSERT_TRUE((*tpm)->Startup());
    // PC Client PFP: a Startup at locality 3 leaves 3 in PCR 0's last byte.
    std::vector<uint8_t> pcr0 = PcrReadDigest(Exec(**tpm, PcrRead(0)));
    ASSERT_EQ(pcr0.size(), 32u);
    EXPECT_EQ(pcr0[31], 3);
  });
}

TEST(TpmEngine, StateMovesBetweenEnginesWhilePoweredOff) {
  InChild([] {
    std::vector<uint8_t> permanent;
    {
      auto tpm = StartedEngine();
      ASSERT_TRUE(tpm);
      ASSERT_EQ(Rc(Exec(*tpm, NvDefineSpace(kTestNvIndex, 8))), kTpmRcSuccess);
      EXPECT_FALSE(tpm->SetState(BlobKind::kPermanent, std::vector<uint8_t>{1}));  // running
      auto st = tpm->GetState(BlobKind::kPermanent);
      ASSERT_TRUE(st) << st.error().ToString();
      permanent.assign(st->span().begin(), st->span().end());
      EXPECT_TRUE(tpm->GetState(BlobKind::kVolatile));
    }
    auto fresh = TpmEngine::Create(nullptr);
    ASSERT_TRUE(fresh) << fresh.error().ToString();
    TpmEngine& tpm = **fresh;
    tpm.PowerOff();
    EXPECT_FALSE(tpm.running());
    EXPECT_FALSE(tpm.Execute(GetRandom(8)));
    std::vector<uint8_t> garbage(permanent.size(), 0x5a);
    EXPECT_FALSE(tpm.SetState(BlobKind::kPermanent, garbage));
    ASSERT_TRUE(tpm.SetState(BlobKind::kPermanent, permanent));
    ASSERT_TRUE(tpm.PowerOn());
    EXPECT_FALSE(tpm.PowerOn());  // already running
    ASSERT_TRUE(tpm.Startup());
    EXPECT_EQ(Rc(Exec(tpm, NvReadPublic(kTestNvIndex))), kTpmRcSuccess);
  });
}

TEST(TpmEngine, BufferSizeChangesOnlyWhileOffAndBoundsCommands) {
  InChild([] {
    auto created = TpmEngine::Create(nullptr);
    ASSERT_TRUE(created);
    TpmEngine& tpm = **created;
    EXPECT_EQ(tpm.buffer_size(), kMaxTpmCommandSize);
    EXPECT_FALSE(tpm.SetBufferSize(3000));
    auto q = tpm.SetBufferSize(0);
    ASSERT_TRUE(q);
    EXPECT_EQ(q->size, kMaxTpmCommandSize);
    EXPECT_LE(q->min, 3000u);
    tpm.PowerOff();
    auto s = tpm.SetBufferSize(3000);
    ASSERT_TRUE(s) << s.error().ToString();
    EXPECT_EQ(s->size, 3000u);
    ASSERT_TRUE(tpm.PowerOn());
    ASSERT_TRUE(tpm.Startup());
    std::vector<uint8_t> big(3001, 0);
    Writer w;
    w.U16(kStNoSessions).U32(uint32_t(big.size())).U32(kCcGetRandom);
    std::copy(w.bytes().begin(), w.bytes().end(), big.begin());
    EXPECT_EQ(Exec(tpm, big), TpmErrorResponse(kTpmRcCommandSize));
    EXPECT_EQ(Rc(Exec(tpm, GetRandom(8))), kTpmRcSuccess);
  });
}

}  // namespace
}  // namespace vmm::vtpm
