// SwtpmServer at its resource limits: the channel cap derived from RLIMIT_NOFILE, listeners
// that rest when accept4 runs out of fds instead of spinning, and repeated log lines
// collapsed (RepeatLimiter).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "vtpm/process/repeat_limiter.h"
#include "vtpm/process/swtpm_server.h"
#include "vtpm/process/tpm_service_fake.h"

namespace vmm::vtpm {
namespace {

using namespace std::chrono_literals;

TEST(SwtpmServerLimits, ChannelCapLeavesRoomForTheOtherFdsAndTheReserve) {
  // vmm-vtpm standalone: RLIMIT_NOFILE 32, stderr + two listeners + the state dir.
  EXPECT_EQ(SwtpmServer::MaxChannelsForFdLimit(32, 4), 32u - 4 - SwtpmServer::kFdReserve);
  EXPECT_EQ(SwtpmServer::MaxChannelsForFdLimit(1 << 20, 4), 64u) << "never above the default";
  EXPECT_EQ(SwtpmServer::MaxChannelsForFdLimit(8, 4), 1u) << "at least one channel";
  EXPECT_EQ(SwtpmServer::MaxChannelsForFdLimit(RLIM_INFINITY, 4), 64u);
}

TEST(SwtpmServerLimits, RepeatLimiterWritesARunOfIdenticalLinesOncePerWindow) {
  std::vector<std::string> out;
  RepeatLimiter limit([&](const std::string& l) { out.push_back(l); }, 10s);
  const auto t0 = RepeatLimiter::Clock::now();
  for (int i = 0; i < 1000; ++i) limit.Log("accept4: Too many open files", t0 + i * 1ms);
  EXPECT_EQ(out, std::vector<std::string>{"accept4: Too many open files"});
  limit.Log("a different line", t0 + 2s);
  EXPECT_EQ(out,
            (std::vector<std::string>{"accept4: Too many open files",
                                      "last line repeated 999 more times", "a different line"}));
  out.clear();
  limit.Log("a different line", t0 + 13s);  // the window has passed: written again
  limit.Log("a different line", t0 + 13s);
  limit.Flush();
  limit.Flush();
  EXPECT_EQ(out, (std::vector<std::string>{"a different line", "last line repeated 1 more time"}));
}

size_t OpenFds() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (d != nullptr && readdir(d) != nullptr) ++n;
  if (d != nullptr) closedir(d);
  return n - 3;  // ".", ".." and the directory's own fd
}

// A server whose default channel cap (64) is above RLIMIT_NOFILE, with more connections
// queued than it can take: accept4 fails with EMFILE. It must log that once (with a count
// later), not spin on a listener that poll reports ready at once again. In a forked child:
// the fd limit is the whole process's.
TEST(SwtpmServerLimits, ListenersRestWhenAcceptRunsOutOfFds) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(30);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string name = "vmm-swtpm-limits-" + std::to_string(getpid());
    std::memcpy(addr.sun_path + 1, name.data(), name.size());  // abstract: no file
    const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(listener, 64) != 0) {
      _exit(2);
    }
    int hold[2], ready[2];
    if (pipe2(hold, O_CLOEXEC) != 0 || pipe2(ready, O_CLOEXEC) != 0) _exit(2);
    pid_t clients = fork();  // holds 40 connections until we are done
    if (clients == 0) {
      close(hold[1]);
      for (int i = 0; i < 40; ++i) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) _exit(3);
      }
      (void)!write(ready[1], "r", 1);
      char c;
      (void)!read(hold[0], &c, 1);  // EOF when the server side is done
      _exit(0);
    }
    close(hold[0]);
    close(ready[1]);
    char r;
    if (read(ready[0], &r, 1) != 1) _exit(3);
    close(ready[0]);

    FakeTpmService tpm;
    std::mutex mu;
    std::vector<std::string> logs;
    SwtpmServer server(tpm, [&](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu);
      logs.push_back(m);
    });
    int stop[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stop) != 0) _exit(2);
    int group = server.AddGroup({.platform = true, .stop_when_closed = true}, UniqueFd(stop[1]),
                                UniqueFd());
    server.AddListener(UniqueFd(listener), group, /*control=*/true);
    rlimit low{};
    if (getrlimit(RLIMIT_NOFILE, &low) != 0) _exit(2);
    low.rlim_cur = OpenFds() + 10;  // room for a few channels, not for 40
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) _exit(2);

    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    std::thread t([&] { (void)server.Run(); });
    usleep(1000 * 1000);
    getrusage(RUSAGE_SELF, &after);
    size_t emfile_lines;
    {
      std::lock_guard<std::mutex> lock(mu);
      emfile_lines = logs.size();
    }
    close(stop[0]);  // ends Run
    t.join();
    close(hold[1]);
    waitpid(clients, nullptr, 0);
    const long used_ms = (after.ru_utime.tv_sec - before.ru_utime.tv_sec + after.ru_stime.tv_sec -
                          before.ru_stime.tv_sec) *
                             1000 +
                         (after.ru_utime.tv_usec - before.ru_utime.tv_usec +
                          after.ru_stime.tv_usec - before.ru_stime.tv_usec) /
                             1000;
    bool saw_emfile = false;
    for (const std::string& l : logs)
      saw_emfile |= l.find("Too many open files") != std::string::npos;
    std::fprintf(stderr, "%zu log lines in the second, %ld ms of CPU\n", emfile_lines, used_ms);
    if (!saw_emfile) _exit(4);  // the test did not reach the limit: it proves nothing
    if (emfile_lines > 4) _exit(5);
    if (used_ms > 200) _exit(6);
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_NE(WEXITSTATUS(st), 4) << "accept4 never failed with EMFILE";
  EXPECT_NE(WEXITSTATUS(st), 5) << "a log line per turn: the server spins";
  EXPECT_NE(WEXITSTATUS(st), 6) << "the server used the CPU while it could accept nothing";
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

}  // namespace
}  // namespace vmm::vtpm
