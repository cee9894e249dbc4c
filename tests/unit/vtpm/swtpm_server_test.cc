// SwtpmServer over socketpairs: policy and hostile peers against FakeTpmService (the server
// runs on a thread of the test), then whole sessions against libtpms (EngineService) in a
// forked child, since libtpms is process-global (see tpm_engine_test.cc), and tpm2-tools'
// swtpm TCTI against our TCP listeners.
#include "vtpm/process/swtpm_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "base/unix_socket.h"
#include "tests/unit/common/in_child.h"
#include "tests/unit/vtpm/tpm_test_commands.h"
#include "vtpm/engine/tpm_engine.h"
#include "vtpm/process/engine_service.h"
#include "vtpm/process/tpm_service_fake.h"
#include "vtpm/protocol/swtpm_client.h"

namespace vmm::vtpm {
namespace {

using namespace std::chrono_literals;
using swtpm::Command;
using tpmtest::Rc;

struct Pair {
  UniqueFd ours;    // the test's end
  UniqueFd theirs;  // the server's end
};

Pair SocketPair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::vector<uint8_t> Bytes(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> out;
  for (uint32_t w : words) AppendBe<uint32_t>(out, w);
  return out;
}

void WriteAll(int fd, std::span<const uint8_t> b) {
  ASSERT_EQ(send(fd, b.data(), b.size(), MSG_NOSIGNAL), ssize_t(b.size()));
}

void SendWithFd(int sock, std::span<const uint8_t> b, int fd) {
  ASSERT_EQ(SendWithFds(sock, b, {&fd, 1}), ssize_t(b.size()));
}

// True once the server has closed its end (EOF within `timeout`).
bool ClosedByServer(int fd, std::chrono::milliseconds timeout = 3000ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, int(timeout.count())) <= 0) return false;
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

// The server on a thread (FakeTpmService needs no fork); a platform "manager" group with
// stop_when_closed ends it when the test is done.
class FakeServer {
 public:
  explicit FakeServer(ServerOptions options = {})
      : server_(
            tpm, [this](const std::string& m) { Record(m); }, options) {
    Pair mgr = SocketPair();
    manager = std::move(mgr.ours);
    manager_group = server_.AddGroup({.platform = true, .locality = 0, .stop_when_closed = true},
                                     std::move(mgr.theirs), UniqueFd());
  }
  ~FakeServer() { (void)Stop(); }

  // A group with a control and a data channel; returns the test's ends.
  std::pair<UniqueFd, UniqueFd> AddGroup(ChannelPolicy policy) {
    Pair c = SocketPair(), d = SocketPair();
    EXPECT_GE(server_.AddGroup(policy, std::move(c.theirs), std::move(d.theirs)), 0);
    return {std::move(c.ours), std::move(d.ours)};
  }
  SwtpmServer& server() { return server_; }
  void Start() {
    thread_ = std::thread([this] { result_ = std::make_unique<Result<void>>(server_.Run()); });
  }
  Result<void> Stop() {
    manager.reset();
    if (thread_.joinable()) thread_.join();
    return result_ ? *result_ : Result<void>(Error(ErrorKind::kInternal, "not run"));
  }
  bool Logged(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& l : logs_)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
  std::string Logs() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string all;
    for (const auto& l : logs_) all += l + "\n";
    return all;
  }

  FakeTpmService tpm;
  UniqueFd manager;
  int manager_group = -1;

 private:
  void Record(const std::string& m) {
    std::lock_guard<std::mutex> lock(mu_);
    logs_.push_back(m);
  }
  std::mutex mu_;
  std::vector<std::string> logs_;
  SwtpmServer server_;
  std::thread thread_;
  std::unique_ptr<Result<void>> result_;
};

std::vector<uint8_t> GetRandomCmd() { return tpmtest::GetRandom(8); }

