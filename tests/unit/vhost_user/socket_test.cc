// Messages over a real AF_UNIX socketpair: fds travel, EOF is told apart from errors,
// short reads and EINTR are retried, and no received fd outlives a failure.
#include "vmm/formats/vhost_user/socket.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <array>

#include "base/unix_socket.h"
#include "tests/unit/vhost_user/test_util.h"

namespace vmm::vhost_user {
namespace {

using testing::OpenFdCount;
using testing::PayloadBytes;
using testing::Wire;

struct Pair {
  UniqueFd front, back;
};

Pair SocketPair() {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

// Sends raw bytes with any number of fds in one sendmsg, bypassing SendMessage's checks.
void RawSend(int sock, const std::vector<uint8_t>& bytes, const std::vector<int>& fds) {
  ASSERT_EQ(SendWithFds(sock, bytes, fds), static_cast<ssize_t>(bytes.size()));
}

ino_t Inode(int fd) {
  struct stat st {};
  EXPECT_EQ(fstat(fd, &st), 0);
  return st.st_ino;
}

TEST(VhostUserSocket, MemTableArrivesWithItsFds) {
  Pair p = SocketPair();
  UniqueFd low(memfd_create("low", MFD_CLOEXEC)), high(memfd_create("high", MFD_CLOEXEC));
  MemoryTable t{{{0, 0x1000, 0x10000, 0}, {0x100000000, 0x1000, 0x20000, 0}}};
  auto bytes = EncodeRequest(Request::kSetMemTable, t, 2);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  const std::array<int, 2> fds{low.get(), high.get()};
  ASSERT_TRUE(SendMessage(p.front.get(), *bytes, fds).has_value());

  auto m = ReceiveMessage(p.back.get(), Direction::kRequest);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  ASSERT_TRUE(m->has_value());
  Message& msg = **m;
  EXPECT_EQ(std::get<MemoryTable>(msg.payload), t);
  ASSERT_EQ(msg.fds.size(), 2u);
  EXPECT_EQ(Inode(msg.fds[0].get()), Inode(low.get()));
  EXPECT_EQ(Inode(msg.fds[1].get()), Inode(high.get()));
  EXPECT_EQ(fcntl(msg.fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);  // MSG_CMSG_CLOEXEC
}

TEST(VhostUserSocket, ConversationInBothDirections) {
  Pair p = SocketPair();
  auto req = EncodeRequest(Request::kGetFeatures, {}, 0);
  ASSERT_TRUE(req.has_value());
  ASSERT_TRUE(SendMessage(p.front.get(), *req).has_value());
  auto got = ReceiveMessage(p.back.get(), Direction::kRequest);
  ASSERT_TRUE(got.has_value() && got->has_value());
  EXPECT_EQ((*got)->request, Request::kGetFeatures);
  auto reply = EncodeReply(Request::kGetFeatures, uint64_t{kFProtocolFeatures});
  ASSERT_TRUE(reply.has_value());
  ASSERT_TRUE(SendMessage(p.back.get(), *reply).has_value());
  auto answer = ReceiveMessage(p.front.get(), Direction::kReply);
  ASSERT_TRUE(answer.has_value() && answer->has_value()) << answer.error().ToString();
  EXPECT_EQ(std::get<uint64_t>((*answer)->payload), kFProtocolFeatures);
}

TEST(VhostUserSocket, EofBetweenMessagesIsNotAnError) {
  Pair p = SocketPair();
  p.front.reset();
  auto m = ReadRawMessage(p.back.get());
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_FALSE(m->has_value());
}

TEST(VhostUserSocket, EofInsideAMessageIsAProtocolError) {
  for (size_t cut : {5ul, 12ul, 15ul}) {  // in the header, after it, in the payload
    Pair p = SocketPair();
    std::vector<uint8_t> bytes = Wire(Request::kSetFeatures, PayloadBytes().U64(1));
    bytes.resize(cut);
    RawSend(p.front.get(), bytes, {});
    p.front.reset();
    auto m = ReadRawMessage(p.back.get());
    ASSERT_FALSE(m.has_value()) << cut;
    EXPECT_EQ(m.error().kind(), ErrorKind::kProtocol);
    EXPECT_NE(m.error().message().find("closed the connection inside"), std::string::npos);
  }
}

TEST(VhostUserSocket, OversizedPayloadIsRefusedBeforeReadingIt) {
  Pair p = SocketPair();
  // Nothing follows the header: reading the payload would block forever.
  RawSend(p.front.get(), Wire(5, kVersion, {}, kMaxPayloadSize + 1), {});
  auto m = ReadRawMessage(p.back.get());
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().kind(), ErrorKind::kProtocol);
  EXPECT_NE(m.error().message().find("largest legal"), std::string::npos);
}

TEST(VhostUserSocket, SurplusFdsAreClosed) {
  const size_t before = OpenFdCount();
  for (size_t count : {9ul, 20ul, 253ul}) {
    Pair p = SocketPair();
    std::vector<int> fds;
    for (size_t i = 0; i < count; ++i) fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    RawSend(p.front.get(), Wire(Request::kSetFeatures, PayloadBytes().U64(0)), fds);
    for (int fd : fds) close(fd);
    auto m = ReadRawMessage(p.back.get());
    ASSERT_FALSE(m.has_value()) << count;
    EXPECT_EQ(m.error().kind(), ErrorKind::kProtocol);
    EXPECT_NE(m.error().message().find("at most 8"), std::string::npos);
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(VhostUserSocket, RejectedMessagesCloseTheirFds) {
  const size_t before = OpenFdCount();
  {
    Pair p = SocketPair();
    UniqueFd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    RawSend(p.front.get(), Wire(Request::kSetFeatures, PayloadBytes().U64(0)), {fd.get()});
    auto m = ReceiveMessage(p.back.get(), Direction::kRequest);
    ASSERT_FALSE(m.has_value());
    EXPECT_NE(m.error().message().find("takes no fds"), std::string::npos);
    // A message cut short after its fds arrived.
    std::vector<uint8_t> cut = Wire(Request::kSetVringKick, PayloadBytes().U64(0));
    cut.resize(16);
    RawSend(p.front.get(), cut, {fd.get()});
    p.front.reset();
    EXPECT_FALSE(ReceiveMessage(p.back.get(), Direction::kRequest).has_value());
  }
  EXPECT_EQ(OpenFdCount(), before);
}

// A peer in another process that writes one message in pieces, pausing between them.
pid_t SlowWriter(int sock, const std::vector<uint8_t>& bytes, int fd, useconds_t pause) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  size_t sent = 0;
  for (size_t piece : {3ul, 10ul, 6ul, 100ul}) {
    usleep(pause);
    std::vector<uint8_t> part(bytes.begin() + sent,
                              bytes.begin() + std::min(bytes.size(), sent + piece));
    if (part.empty()) break;
    const std::span<const int> fds =
        sent == 0 ? std::span<const int>(&fd, 1) : std::span<const int>();
    if (SendWithFds(sock, part, fds) != static_cast<ssize_t>(part.size())) _exit(1);
    sent += part.size();
  }
  _exit(0);
}

// SlowWriter of a VHOST_USER_ADD_MEM_REG for 0x1000 bytes of a fresh memfd; -1 if it cannot
// be encoded.
pid_t SlowAddMemRegWriter(int sock, useconds_t pause) {
  UniqueFd mem(memfd_create("ram", MFD_CLOEXEC));
  auto bytes = EncodeRequest(Request::kAddMemReg, SingleRegion{{0, 0x1000, 0x10000, 0}}, 1);
  if (!bytes.has_value()) {
    ADD_FAILURE() << bytes.error().ToString();
    return -1;
  }
  return SlowWriter(sock, *bytes, mem.get(), pause);
}

void ExpectReceivesAddMemReg(int sock) {
  auto m = ReceiveMessage(sock, Direction::kRequest);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ(std::get<SingleRegion>((*m)->payload).region.memory_size, 0x1000u);
  EXPECT_EQ((*m)->fds.size(), 1u);
}

TEST(VhostUserSocket, ShortReadsAreCompleted) {
  Pair p = SocketPair();
  pid_t child = SlowAddMemRegWriter(p.front.get(), 20000);
  ASSERT_GT(child, 0);
  ExpectReceivesAddMemReg(p.back.get());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

void OnAlarm(int) {}

TEST(VhostUserSocket, InterruptedReadsAreRetried) {
  struct sigaction quiet {
  }, old{};
  quiet.sa_handler = OnAlarm;  // no SA_RESTART: recvmsg fails with EINTR
  ASSERT_EQ(sigaction(SIGALRM, &quiet, &old), 0);
  itimerval every_5ms{{0, 5000}, {0, 5000}};
  ASSERT_EQ(setitimer(ITIMER_REAL, &every_5ms, nullptr), 0);

  Pair p = SocketPair();
  pid_t child = SlowAddMemRegWriter(p.front.get(), 30000);
  ASSERT_GT(child, 0);
  ExpectReceivesAddMemReg(p.back.get());

  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  sigaction(SIGALRM, &old, nullptr);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(VhostUserSocket, ReceiveDeadlineIsAnError) {
  Pair p = SocketPair();
  timeval tv{0, 10000};
  ASSERT_EQ(setsockopt(p.back.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  RawSend(p.front.get(), {1, 0, 0}, {});  // a peer stalled inside a header
  auto m = ReadRawMessage(p.back.get());
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().kind(), ErrorKind::kSystem);
  EXPECT_EQ(m.error().sys_errno(), EAGAIN);
}

TEST(VhostUserSocket, SendingToAClosedPeerIsEpipeNotSigpipe) {
  Pair p = SocketPair();
  p.back.reset();
  auto bytes = EncodeRequest(Request::kSetOwner, {}, 0);
  ASSERT_TRUE(bytes.has_value());
  auto sent = SendMessage(p.front.get(), *bytes);
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().sys_errno(), EPIPE);
}

TEST(VhostUserSocket, SendRefusesMoreThanEightFds) {
  Pair p = SocketPair();
  std::array<int, 9> fds{0, 0, 0, 0, 0, 0, 0, 0, 0};
  auto bytes = EncodeRequest(Request::kSetOwner, {}, 0);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_FALSE(SendMessage(p.front.get(), *bytes, fds).has_value());
}

}  // namespace
}  // namespace vmm::vhost_user
