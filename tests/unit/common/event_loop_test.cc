// EventLoop: callbacks per fd over one epoll instance; Add/Modify/Remove from inside a
// callback, Stop, timeouts, EINTR, and the one-fd wait.
#include "base/event_loop.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>
#include <vector>

namespace vmm {
namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    EXPECT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    r = p[0];
    w = p[1];
  }
  ~Pipe() {
    if (r >= 0) close(r);
    if (w >= 0) close(w);
  }
  void Put(char c = 'x') { ASSERT_EQ(write(w, &c, 1), 1); }
  void Take() {
    char c;
    ASSERT_EQ(read(r, &c, 1), 1);
  }
};

// One RunOnce with a 1 s timeout: how many callbacks ran (0, and a failure, if it failed).
size_t Ran(EventLoop& loop) {
  auto n = loop.RunOnce(1000);
  if (!n) {
    ADD_FAILURE() << n.error().ToString();
    return 0;
  }
  return *n;
}

// A fresh loop for each test.
class EventLoopTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(loop_) << loop_.error().ToString(); }

  Result<EventLoop> loop_ = EventLoop::Create();
};

TEST_F(EventLoopTest, CreatesACloexecEpollFd) { EXPECT_EQ(loop_->size(), 0u); }

TEST_F(EventLoopTest, RunsTheCallbackOfAReadyFdOnly) {
  Pipe a, b;
  int ran_a = 0, ran_b = 0;
  ASSERT_TRUE(loop_->Add(a.r, EPOLLIN, [&](uint32_t ev) {
    EXPECT_TRUE(ev & EPOLLIN);
    a.Take();
    ++ran_a;
  }));
  ASSERT_TRUE(loop_->Add(b.r, EPOLLIN, [&](uint32_t) { ++ran_b; }));
  a.Put();
  EXPECT_EQ(Ran(*loop_), 1u);
  EXPECT_EQ(ran_a, 1);
  EXPECT_EQ(ran_b, 0);
}

TEST_F(EventLoopTest, TimesOutWithNothingReady) {
  Pipe a;
  ASSERT_TRUE(loop_->Add(a.r, EPOLLIN, [](uint32_t) { FAIL() << "not ready"; }));
  const auto start = std::chrono::steady_clock::now();
  auto n = loop_->RunOnce(30);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(25));
  n = loop_->RunOnce(0);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
}

TEST_F(EventLoopTest, AddingAnFdTwiceOrModifyingAnUnwatchedFdFails) {
  Pipe a;
  ASSERT_TRUE(loop_->Add(a.r, EPOLLIN, [](uint32_t) {}));
  EXPECT_FALSE(loop_->Add(a.r, EPOLLIN, [](uint32_t) {}));
  EXPECT_FALSE(loop_->Modify(a.w, EPOLLOUT));
  EXPECT_FALSE(loop_->Add(-1, EPOLLIN, [](uint32_t) {}));
  loop_->Remove(a.w);  // not watched: nothing happens
  EXPECT_EQ(loop_->size(), 1u);
}

TEST_F(EventLoopTest, ModifySwitchesBetweenReadAndWrite) {
  Pipe a;
  std::vector<uint32_t> seen;
  ASSERT_TRUE(loop_->Add(a.w, 0, [&](uint32_t ev) { seen.push_back(ev); }));
  auto n = loop_->RunOnce(0);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);  // no interest yet
  ASSERT_TRUE(loop_->Modify(a.w, EPOLLOUT));
  n = loop_->RunOnce(0);
  ASSERT_TRUE(n);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0] & EPOLLOUT);
}

TEST_F(EventLoopTest, ReportsHangUpWithoutAskingForIt) {
  Pipe a;
  uint32_t got = 0;
  ASSERT_TRUE(loop_->Add(a.r, EPOLLIN, [&](uint32_t ev) { got = ev; }));
  close(a.w);
  a.w = -1;
  ASSERT_TRUE(loop_->RunOnce(1000));
  EXPECT_TRUE(got & EPOLLHUP);
}