TEST(SwtpmServer, GuestGroupIsRefusedPlatformCommands) {
  FakeServer s;
  auto [ctrl, data] = s.AddGroup({});
  s.Start();
  SwtpmClient guest(ctrl.get(), 3000ms);
  auto refused = [&](const swtpm::Request& r) {
    auto a = guest.Call(r);
    ASSERT_TRUE(a) << a.error().ToString();
    EXPECT_EQ(guest.last_result(), swtpm::kResBadOrdinal) << swtpm::CommandName(r.command);
  };
  swtpm::Request r;
  for (Command c : {Command::kInit, Command::kSetLocality, Command::kStop, Command::kShutdown,
                    Command::kHashStart, Command::kHashEnd, Command::kStoreVolatile,
                    Command::kResetTpmEstablished, Command::kGetStateBlob, Command::kSetBufferSize,
                    Command::kGetInfo, Command::kLockStorage}) {
    r = swtpm::Request{};
    r.command = c;
    r.locality = 3;
    refused(r);
  }
  r = swtpm::Request{};
  r.command = Command::kSetStateBlob;
  r.data = {FakeTpmService::kSealMagic, 1, 2, 3};
  refused(r);
  r.command = Command::kHashData;
  refused(r);
  // SET_DATAFD with its fd: refused, and the fd is not kept.
  Pair extra = SocketPair();
  SendWithFd(ctrl.get(), Bytes({uint32_t(Command::kSetDataFd)}), extra.theirs.get());
  extra.theirs.reset();
  std::vector<uint8_t> res(4);
  ASSERT_EQ(read(ctrl.get(), res.data(), 4), 4);
  EXPECT_EQ(LoadBe<uint32_t>(res, 0), swtpm::kResBadOrdinal);
  EXPECT_TRUE(ClosedByServer(extra.ours.get()));

  // What it may do.
  auto caps = guest.GetCapability();
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, swtpm::kCapGetTpmEstablished | swtpm::kCapCancelTpmCmd | swtpm::kCapGetConfig);
  EXPECT_TRUE(guest.GetEstablished().value());
  EXPECT_TRUE(guest.Cancel());
  EXPECT_EQ(guest.GetConfig().value(), swtpm::kConfigFlagMigrationKey);
  auto rsp = Transmit(data.get(), GetRandomCmd(), 3000ms);
  ASSERT_TRUE(rsp) << rsp.error().ToString();
  EXPECT_EQ(Rc(*rsp), 0u);

  EXPECT_TRUE(s.Stop());
  EXPECT_TRUE(s.tpm.init_flags.empty());
  EXPECT_EQ(s.tpm.stops, 0);
  EXPECT_TRUE(s.tpm.blobs.empty());
  EXPECT_TRUE(s.tpm.is_running);
  EXPECT_TRUE(s.Logged("CMD_INIT refused: only a platform channel")) << s.Logs();
}

TEST(SwtpmServer, GuestCommandsRunAtLocalityZeroWhateverThePlatformSets) {
  FakeServer s;
  auto [gctrl, gdata] = s.AddGroup({});
  auto [pctrl, pdata] = s.AddGroup({.platform = true, .locality = 0});
  s.Start();
  SwtpmClient platform(pctrl.get(), 3000ms);
  ASSERT_TRUE(platform.SetLocality(3));
  EXPECT_FALSE(platform.SetLocality(5));
  EXPECT_EQ(platform.last_result(), swtpm::kResBadLocality);
  auto p = Transmit(pdata.get(), GetRandomCmd(), 3000ms);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->back(), 3);  // the fake answers with the locality it ran at
  SwtpmClient guest(gctrl.get(), 3000ms);
  EXPECT_FALSE(guest.SetLocality(3));
  auto g = Transmit(gdata.get(), GetRandomCmd(), 3000ms);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->back(), 0);
  p = Transmit(pdata.get(), GetRandomCmd(), 3000ms);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->back(), 3);
  EXPECT_TRUE(s.Stop());
  EXPECT_EQ(s.tpm.executed_localities, (std::vector<uint8_t>{3, 0, 3}));
}

TEST(SwtpmServer, MalformedControlMessageClosesOnlyThatChannel) {
  FakeServer s;
  auto [ctrl, data] = s.AddGroup({});
  auto [ctrl2, data2] = s.AddGroup({});
  s.Start();
  WriteAll(ctrl.get(), Bytes({0x99, 0, 0}));
  EXPECT_TRUE(ClosedByServer(ctrl.get()));
  // The same group's data channel and another group carry on.
  EXPECT_TRUE(Transmit(data.get(), GetRandomCmd(), 3000ms));
  EXPECT_TRUE(SwtpmClient(ctrl2.get(), 3000ms).GetCapability());
  // Garbage on a data channel: a size below the header. (A size above the buffer is a
  // command truncated to the buffer by the front end: see PowerRulesFollowSwtpm.)
  WriteAll(data2.get(), std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 3, 0, 0, 0x01, 0x7b});
  EXPECT_TRUE(ClosedByServer(data2.get()));
  std::vector<uint8_t> tiny = {0x80, 0x01, 0, 0, 0, 9, 0, 0, 0x01, 0x7b};
  WriteAll(data.get(), tiny);
  EXPECT_TRUE(ClosedByServer(data.get()));
  EXPECT_TRUE(s.Stop());
  EXPECT_TRUE(s.Logged("unknown control command 0x99")) << s.Logs();
  EXPECT_TRUE(s.Logged("must be 10..4096")) << s.Logs();
}

