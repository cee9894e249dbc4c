// EventLoop: one epoll instance, callbacks per fd, no threads. Every process of the VMM
// that waits on more than one fd (the VM process's control loop, a device's vhost-user
// session, the swtpm server, the manager's wait for its children) waits here.
//
//   ASSIGN_OR_RETURN(EventLoop loop, EventLoop::Create());
//   RETURN_IF_ERROR(loop.Add(sock, EPOLLIN, [&](uint32_t ev) { ... }));
//   RETURN_IF_ERROR(loop.Run());                 // until a callback calls loop.Stop()
//   // or, with a deadline of the caller's own:
//   ASSIGN_OR_RETURN(size_t ran, loop.RunOnce(timeout_ms));
//
// Events are epoll's (EPOLLIN, EPOLLOUT; EPOLLHUP and EPOLLERR are always reported),
// level-triggered. A callback may Add, Modify or Remove any fd, its own included, and
// Stop() the loop; an fd removed by an earlier callback of the same wait is not called,
// nor is one added in its place under the same number until the next wait. The loop does
// not own the fds: Remove() an fd before closing it. epoll drops a closed fd by itself
// only once every reference to its open file is gone, in any process (a peer may still
// hold an eventfd it sent), and until then it may report it, and refuse to add the same
// file again under the same number (EEXIST). EINTR ends a wait as a timeout does.
//
// Syscalls: epoll_create1(EPOLL_CLOEXEC), epoll_ctl, epoll_wait (glibc may use
// epoll_pwait), close: the ones every sandbox role allows (sandbox/syscall_sets.cc).
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmm {

class EventLoop {
 public:
  using Callback = std::function<void(uint32_t events)>;

  static Result<EventLoop> Create();

  EventLoop(EventLoop&&) noexcept = default;
  EventLoop& operator=(EventLoop&&) noexcept = default;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches `fd` for `events`; an fd already watched is an error (EEXIST).
  Result<void> Add(int fd, uint32_t events, Callback callback);
  // New events for a watched fd (its callback stays).
  Result<void> Modify(int fd, uint32_t events);
  // Stops watching `fd`; an fd not watched is not an error.
  void Remove(int fd);
  bool Watching(int fd) const { return entries_.contains(fd); }
  size_t size() const { return entries_.size(); }

  // Waits up to `timeout_ms` (-1: no limit, 0: do not wait) and runs the callbacks of the
  // fds that are ready. Returns how many ran: 0 on timeout or EINTR.
  Result<size_t> RunOnce(int timeout_ms = -1);
  // RunOnce until Stop() (true on return). Stop() before Run() returns at once; Run()
  // clears the flag when it returns, so the loop can run again.
  Result<void> Run();
  void Stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  // Waits up to `timeout_ms` for `events` on one fd, with a short-lived epoll instance:
  // the ready events (EPOLLHUP/EPOLLERR included), 0 on timeout or EINTR.
  static Result<uint32_t> WaitFd(int fd, uint32_t events, int timeout_ms);

 private:
  struct Entry {
    uint32_t generation;
    std::shared_ptr<Callback> callback;  // shared: a callback may Remove its own fd
  };
  explicit EventLoop(UniqueFd epfd);

  UniqueFd epfd_;
  std::unordered_map<int, Entry> entries_;
  uint32_t next_generation_ = 1;
  bool stopped_ = false;
};

}  // namespace vmm