TEST_F(EventLoopTest, ACallbackMayRemoveItselfAndAnotherReadyFd) {
  Pipe a, b;
  int calls = 0;
  auto both = [&](uint32_t) {
    ++calls;
    loop_->Remove(a.r);
    loop_->Remove(b.r);
  };
  ASSERT_TRUE(loop_->Add(a.r, EPOLLIN, both));
  ASSERT_TRUE(loop_->Add(b.r, EPOLLIN, both));
  a.Put();
  b.Put();
  EXPECT_EQ(Ran(*loop_), 1u);  // whichever ran first removed the other
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(loop_->size(), 0u);
}

TEST_F(EventLoopTest, AnFdAddedAgainUnderTheSameNumberWaitsForTheNextWait) {
  Pipe a, b;
  int old_calls = 0, new_calls = 0;
  // Whichever of a.r and b.r runs first replaces the other's callback.
  bool replaced = false;
  auto replace = [&](int other) {
    if (std::exchange(replaced, true)) return;
    loop_->Remove(other);
    ASSERT_TRUE(loop_->Add(other, EPOLLIN, [&](uint32_t) { ++new_calls; }));
  };
  ASSERT_TRUE(loop_->Add(a.r, EPOLLIN, [&](uint32_t) {
    ++old_calls;
    replace(b.r);
  }));
  ASSERT_TRUE(loop_->Add(b.r, EPOLLIN, [&](uint32_t) {
    ++old_calls;
    replace(a.r);
  }));
  a.Put();
  b.Put();
  EXPECT_EQ(Ran(*loop_), 1u);
  EXPECT_EQ(old_calls, 1);
  EXPECT_EQ(new_calls, 0);
  EXPECT_EQ(Ran(*loop_), 2u);  // both still readable: the new callback runs now
  EXPECT_EQ(old_calls, 2);
  EXPECT_EQ(new_calls, 1);
}

TEST_F(EventLoopTest, RunReturnsOnStopAndCanRunAgain) {
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  int count = 0;
  ASSERT_TRUE(loop_->Add(efd, EPOLLIN, [&](uint32_t) {
    uint64_t v;
    ASSERT_EQ(read(efd, &v, 8), 8);
    if (++count == 3) loop_->Stop();
    uint64_t one = 1;
    ASSERT_EQ(write(efd, &one, 8), 8);
  }));
  uint64_t one = 1;
  ASSERT_EQ(write(efd, &one, 8), 8);
  ASSERT_TRUE(loop_->Run());
  EXPECT_EQ(count, 3);
  EXPECT_FALSE(loop_->stopped());
  loop_->Stop();
  ASSERT_TRUE(loop_->Run());  // stopped before it started: returns at once
  EXPECT_EQ(count, 3);
  close(efd);
}

void NoOp(int) {}

TEST(EventLoop, ASignalEndsTheWaitLikeATimeout) {
  struct sigaction sa {
  }, old{};
  sa.sa_handler = NoOp;  // no SA_RESTART
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  auto loop = EventLoop::Create();
  ASSERT_TRUE(loop);
  Pipe a;
  ASSERT_TRUE(loop->Add(a.r, EPOLLIN, [](uint32_t) {}));
  const pthread_t self = pthread_self();
  std::thread t([self] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pthread_kill(self, SIGUSR1);
  });
  auto n = loop->RunOnce(5000);
  t.join();
  sigaction(SIGUSR1, &old, nullptr);
  ASSERT_TRUE(n) << n.error().ToString();
  EXPECT_EQ(*n, 0u);
}

TEST(EventLoop, MovedLoopKeepsItsFds) {
  auto made = EventLoop::Create();
  ASSERT_TRUE(made);
  Pipe a;
  int ran = 0;
  ASSERT_TRUE(made->Add(a.r, EPOLLIN, [&](uint32_t) { ++ran; }));
  EventLoop loop = std::move(*made);
  a.Put();
  ASSERT_TRUE(loop.RunOnce(1000));
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(loop.Watching(a.r));
}

TEST(EventLoop, WaitFdReturnsReadyEventsOrZeroOnTimeout) {
  Pipe a;
  auto r = EventLoop::WaitFd(a.r, EPOLLIN, 10);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 0u);
  a.Put();
  r = EventLoop::WaitFd(a.r, EPOLLIN, 1000);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r & EPOLLIN);
  r = EventLoop::WaitFd(a.w, EPOLLOUT, 0);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r & EPOLLOUT);
  EXPECT_FALSE(EventLoop::WaitFd(-1, EPOLLIN, 0));
}

}  // namespace
}  // namespace vmm