TEST(SwtpmServer, PeerSendingFdsWhereNoneBelongIsClosed) {
  FakeServer s;
  auto [ctrl, data] = s.AddGroup({.platform = true});
  auto [ctrl2, data2] = s.AddGroup({.platform = true});
  s.Start();
  Pair extra = SocketPair();
  SendWithFd(ctrl.get(), Bytes({uint32_t(Command::kGetCapability)}), extra.theirs.get());
  EXPECT_TRUE(ClosedByServer(ctrl.get()));
  std::vector<uint8_t> cmd = GetRandomCmd();
  SendWithFd(data2.get(), cmd, extra.theirs.get());
  EXPECT_TRUE(ClosedByServer(data2.get()));
  // SET_DATAFD without an fd is malformed too.
  WriteAll(ctrl2.get(), Bytes({uint32_t(Command::kSetDataFd)}));
  EXPECT_TRUE(ClosedByServer(ctrl2.get()));
  extra.theirs.reset();
  EXPECT_TRUE(ClosedByServer(extra.ours.get()));  // every fd that came was closed
  EXPECT_TRUE(s.Stop());
  EXPECT_TRUE(s.Logged("CMD_GET_CAPABILITY arrived with 1 fd(s)")) << s.Logs();
  EXPECT_TRUE(s.Logged("fd(s) on a data channel")) << s.Logs();
}

TEST(SwtpmServer, SetDataFdAddsADataChannelToTheGroup) {
  FakeServer s;
  Pair ctrl = SocketPair();
  s.server().AddGroup({.platform = true, .locality = 2}, std::move(ctrl.theirs), UniqueFd());
  s.Start();
  SwtpmClient client(ctrl.ours.get(), 3000ms);
  Pair data = SocketPair();
  ASSERT_TRUE(client.SetDataFd(data.theirs.get()));
  data.theirs.reset();
  auto rsp = Transmit(data.ours.get(), GetRandomCmd(), 3000ms);
  ASSERT_TRUE(rsp) << rsp.error().ToString();
  EXPECT_EQ(rsp->back(), 2);
  // swtpm keeps one data fd at a time.
  Pair second = SocketPair();
  EXPECT_FALSE(client.SetDataFd(second.theirs.get()));
  EXPECT_EQ(client.last_result(), swtpm::kResIoError);
  EXPECT_TRUE(s.Stop());
}

TEST(SwtpmServer, StalledPeerIsClosedAndOthersAreServedMeanwhile) {
  FakeServer s(ServerOptions{.message_deadline = 300ms});
  auto [ctrl, data] = s.AddGroup({});
  auto [ctrl2, data2] = s.AddGroup({});
  s.Start();
  std::vector<uint8_t> cmd = GetRandomCmd();
  WriteAll(data.get(), std::span(cmd).first(5));  // and then nothing
  WriteAll(ctrl.get(), Bytes({uint32_t(Command::kSetStateBlob)}));
  EXPECT_TRUE(Transmit(data2.get(), GetRandomCmd(), 3000ms));
  EXPECT_TRUE(SwtpmClient(ctrl2.get(), 3000ms).GetCapability());
  EXPECT_TRUE(ClosedByServer(data.get()));
  EXPECT_TRUE(ClosedByServer(ctrl.get()));
  EXPECT_TRUE(s.Stop());
  EXPECT_TRUE(s.Logged("stalled inside a message")) << s.Logs();
}

