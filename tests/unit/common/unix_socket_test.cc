#include "base/unix_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace vmm {
namespace {

struct Pair {
  UniqueFd a, b;
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

// How many fds this process has open.
int OpenFds() {
  int n = 0;
  for (int fd = 0; fd < 1024; ++fd) n += fcntl(fd, F_GETFD) >= 0;
  return n;
}

TEST(UnixSocket, BytesAndFdsArriveTogetherCloseOnExec) {
  Pair p;
  int pipefd[2];
  ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
  UniqueFd r(pipefd[0]), w(pipefd[1]);
  const std::vector<uint8_t> bytes = {1, 2, 3};
  const int fds[] = {r.get(), w.get()};
  ASSERT_EQ(SendWithFds(p.a.get(), bytes, fds), 3);

  std::vector<uint8_t> buf(16);
  Received got = ReceiveWithFds(p.b.get(), buf, 8);
  ASSERT_EQ(got.n, 3);
  EXPECT_FALSE(got.bad_control());
  ASSERT_EQ(got.fds.size(), 2u);
  for (const UniqueFd& fd : got.fds) EXPECT_EQ(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  // The received write end works: what goes in comes out of the original read end.
  ASSERT_EQ(write(got.fds[1].get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(read(r.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
}

TEST(UnixSocket, MoreFdsThanRoomIsTruncatedAndNoneLeak) {
  Pair p;
  const int before = OpenFds();
  std::vector<int> fds(5, p.a.get());
  const uint8_t byte = 7;
  ASSERT_EQ(SendWithFds(p.a.get(), {&byte, 1}, fds), 1);
  uint8_t in = 0;
  {
    Received got = ReceiveWithFds(p.b.get(), {&in, 1}, 2);
    EXPECT_EQ(got.n, 1);
    EXPECT_TRUE(got.truncated);
    EXPECT_TRUE(got.bad_control());
    EXPECT_LE(got.fds.size(), 2u);
  }
  EXPECT_EQ(OpenFds(), before);  // the received ones closed with `got`, the kernel the rest
}

TEST(UnixSocket, ReceiveErrorsCarryErrno) {
  Pair p;
  uint8_t in = 0;
  Received got = ReceiveWithFds(p.b.get(), {&in, 1}, 1, MSG_DONTWAIT);
  EXPECT_EQ(got.n, -1);
  EXPECT_EQ(got.error, EAGAIN);
  EXPECT_TRUE(got.fds.empty());
}

TEST(UnixSocket, TooManyFdsToSendIsEinval) {
  Pair p;
  std::vector<int> fds(kScmMaxFd + 1, p.a.get());
  const uint8_t byte = 0;
  EXPECT_EQ(SendWithFds(p.a.get(), {&byte, 1}, fds), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(UnixSocket, ClosedPeerIsEpipeNotSigpipe) {
  Pair p;
  p.b.reset();
  const uint8_t byte = 0;
  EXPECT_EQ(SendWithFds(p.a.get(), {&byte, 1}), -1);
  EXPECT_EQ(errno, EPIPE);
}

std::string TempSocketPath() {
  char dir[] = "/tmp/vmm-unix-socket-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  return std::string(dir) + "/s";
}

TEST(UnixSocket, ListenAcceptConnect) {
  const std::string path = TempSocketPath();
  auto l = ListenUnix(path, 1);
  ASSERT_TRUE(l.has_value()) << l.error().ToString();
  // A stale socket file of an earlier run is replaced.
  l->reset();
  auto again = ListenUnix(path, 1);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();

  UniqueFd client(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, path.size());
  ASSERT_EQ(connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  UniqueFd conn = AcceptConnection(again->get(), /*nonblocking=*/true);
  ASSERT_TRUE(conn.valid());
  EXPECT_EQ(fcntl(conn.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(fcntl(conn.get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
  unlink(path.c_str());
}

TEST(UnixSocket, ListenRefusesNonSocketsAndBadPaths) {
  const std::string path = TempSocketPath();
  UniqueFd file(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  auto l = ListenUnix(path, 1);
  ASSERT_FALSE(l.has_value());
  EXPECT_EQ(l.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(l.error().message().find("exists and is not a socket"), std::string::npos);
  unlink(path.c_str());

  EXPECT_EQ(ListenUnix("", 1).error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(ListenUnix(std::string(200, 'x'), 1).error().kind(), ErrorKind::kInvalidArgument);
  auto unbindable = ListenUnix("/nonexistent-dir/s", 1, ErrorKind::kInvalidArgument);
  ASSERT_FALSE(unbindable.has_value());
  EXPECT_EQ(unbindable.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(ListenUnix("/nonexistent-dir/s", 1).error().kind(), ErrorKind::kSystem);
}

}  // namespace
}  // namespace vmm
