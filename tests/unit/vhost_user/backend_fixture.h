// A test front-end for the vhost-user back-end session: Backend::Run on its own thread at
// the far end of a socketpair, guest RAM in a sealed memfd that the test maps too, and a
// minimal split-ring driver laying out rings in it.
//
//   RngRig rig;                                   // or BlkRig
//   Session s(rig.dev);
//   GuestMemory mem; Driver drv(mem); RingFds fds;
//   Negotiate(s); StartRing(s, mem, drv, fds);
//   drv.Publish(drv.AddChain({{drv.Alloc(64), 64, true}}));
//   EXPECT_TRUE(fds.KickThenCalled());
//   EXPECT_EQ(s.Ended().error().kind(), ErrorKind::kProtocol);   // for a refused message
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/virtio/fake_driver.h"
#include "vmm/device/blk/blk.h"
#include "vmm/device/blk/block_backend.h"
#include "vmm/device/devices.h"
#include "vmm/device/rng/fake_entropy_source.h"
#include "vmm/device/vhost_user_backend.h"
#include "vmm/formats/vhost_user/socket.h"
#include "vmm/formats/virtio/features.h"

namespace vmm::vhost_user::testing {

inline constexpr uint64_t kRamSize = 1 << 20;
inline constexpr uint64_t kUserBase = 0x7f0000000000;  // where the "front-end" mapped RAM
inline constexpr uint16_t kQueueSize = 16;
inline constexpr uint64_t kDescGpa = 0x1000;
inline constexpr uint64_t kAvailGpa = kDescGpa + 16 * kQueueSize;
inline constexpr uint64_t kUsedGpa = 0x2000;
inline constexpr uint64_t kDataGpa = 0x10000;

inline UniqueFd Memfd(uint64_t size, int seals = F_SEAL_SHRINK | F_SEAL_GROW) {
  UniqueFd fd(memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  if (seals != 0) {
    EXPECT_EQ(fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  }
  return fd;
}

inline UniqueFd EventFd() { return UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

// Waits up to `ms` for `fd` to be signalled and consumes the count.
inline bool WaitSignalled(int fd, int ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return false;
  uint64_t count;
  return read(fd, &count, sizeof(count)) == sizeof(count);
}
inline bool Signalled(int fd) { return WaitSignalled(fd, 0); }
inline void Kick(int fd) {
  uint64_t one = 1;
  ASSERT_EQ(write(fd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
}

// Guest RAM: a sealed memfd, guest-physical 0 up, mapped here as the front-end maps it.
class GuestMemory {
 public:
  explicit GuestMemory(uint64_t size = kRamSize) : fd_(Memfd(size)), size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    EXPECT_NE(p, MAP_FAILED);
    base_ = static_cast<uint8_t*>(p);
  }
  ~GuestMemory() { munmap(base_, size_); }
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  int fd() const { return fd_.get(); }
  uint64_t size() const { return size_; }
  MemoryTable Table(uint64_t user = kUserBase) const { return {{{0, size_, user, 0}}}; }

  uint8_t* At(uint64_t gpa, uint64_t len) {
    if (gpa > size_ || len > size_ - gpa) abort();  // the test itself is wrong
    return base_ + gpa;
  }
  template <typename T>
  void Put(uint64_t gpa, T v) {
    std::memcpy(At(gpa, sizeof(T)), &v, sizeof(T));
  }
  template <typename T>
  T Get(uint64_t gpa) {
    T v;
    std::memcpy(&v, At(gpa, sizeof(T)), sizeof(T));
    return v;
  }
  void Write(uint64_t gpa, const std::vector<uint8_t>& bytes) {
    std::memcpy(At(gpa, bytes.size()), bytes.data(), bytes.size());
  }
  std::vector<uint8_t> Read(uint64_t gpa, uint64_t len) {
    uint8_t* p = At(gpa, len);
    return std::vector<uint8_t>(p, p + len);
  }

 private:
  UniqueFd fd_;
  uint64_t size_;
  uint8_t* base_ = nullptr;
};

// The driver side of one split ring of kQueueSize at kDescGpa/kAvailGpa/kUsedGpa.
class Driver : public virtio::testing::BasicFakeDriver<GuestMemory> {
 public:
  using Buf = BasicFakeDriver::Buf;
  explicit Driver(GuestMemory& mem)
      : BasicFakeDriver(mem, kQueueSize, kDescGpa, kDataGpa, kUsedGpa) {}

  // Front-end user addresses of the rings, as SET_VRING_ADDR carries them.
  VringAddress Address(uint64_t user = kUserBase) const {
    return {.index = 0,
            .flags = 0,
            .descriptor = user + desc_gpa(),
            .used = user + used_gpa(),
            .available = user + avail_gpa(),
            .log = 0};
  }
};

// Devices: each rig owns a core and its vhost-user adapter.
struct RngRig {
  virtio::FakeEntropySource entropy;  // bytes 1, 2, 3, ...
  virtio::RngDevice rng{entropy};
  device::RngVhostDevice dev{rng};
};

struct BlkRig {
  static constexpr uint64_t kImageSize = 1 << 20;
  BlkRig() {
    image.reset(open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    EXPECT_TRUE(image.valid());
    EXPECT_EQ(ftruncate(image.get(), kImageSize), 0);
    auto d = virtio::FdBlockBackend::Create(UniqueFd(dup(image.get())), false);
    EXPECT_TRUE(d.has_value());
    disk = std::move(d).value();
    auto b = virtio::BlkDevice::Create(*disk);
    EXPECT_TRUE(b.has_value());
    blk.emplace(std::move(b).value());
    dev.emplace(*blk);
  }
  UniqueFd image;  // the test's own view of the image
  std::unique_ptr<virtio::FdBlockBackend> disk;
  std::optional<virtio::BlkDevice> blk;
  std::optional<device::BlkVhostDevice> dev;
};

// One session: Backend::Run on a thread, the test as its front-end.
class Session {
 public:
  explicit Session(VirtioDevice& device, BackendOptions options = {}) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    front_.reset(sv[0]);
    back_.reset(sv[1]);
    timeval tv{5, 0};  // a missing reply fails the test instead of hanging it
    setsockopt(front_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    options.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      log_.push_back(line);
    };
    backend_ = std::make_unique<Backend>(device, back_.get(), std::move(options));
    done_ = verdict_promise_.get_future();
    thread_ = std::thread([this] { verdict_promise_.set_value(backend_->Run()); });
  }
  ~Session() { (void)Hangup(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int front() const { return front_.get(); }

  void Send(Request r, const Payload& p, std::vector<int> fds = {}, bool need_reply = false) {
    auto bytes = EncodeRequest(r, p, fds.size(), need_reply);
    ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
    SendRaw(*bytes, fds);
  }
  void SendRaw(const std::vector<uint8_t>& bytes, std::vector<int> fds = {}) {
    auto sent = SendMessage(front_.get(), bytes, fds);
    ASSERT_TRUE(sent.has_value()) << sent.error().ToString();
  }

  // The next reply, which must answer `expected`.
  std::optional<Message> Reply(Request expected) {
    auto m = ReceiveMessage(front_.get(), Direction::kReply);
    if (!m.has_value()) {
      ADD_FAILURE() << "no reply to " << RequestName(expected) << ": " << m.error().ToString();
      return std::nullopt;
    }
    if (!m->has_value()) {
      ADD_FAILURE() << "the back-end hung up instead of answering " << RequestName(expected);
      return std::nullopt;
    }
    EXPECT_EQ(RequestName((*m)->request), std::string(RequestName(expected)));
    return std::move(**m);
  }
  template <typename T>
  T Ask(Request r, const Payload& p = std::monostate{}) {
    Send(r, p);
    std::optional<Message> m = Reply(r);
    if (!m || !std::holds_alternative<T>(m->payload)) {
      ADD_FAILURE() << RequestName(r) << ": missing or mistyped reply";
      return T{};
    }
    return std::get<T>(m->payload);
  }
  // A request with NEED_REPLY, answered by REPLY_ACK 0.
  void Ack(Request r, const Payload& p, std::vector<int> fds = {}) {
    Send(r, p, fds, /*need_reply=*/true);
    std::optional<Message> m = Reply(r);
    ASSERT_TRUE(m && std::holds_alternative<uint64_t>(m->payload));
    EXPECT_EQ(std::get<uint64_t>(m->payload), 0u) << RequestName(r);
  }
  // A round trip: everything sent before has been handled.
  void Sync() { EXPECT_EQ(Ask<uint64_t>(Request::kGetQueueNum), 1u); }

  // The session's end, which the back-end must reach on its own (within 5 s).
  Result<void> Ended() {
    if (done_.valid() && done_.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      shutdown(front_.get(), SHUT_RDWR);
      (void)Join();
      return Error(ErrorKind::kInternal, "the back-end did not end the session");
    }
    return Join();
  }
  // Hangs up between messages; Run's verdict.
  Result<void> Hangup() {
    if (front_.valid()) shutdown(front_.get(), SHUT_RDWR);
    return Join();
  }
  // Closes the front-end's end of the socket for writing only, e.g. inside a message.
  void StopWriting() { shutdown(front_.get(), SHUT_WR); }

  std::vector<std::string> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  Result<void> Join() {
    if (thread_.joinable()) {
      thread_.join();
      verdict_ = done_.get();
    }
    return verdict_.value_or(Error(ErrorKind::kInternal, "no verdict"));
  }

  UniqueFd front_, back_;
  std::mutex mu_;
  std::vector<std::string> log_;
  std::unique_ptr<Backend> backend_;
  std::promise<Result<void>> verdict_promise_;
  std::future<Result<void>> done_;
  std::optional<Result<void>> verdict_;
  std::thread thread_;
};

// GET/SET_FEATURES (all offered but EVENT_IDX, so every used buffer notifies) and
// GET/SET_PROTOCOL_FEATURES (all offered, REPLY_ACK among them).
inline void Negotiate(Session& s) {
  uint64_t features = s.Ask<uint64_t>(Request::kGetFeatures);
  s.Send(Request::kSetFeatures, features & ~virtio::kVirtioRingFEventIdx);
  uint64_t protocol = s.Ask<uint64_t>(Request::kGetProtocolFeatures);
  s.Ack(Request::kSetProtocolFeatures, protocol);
}

struct RingFds {
  UniqueFd kick = EventFd(), call = EventFd(), err = EventFd();

  // Kicks the ring, then waits for the back-end to signal used buffers on the call fd.
  bool KickThenCalled() {
    const uint64_t one = 1;
    if (write(kick.get(), &one, sizeof(one)) != static_cast<ssize_t>(sizeof(one))) return false;
    return WaitSignalled(call.get());
  }
};

// QEMU's order: memory table, then NUM, BASE, ADDR, CALL, ERR, KICK, ENABLE.
inline void StartRing(Session& s, GuestMemory& mem, Driver& drv, RingFds& fds) {
  s.Ack(Request::kSetMemTable, mem.Table(), {mem.fd()});
  s.Ack(Request::kSetVringNum, VringState{0, kQueueSize});
  s.Ack(Request::kSetVringBase, VringState{0, 0});
  s.Ack(Request::kSetVringAddr, drv.Address());
  s.Ack(Request::kSetVringCall, VringFd{0, false}, {fds.call.get()});
  s.Ack(Request::kSetVringErr, VringFd{0, false}, {fds.err.get()});
  s.Ack(Request::kSetVringKick, VringFd{0, false}, {fds.kick.get()});
  s.Ack(Request::kSetVringEnable, VringState{0, 1});
}

inline VirtioDevice& DeviceOf(RngRig& rig) { return rig.dev; }
inline VirtioDevice& DeviceOf(BlkRig& rig) { return *rig.dev; }

// A session with its features negotiated and ring 0 started (StartRing) on a device rig.
// Tests take its parts by name:
//   StartedRing<RngRig> t;
//   auto& [rig, s, mem, drv, fds] = t;
template <typename Rig>
struct StartedRing {
  Rig rig;
  Session s{DeviceOf(rig)};
  GuestMemory mem;
  Driver drv{mem};
  RingFds fds;
  StartedRing() {
    Negotiate(s);
    StartRing(s, mem, drv, fds);
  }
};

inline bool IsProtocolError(const Result<void>& r) {
  return !r.has_value() && r.error().kind() == ErrorKind::kProtocol;
}

}  // namespace vmm::vhost_user::testing