TEST(SwtpmServer, PipelinedAndFragmentedRequests) {
  FakeServer s;
  auto [ctrl, data] = s.AddGroup({});
  s.Start();
  std::vector<uint8_t> three;
  for (int i = 0; i < 3; ++i) {
    auto r = Bytes({uint32_t(Command::kGetConfig)});
    three.insert(three.end(), r.begin(), r.end());
  }
  WriteAll(ctrl.get(), three);
  std::vector<uint8_t> answers(24);
  size_t got = 0;
  while (got < answers.size()) {
    ssize_t n = read(ctrl.get(), answers.data() + got, answers.size() - got);
    ASSERT_GT(n, 0);
    got += size_t(n);
  }
  EXPECT_EQ(LoadBe<uint32_t>(answers, 20), swtpm::kConfigFlagMigrationKey);
  // A TPM command a byte at a time.
  std::vector<uint8_t> cmd = GetRandomCmd();
  for (uint8_t b : cmd) {
    WriteAll(data.get(), std::span(&b, 1));
    std::this_thread::sleep_for(2ms);
  }
  std::vector<uint8_t> rsp(11);
  ASSERT_EQ(read(data.get(), rsp.data(), rsp.size()), 11);
  EXPECT_EQ(s.tpm.executed.back(), cmd);
  EXPECT_TRUE(s.Stop());
}

TEST(SwtpmServer, PowerRulesFollowSwtpm) {
  FakeServer s;
  auto [ctrl, data] = s.AddGroup({.platform = true});
  s.Start();
  SwtpmClient c(ctrl.get(), 3000ms);
  // SET_STATEBLOB and a buffer size only while stopped.
  std::vector<uint8_t> blob = {FakeTpmService::kSealMagic, 1, 2, 3};
  EXPECT_FALSE(c.SetStateBlob(swtpm::BlobType::kPermanent, blob));
  EXPECT_EQ(c.last_result(), swtpm::kResBadOrdinal);
  EXPECT_FALSE(c.SetBufferSize(3000));
  EXPECT_EQ(c.SetBufferSize(0).value().size, 4096u);
  ASSERT_TRUE(c.Stop());
  // Data commands while stopped: TPM_RC_FAILURE, as swtpm answers before CMD_INIT.
  auto rsp = Transmit(data.get(), GetRandomCmd(), 3000ms);
  ASSERT_TRUE(rsp);
  EXPECT_EQ(Rc(*rsp), kTpmRcFailure);
  EXPECT_FALSE(c.GetEstablished());
  EXPECT_FALSE(c.GetStateBlob(swtpm::BlobType::kPermanent));
  EXPECT_EQ(c.last_result(), swtpm::kResBadOrdinal);
  std::vector<uint8_t> tampered = {0x00, 1, 2, 3};
  EXPECT_FALSE(c.SetStateBlob(swtpm::BlobType::kPermanent, tampered));
  EXPECT_EQ(c.last_result(), swtpm::kResDecryptError);
  ASSERT_TRUE(c.SetStateBlob(swtpm::BlobType::kPermanent, blob));
  EXPECT_EQ(c.SetBufferSize(3000).value().size, 3000u);
  ASSERT_TRUE(c.Init(swtpm::kInitFlagDeleteVolatile));
  EXPECT_EQ(c.GetStateBlob(swtpm::BlobType::kPermanent).value(), blob);
  // The negotiated size bounds the data channel: a 3001-byte command arrives truncated to
  // 3000 bytes (as QEMU's CRB sends it); those 3000 bytes are one command, answered, and
  // the channel stays in step.
  std::vector<uint8_t> big(3000, 0);
  big[0] = 0x80, big[1] = 0x01, big[4] = 0x0b, big[5] = 0xb9;
  WriteAll(data.get(), big);
  {
    pollfd p{data.get(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 3000), 1);
    uint8_t header[10];
    EXPECT_EQ(recv(data.get(), header, sizeof(header), MSG_WAITALL), 10);
  }
  auto info = c.GetInfo(1);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(*info, "{\"fake\":true}");
  EXPECT_TRUE(s.Stop());
  EXPECT_EQ(s.tpm.init_flags, (std::vector<uint32_t>{1}));
}

TEST(SwtpmServer, ShutdownEndsRun) {
  FakeTpmService tpm;
  SwtpmServer server(tpm, nullptr);
  Pair ctrl = SocketPair();
  server.AddGroup({.platform = true}, std::move(ctrl.theirs), UniqueFd());
  std::thread client([&] { EXPECT_TRUE(SwtpmClient(ctrl.ours.get(), 3000ms).Shutdown()); });
  EXPECT_TRUE(server.Run());
  client.join();
  EXPECT_FALSE(tpm.is_running);
}

