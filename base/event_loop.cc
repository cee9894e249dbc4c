#include "base/event_loop.h"

#include <array>
#include <cerrno>
#include <string>
#include <utility>

namespace vmm {
namespace {

constexpr size_t kMaxEvents = 32;

uint64_t Key(int fd, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | static_cast<uint32_t>(fd);
}

}  // namespace

EventLoop::EventLoop(UniqueFd epfd) : epfd_(std::move(epfd)) {}

Result<EventLoop> EventLoop::Create() {
  UniqueFd fd(epoll_create1(EPOLL_CLOEXEC));
  if (!fd.valid()) return ErrnoError("epoll_create1");
  return EventLoop(std::move(fd));
}

Result<void> EventLoop::Add(int fd, uint32_t events, Callback callback) {
  if (fd < 0) return Error(ErrorKind::kInternal, "event loop: add of fd " + std::to_string(fd));
  if (entries_.contains(fd)) {
    return Error(ErrorKind::kInternal, "event loop: fd " + std::to_string(fd) + " added twice",
                 EEXIST);
  }
  const uint32_t generation = next_generation_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = Key(fd, generation);
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoError("epoll_ctl(ADD) of fd " + std::to_string(fd));
  }
  entries_.emplace(fd, Entry{generation, std::make_shared<Callback>(std::move(callback))});
  return Ok();
}

Result<void> EventLoop::Modify(int fd, uint32_t events) {
  auto it = entries_.find(fd);
  if (it == entries_.end()) {
    return Error(ErrorKind::kInternal,
                 "event loop: modify of fd " + std::to_string(fd) + ", which is not watched",
                 ENOENT);
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = Key(fd, it->second.generation);
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
    return ErrnoError("epoll_ctl(MOD) of fd " + std::to_string(fd));
  }
  return Ok();
}

void EventLoop::Remove(int fd) {
  auto it = entries_.find(fd);
  if (it == entries_.end()) return;
  // Fails only if the fd was closed already, which took it out of the set.
  epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  entries_.erase(it);
}

Result<size_t> EventLoop::RunOnce(int timeout_ms) {
  std::array<epoll_event, kMaxEvents> events;
  const int n = epoll_wait(epfd_.get(), events.data(), static_cast<int>(events.size()),
                           timeout_ms < 0 ? -1 : timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return size_t{0};
    return ErrnoError("epoll_wait");
  }
  size_t ran = 0;
  for (int i = 0; i < n; ++i) {
    const int fd = static_cast<int>(static_cast<uint32_t>(events[i].data.u64));
    const auto generation = static_cast<uint32_t>(events[i].data.u64 >> 32);
    auto it = entries_.find(fd);
    // Removed by an earlier callback of this batch, or removed and added again.
    if (it == entries_.end() || it->second.generation != generation) continue;
    // Held here: the callback may Remove its own fd, which drops the stored reference.
    std::shared_ptr<Callback> callback = it->second.callback;
    (*callback)(events[i].events);
    ++ran;
  }
  return ran;
}

Result<void> EventLoop::Run() {
  while (!stopped_) {
    if (auto r = RunOnce(-1); !r) {
      stopped_ = false;
      return r.error();
    }
  }
  stopped_ = false;
  return Ok();
}

Result<uint32_t> EventLoop::WaitFd(int fd, uint32_t events, int timeout_ms) {
  UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return ErrnoError("epoll_create1");
  epoll_event ev{};
  ev.events = events;
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoError("epoll_ctl(ADD) of fd " + std::to_string(fd));
  }
  epoll_event out{};
  const int n = epoll_wait(ep.get(), &out, 1, timeout_ms < 0 ? -1 : timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return uint32_t{0};
    return ErrnoError("epoll_wait");
  }
  return n == 0 ? 0 : out.events;
}

}  // namespace vmm