TEST(SwtpmServer, StopWhenClosedGroupReportsAProtocolError) {
  FakeTpmService tpm;
  SwtpmServer server(tpm, nullptr);
  Pair ctrl = SocketPair();
  server.AddGroup({.platform = true, .stop_when_closed = true}, std::move(ctrl.theirs), UniqueFd());
  WriteAll(ctrl.ours.get(), Bytes({0x42}));
  auto r = server.Run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::kProtocol);
  EXPECT_NE(r.error().message().find("unknown control command"), std::string::npos);
}

TEST(SwtpmServer, InvalidLocalityGroupIsRefused) {
  FakeTpmService tpm;
  SwtpmServer server(tpm, nullptr);
  EXPECT_EQ(server.AddGroup({.locality = 5}, UniqueFd(), UniqueFd()), -1);
}

// ---- libtpms behind the server, in a child process ----

Key TestKey() {
  std::array<uint8_t, kKeySize> b;
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 3 + 5);
  return Key(b);
}

using testing_util::InChild;

// An engine, its service and a server on a thread of the (child) process; the test talks
// to a platform group through `ctrl` (control) and `data`, set up with CMD_SET_DATAFD.
struct EngineSession {
  std::unique_ptr<TpmEngine> engine;
  std::unique_ptr<EngineService> service;
  std::unique_ptr<SwtpmServer> server;
  std::thread thread;
  UniqueFd ctrl, data, guest_data;
  std::unique_ptr<Result<void>> result;

  bool Start(const VmId& vm) {
    auto e = TpmEngine::Create(nullptr);
    if (!e) {
      ADD_FAILURE() << e.error().ToString();
      return false;
    }
    engine = std::move(*e);
    service = std::make_unique<EngineService>(*engine, TestKey(), vm);
    server = std::make_unique<SwtpmServer>(
        *service, [](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); });
    Pair c = SocketPair(), g = SocketPair();
    server->AddGroup({.platform = true, .locality = 0}, std::move(c.theirs), UniqueFd());
    server->AddGroup({}, UniqueFd(), std::move(g.theirs));
    ctrl = std::move(c.ours);
    guest_data = std::move(g.ours);
    thread = std::thread([this] { result = std::make_unique<Result<void>>(server->Run()); });
    SwtpmClient client(ctrl.get());
    Pair d = SocketPair();
    auto set = client.SetDataFd(d.theirs.get());
    EXPECT_TRUE(set) << set.error().ToString();
    data = std::move(d.ours);
    return bool(set);
  }
  std::vector<uint8_t> Run(std::span<const uint8_t> cmd, int fd = -1) {
    auto rsp = Transmit(fd < 0 ? data.get() : fd, cmd, 10000ms);
    if (!rsp) {
      ADD_FAILURE() << rsp.error().ToString();
      return {};
    }
    return std::move(*rsp);
  }
  void Shutdown() {
    EXPECT_TRUE(SwtpmClient(ctrl.get()).Shutdown());
    thread.join();
    ASSERT_TRUE(result);
    EXPECT_TRUE(*result) << result->error().ToString();
  }
};

std::vector<uint8_t> StartupCmd() {
  return tpmtest::Command(tpmtest::kStNoSessions, kTpmCcStartup, std::vector<uint8_t>{0, 0});
}

TEST(SwtpmServer, FullSessionWithLibtpms) {
  InChild([] {
    const VmId vm = VmId::FromName("swtpm-server-test");
    std::vector<uint8_t> blob;
    {
      EngineSession s;
      ASSERT_TRUE(s.Start(vm));
      SwtpmClient c(s.ctrl.get());
      ASSERT_TRUE(c.Init(swtpm::kInitFlagDeleteVolatile));
      ASSERT_TRUE(c.SetLocality(3));
      ASSERT_EQ(Rc(s.Run(StartupCmd())), kTpmRcSuccess);
      // Startup at locality 3 (PC Client PFP StartupLocality): PCR 0 ends in 3.
      std::vector<uint8_t> pcr0 = tpmtest::PcrReadDigest(s.Run(tpmtest::PcrRead(0)));
      ASSERT_EQ(pcr0.size(), 32u);
      EXPECT_EQ(pcr0[31], 3);
      std::vector<uint8_t> rnd = s.Run(tpmtest::GetRandom(16));
      ASSERT_EQ(Rc(rnd), kTpmRcSuccess);
      EXPECT_EQ(rnd.size(), 28u);
      std::array<uint8_t, 32> digest;
      digest.fill(0x5a);
      ASSERT_EQ(Rc(s.Run(tpmtest::PcrExtend(16, digest))), kTpmRcSuccess);
      // old value (zero) || digest; filled by index (GCC 12 -Warray-bounds misreads insert).
      std::vector<uint8_t> expected(64, 0);
      for (size_t i = 0; i < digest.size(); ++i) expected[32 + i] = digest[i];
      EXPECT_EQ(tpmtest::PcrReadDigest(s.Run(tpmtest::PcrRead(16))), tpmtest::Sha256(expected));
      // The guest's group runs at locality 0 although the platform chose 3; the engine's
      // locality is set from the sending group before every command.
      EXPECT_EQ(s.engine->locality(), 3);
      ASSERT_EQ(Rc(s.Run(tpmtest::GetRandom(8), s.guest_data.get())), kTpmRcSuccess);
      EXPECT_EQ(s.engine->locality(), 0);
      ASSERT_EQ(Rc(s.Run(tpmtest::GetRandom(8))), kTpmRcSuccess);
      EXPECT_EQ(s.engine->locality(), 3);
      ASSERT_EQ(Rc(s.Run(tpmtest::NvDefineSpace(tpmtest::kTestNvIndex, 8))), kTpmRcSuccess);
      EXPECT_TRUE(c.GetEstablished());
      EXPECT_EQ(c.GetCapability().value(), SwtpmServer::Capabilities({.platform = true}));
      EXPECT_NE(c.GetConfig().value() & swtpm::kConfigFlagMigrationKey, 0u);
      auto b = c.GetStateBlob(swtpm::BlobType::kPermanent);
      ASSERT_TRUE(b) << b.error().ToString();
      blob = std::move(*b);
      EXPECT_EQ(c.GetStateBlob(swtpm::BlobType::kSaveState).value(), std::vector<uint8_t>{});
      ASSERT_TRUE(c.GetStateBlob(swtpm::BlobType::kVolatile));
      // Sealed: our header, not libtpms's plaintext.
      ASSERT_GT(blob.size(), kHeaderSize + kTagSize);
      EXPECT_TRUE(std::equal(kStateMagic.begin(), kStateMagic.end(), blob.begin()));
      s.Shutdown();
    }
    // A fresh engine (no store: a blank TPM) takes the state over the protocol.
    EngineSession s;
    ASSERT_TRUE(s.Start(vm));
    SwtpmClient c(s.ctrl.get());
    ASSERT_TRUE(c.Stop());
    std::vector<uint8_t> tampered = blob;
    tampered[kHeaderSize + 3] ^= 1;
    EXPECT_FALSE(c.SetStateBlob(swtpm::BlobType::kPermanent, tampered));
    EXPECT_EQ(c.last_result(), swtpm::kResDecryptError);
    std::vector<uint8_t> wrong_kind = blob;
    EXPECT_FALSE(c.SetStateBlob(swtpm::BlobType::kVolatile, wrong_kind));
    ASSERT_TRUE(c.SetStateBlob(swtpm::BlobType::kPermanent, blob));
    ASSERT_TRUE(c.Init());
    ASSERT_EQ(Rc(s.Run(StartupCmd())), kTpmRcSuccess);
    EXPECT_EQ(Rc(s.Run(tpmtest::NvReadPublic(tpmtest::kTestNvIndex))), kTpmRcSuccess);
    // Another VM's key cannot read it either.
    ASSERT_TRUE(c.Stop());
    EngineService other(*s.engine, TestKey(), VmId::FromName("another-vm"));
    EXPECT_EQ(other.SetStateBlob(swtpm::BlobType::kPermanent, 0, blob).result,
              swtpm::kResDecryptError);
    ASSERT_TRUE(c.Init());
    s.Shutdown();
  });
}

TEST(SwtpmServer, DataBeforeInitIsServedByARunningEngineAndHashingWorks) {
  InChild([] {
    EngineSession s;
    ASSERT_TRUE(s.Start(VmId::FromName("swtpm-hash")));
    SwtpmClient c(s.ctrl.get());
    // EngineService starts powered on: a command works without CMD_INIT (not-need-init).
    EXPECT_EQ(Rc(s.Run(StartupCmd())), kTpmRcSuccess);
    // H-CRTM: HASH_START/DATA/END, as firmware would before Startup.
    ASSERT_TRUE(c.Init());
    ASSERT_TRUE(c.HashStart());
    std::vector<uint8_t> data(100, 0x11);
    ASSERT_TRUE(c.HashData(data));
    ASSERT_TRUE(c.HashEnd());
    ASSERT_EQ(Rc(s.Run(StartupCmd())), kTpmRcSuccess);
    std::vector<uint8_t> pcr0 = tpmtest::PcrReadDigest(s.Run(tpmtest::PcrRead(0)));
    ASSERT_EQ(pcr0.size(), 32u);
    EXPECT_NE(pcr0, std::vector<uint8_t>(32, 0));
    // Establishment bit: set by the H-CRTM, reset only from locality 3 or 4.
    EXPECT_TRUE(c.GetEstablished().value());
    EXPECT_FALSE(c.ResetEstablished(0));
    ASSERT_TRUE(c.ResetEstablished(3));
    EXPECT_FALSE(c.GetEstablished().value());
    ASSERT_TRUE(c.StoreVolatile());
    auto sizes = c.SetBufferSize(0);
    ASSERT_TRUE(sizes);
    EXPECT_EQ(sizes->size, 4096u);
    EXPECT_LE(sizes->min, sizes->size);
    auto info = c.GetInfo(1);
    ASSERT_TRUE(info) << info.error().ToString();
    EXPECT_NE(info->find("TPMSpecification"), std::string::npos) << *info;
    s.Shutdown();
  });
}

// ---- tpm2-tools' swtpm TCTI (tpm2-tss 3.2.1: a new TCP connection per control call and
// per TPM command, SET_LOCALITY(0) at init, no CMD_INIT) against TCP listeners ----

UniqueFd Listen(uint16_t port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd.get(), 8) != 0)
    return {};
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

TEST(SwtpmServer, Tpm2GetrandomOverTheSwtpmTcti) {
  if (system("command -v tpm2_getrandom >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "tpm2_getrandom (tpm2-tools) is not installed";
  }
  // Data port N and control port N+1, as the TCTI expects.
  UniqueFd data_l, ctrl_l;
  for (int attempt = 0; attempt < 20 && !ctrl_l.valid(); ++attempt) {
    data_l = Listen(0);
    ASSERT_TRUE(data_l.valid());
    ctrl_l = Listen(uint16_t(PortOf(data_l.get()) + 1));
  }
  ASSERT_TRUE(ctrl_l.valid()) << "no two consecutive free ports";
  const uint16_t port = PortOf(data_l.get());
  Pair stop = SocketPair();
  std::fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    stop.ours.reset();
    auto engine = TpmEngine::Create(nullptr);
    if (!engine || !(*engine)->Startup()) _exit(3);
    EngineService tpm(**engine, TestKey(), VmId::FromName("tcti"));
    SwtpmServer server(tpm, [](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); });
    // The TCTI sets locality 0 through the control port, so its group is a platform one.
    int g = server.AddGroup({.platform = true, .locality = 0, .stop_when_closed = true},
                            std::move(stop.theirs), UniqueFd());
    server.AddListener(std::move(data_l), g, false);
    server.AddListener(std::move(ctrl_l), g, true);
    auto r = server.Run();
    _exit(r ? 0 : 4);
  }
  stop.theirs.reset();
  data_l.reset();
  ctrl_l.reset();
  const std::string cmd =
      "tpm2_getrandom -T swtpm:host=127.0.0.1,port=" + std::to_string(port) + " --hex 16 2>&1";
  std::string out;
  int rc = -1;
  for (int run = 0; run < 2; ++run) {  // twice: connections come and go per command
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[512];
    out.clear();
    while (fgets(buf, sizeof(buf), p)) out += buf;
    rc = pclose(p);
    ASSERT_EQ(rc, 0) << out;
  }
  EXPECT_EQ(out.size(), 32u) << out;  // 16 bytes as hex, no newline
  EXPECT_EQ(out.find_first_not_of("0123456789abcdef"), std::string::npos) << out;
  stop.ours.reset();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "server status " << status;
}

}  // namespace
}  // namespace vmm::vtpm
