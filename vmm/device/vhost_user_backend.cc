#include "vmm/device/vhost_user_backend.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "base/event_loop.h"
#include "vmm/formats/vhost_user/socket.h"
#include "vmm/formats/virtio/features.h"

namespace vmm::vhost_user {
namespace {

Error ProtocolError(Request r, const std::string& what) {
  return Error(ErrorKind::kProtocol, std::string(RequestName(r)) + ": " + what);
}

void Signal(const UniqueFd& fd) {
  if (!fd.valid()) return;
  uint64_t one = 1;
  (void)!write(fd.get(), &one, sizeof(one));
}

// Guest RAM must stay as large as the region says for as long as it is mapped: a peer that
// shrinks the file afterwards would turn a guest buffer into SIGBUS in this process.
Result<void> CheckRegionFd(int fd, const MemoryRegion& r) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
    return Error(ErrorKind::kProtocol,
                 "memory region fd is not a memfd sealed against shrinking (F_SEAL_SHRINK): "
                 "use a sealed memfd (QEMU: -object memory-backend-memfd,share=on)");
  }
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0) return Error(ErrorKind::kSystem, "lseek of a memory region fd", errno);
  uint64_t end = r.mmap_offset + r.memory_size;
  if (end < r.mmap_offset || end > static_cast<uint64_t>(size)) {
    return Error(ErrorKind::kProtocol,
                 "memory region [mmap_offset, +memory_size) runs past the end of its memfd");
  }
  return Ok();
}

}  // namespace

uint64_t OfferedProtocolFeatures(const VirtioDevice& device) {
  uint64_t f = ProtocolBit(kProtocolMq) | ProtocolBit(kProtocolReplyAck);
  // CONFIG only for devices that have a config space: QEMU's vhost-user-rng warns otherwise.
  if (!device.config().empty()) f |= ProtocolBit(kProtocolConfig);
  return f;
}

Backend::Backend(VirtioDevice& device, int sock, BackendOptions options)
    : device_(device), sock_(sock), options_(std::move(options)), rings_(device.num_queues()) {}

Backend::~Backend() {
  rings_.clear();
  UnmapAll();
}

void Backend::Log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "vhost-user %s: %s\n", device_.name(), line.c_str());
  }
}

void Backend::UnmapAll() {
  for (Mapping& m : maps_) munmap(m.base, m.length);
  maps_.clear();
  ram_ = virtio::GuestRam();
}

bool Backend::ring_started(uint32_t index) const {
  return index < rings_.size() && rings_[index].started && rings_[index].queue.has_value();
}

Result<void> Backend::Reply(Request request, const Payload& payload) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeReply(request, payload));
  return SendMessage(sock_, bytes);
}

Result<Backend::Ring*> Backend::RingAt(uint32_t index) {
  if (index >= rings_.size()) {
    return Error(ErrorKind::kProtocol, "vring index " + std::to_string(index) + " but the " +
                                           device_.name() + " device has " +
                                           std::to_string(rings_.size()) + " queue(s)");
  }
  return &rings_[index];
}

Result<uint64_t> Backend::ToGuestPhysical(uint64_t user_addr, const char* what) const {
  for (const Mapping& m : maps_) {
    const MemoryRegion& r = m.region;
    if (user_addr >= r.userspace_addr && user_addr - r.userspace_addr < r.memory_size) {
      return r.guest_phys_addr + (user_addr - r.userspace_addr);
    }
  }
  return Error(ErrorKind::kProtocol,
               std::string("SET_VRING_ADDR: the ") + what + " address is in no memory region");
}

Result<void> Backend::SetMemTable(Message& m) {
  const auto& table = std::get<MemoryTable>(m.payload);
  for (Ring& r : rings_) DropQueue(r);  // they point into the old mappings
  UnmapAll();
  for (size_t i = 0; i < table.regions.size(); ++i) {
    const MemoryRegion& r = table.regions[i];
    int fd = m.fds[i].get();
    RETURN_IF_ERROR(CheckRegionFd(fd, r));
    size_t length = r.mmap_offset + r.memory_size;
    void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED) return Error(ErrorKind::kSystem, "mmap of guest RAM", errno);
    maps_.push_back({static_cast<uint8_t*>(base), length, r});
    RETURN_IF_ERROR(ram_.AddRegion(
        {r.guest_phys_addr, r.memory_size, static_cast<uint8_t*>(base) + r.mmap_offset}));
  }
  // Rings already running continue over the new table, where they stopped.
  for (uint32_t i = 0; i < rings_.size(); ++i) {
    if (rings_[i].started && !rings_[i].broken) StartRing(i);
  }
  return Ok();
}

// The ring resumes (or GET_VRING_BASE reports) where the dropped queue stopped, not at the
// last SET_VRING_BASE: restarting there would replay requests and move the used idx back.
void Backend::DropQueue(Ring& ring) {
  if (ring.queue) ring.base = ring.queue->next_avail();
  ring.queue.reset();
}

void Backend::BreakRing(uint32_t index, const std::string& why) {
  Ring& ring = rings_[index];
  ring.broken = true;
  DropQueue(ring);
  Log("queue " + std::to_string(index) + " stopped: " + why);
  Signal(ring.err);
}

void Backend::StartRing(uint32_t index) {
  Ring& ring = rings_[index];
  ring.started = true;
  if (ring.broken || !ring.addr || ring.num == 0 || maps_.empty()) return;
  virtio::QueueConfig config;
  config.size = ring.num;
  config.desc_gpa = ring.addr->descriptor;
  config.avail_gpa = ring.addr->available;
  config.used_gpa = ring.addr->used;
  config.event_idx = (acked_features_ & virtio::kVirtioRingFEventIdx) != 0;
  config.indirect = (acked_features_ & virtio::kVirtioRingFIndirectDesc) != 0;
  config.avail_base = ring.queue ? ring.queue->next_avail() : ring.base;
  auto q = virtio::SplitQueue::Create(ram_, config, device_.queue_limits());
  if (!q) return BreakRing(index, q.error().ToString());
  ring.queue.emplace(std::move(q).value());
}

void Backend::StopRing(Ring& ring) {
  ring.started = false;
  ring.broken = false;
  ring.queue.reset();
  ring.kick.reset();
}

Result<void> Backend::Serve(uint32_t index) {
  Ring& ring = rings_[index];
  if (!ring.queue || !ring.enabled) return Ok();
  for (int round = 0; round < 64; ++round) {
    auto run = device_.ProcessQueue(index, *ring.queue);
    if (!run) {
      BreakRing(index, run.error().ToString());
      return Ok();
    }
    if (run->notify) Signal(ring.call);
    if (!run->more) break;
  }
  return Ok();
}

Result<void> Backend::ServeForTest(uint32_t index) {
  RETURN_IF_ERROR(RingAt(index));
  return Serve(index);
}

Result<void> Backend::Handle(Message& m) {
  const Request req = m.request;
  bool acked = false;  // whether this request's reply, if any, is a REPLY_ACK
  switch (req) {
    case Request::kGetFeatures:
      return Reply(req, device_.features() | kFProtocolFeatures);
    case Request::kSetFeatures: {
      uint64_t f = std::get<uint64_t>(m.payload);
      uint64_t offered = device_.features() | kFProtocolFeatures;
      if (f & ~offered) return ProtocolError(req, "acks features that were not offered");
      acked_features_ = f & ~kFProtocolFeatures;
      device_.SetDriverFeatures(acked_features_);
      // Without protocol features rings start enabled ("Ring states").
      if (!(f & kFProtocolFeatures)) {
        for (Ring& r : rings_) r.enabled = true;
      }
      acked = true;
      break;
    }
    case Request::kGetProtocolFeatures:
      return Reply(req, OfferedProtocolFeatures(device_));
    case Request::kSetProtocolFeatures: {
      uint64_t f = std::get<uint64_t>(m.payload);
      if (f & ~OfferedProtocolFeatures(device_)) {
        return ProtocolError(req, "acks protocol features that were not offered");
      }
      protocol_features_ = f;
      acked = true;
      break;
    }
    case Request::kSetOwner:
    case Request::kResetOwner:
      if (req == Request::kResetOwner) {
        for (Ring& r : rings_) StopRing(r);
      }
      acked = true;
      break;
    case Request::kGetQueueNum:
      return Reply(req, uint64_t{rings_.size()});
    case Request::kSetMemTable:
      RETURN_IF_ERROR(SetMemTable(m));
      acked = true;
      break;
    case Request::kSetVringNum: {
      auto s = std::get<VringState>(m.payload);
      ASSIGN_OR_RETURN(Ring * ring, RingAt(s.index));
      if (s.num > options_.max_queue_size || (s.num & (s.num - 1)) != 0) {
        return ProtocolError(req, "queue size " + std::to_string(s.num) +
                                      " is not a power of 2 up to " +
                                      std::to_string(options_.max_queue_size));
      }
      ring->num = s.num;
      acked = true;
      break;
    }
    case Request::kSetVringAddr: {
      auto a = std::get<VringAddress>(m.payload);
      ASSIGN_OR_RETURN(Ring * ring, RingAt(a.index));
      if (a.flags & kVringFlagLog) return ProtocolError(req, "logging is not supported");
      VringAddress gpa = a;
      ASSIGN_OR_RETURN(gpa.descriptor, ToGuestPhysical(a.descriptor, "descriptor"));
      ASSIGN_OR_RETURN(gpa.used, ToGuestPhysical(a.used, "used ring"));
      ASSIGN_OR_RETURN(gpa.available, ToGuestPhysical(a.available, "available ring"));
      ring->addr = gpa;
      acked = true;
      break;
    }
    case Request::kSetVringBase: {
      auto s = std::get<VringState>(m.payload);
      ASSIGN_OR_RETURN(Ring * ring, RingAt(s.index));
      if (s.num > 0xFFFF) return ProtocolError(req, "base above 65535 for a split ring");
      ring->base = static_cast<uint16_t>(s.num);
      acked = true;
      break;
    }
    case Request::kGetVringBase: {
      auto s = std::get<VringState>(m.payload);
      ASSIGN_OR_RETURN(Ring * ring, RingAt(s.index));
      uint32_t next = ring->queue ? ring->queue->next_avail() : ring->base;
      StopRing(*ring);
      ring->base = static_cast<uint16_t>(next);
      return Reply(req, VringState{s.index, next});
    }
    case Request::kSetVringKick:
    case Request::kSetVringCall:
    case Request::kSetVringErr: {
      auto v = std::get<VringFd>(m.payload);
      ASSIGN_OR_RETURN(Ring * ring, RingAt(v.index));
      UniqueFd fd = v.no_fd ? UniqueFd() : std::move(m.fds[0]);
      // Non-blocking, so that a peer that drains our kick fd, or never reads our call fd,
      // stalls nothing here (an eventfd's write blocks only at a full counter).
      if (fd.valid() && fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) | O_NONBLOCK) != 0) {
        return ProtocolError(req, "cannot make the fd non-blocking");
      }
      if (req == Request::kSetVringKick) {
        if (v.no_fd) return ProtocolError(req, "polling rings without a kick fd is not supported");
        ring->kick = std::move(fd);
        StartRing(v.index);  // "Starting and stopping rings": started by SET_VRING_KICK
      } else if (req == Request::kSetVringCall) {
        ring->call = std::move(fd);
      } else {
        ring->err = std::move(fd);
      }
      acked = true;
      break;
    }
    case Request::kSetVringEnable: {
      auto s = std::get<VringState>(m.payload);
      ASSIGN_OR_RETURN(Ring * ring, RingAt(s.index));
      ring->enabled = s.num == 1;
      if (ring->enabled) RETURN_IF_ERROR(Serve(s.index));  // buffers added while disabled
      acked = true;
      break;
    }
    case Request::kGetConfig: {
      auto c = std::get<DeviceConfig>(m.payload);
      std::span<const uint8_t> cfg = device_.config();
      DeviceConfig out = c;
      std::fill(out.bytes.begin(), out.bytes.end(), 0);
      for (size_t i = 0; i < out.bytes.size(); ++i) {
        if (c.offset + i < cfg.size()) out.bytes[i] = cfg[c.offset + i];
      }
      return Reply(req, out);
    }
    case Request::kSetConfig:
      // No device of ours has a writable config field (blk's writeback is not offered).
      Log("SET_CONFIG refused: no writable config fields");
      if ((protocol_features_ & ProtocolBit(kProtocolReplyAck)) && m.need_reply()) {
        return Reply(req, uint64_t{1});
      }
      return Ok();
    default:
      return ProtocolError(req, "not supported by this back-end (not offered)");
  }
  if (acked && (protocol_features_ & ProtocolBit(kProtocolReplyAck)) && m.need_reply()) {
    return Reply(req, uint64_t{0});
  }
  return Ok();
}

Result<void> Backend::Run() {
  ASSIGN_OR_RETURN(EventLoop loop, EventLoop::Create());
  std::optional<Error> failed;
  bool sock_ready = false;
  RETURN_IF_ERROR(loop.Add(sock_, EPOLLIN, [&](uint32_t) { sock_ready = true; }));
  // The kick fds of the running rings. A message may close, replace or drop any of them,
  // so all leave the loop before each message, while still open (epoll keeps a closed fd
  // whose eventfd the front-end still holds), and the running rings' join it afterwards.
  std::vector<int> watched;
  auto unwatch_kicks = [&] {
    for (int fd : watched) loop.Remove(fd);
    watched.clear();
  };
  auto watch_kicks = [&]() -> Result<void> {
    for (uint32_t i = 0; i < rings_.size(); ++i) {
      if (!rings_[i].kick.valid() || !rings_[i].queue) continue;
      const int fd = rings_[i].kick.get();
      RETURN_IF_ERROR(loop.Add(fd, EPOLLIN, [&, i, fd](uint32_t events) {
        if (failed) return;
        if (!rings_[i].queue) {  // broken by an earlier kick: not watched until a message
          loop.Remove(fd);
          std::erase(watched, fd);
          return;
        }
        if (auto r = OnKickReady(i, fd, events); !r) failed = r.error();
      }));
      watched.push_back(fd);
    }
    return Ok();
  };
  RETURN_IF_ERROR(watch_kicks());
  RETURN_IF_ERROR(device_.Attach(loop));
  auto serve_pending = [&]() -> Result<void> {
    const uint64_t pending = device_.PendingQueues();
    for (uint32_t i = 0; i < rings_.size() && i < 64; ++i) {
      if (pending & (uint64_t{1} << i)) RETURN_IF_ERROR(Serve(i));
    }
    return Ok();
  };
  for (;;) {
    // The rings' kicks of one wait are served first, then one message, as before.
    ASSIGN_OR_RETURN(size_t ran, loop.RunOnce(-1));
    (void)ran;
    if (failed) return *failed;
    RETURN_IF_ERROR(serve_pending());
    if (!std::exchange(sock_ready, false)) continue;
    ASSIGN_OR_RETURN(std::optional<Message> m, ReceiveMessage(sock_, Direction::kRequest));
    if (!m) return Ok();  // the front-end hung up
    unwatch_kicks();
    RETURN_IF_ERROR(Handle(*m));
    RETURN_IF_ERROR(watch_kicks());
    RETURN_IF_ERROR(serve_pending());
  }
}

Result<void> Backend::OnKickReady(uint32_t index, int fd, uint32_t events) {
  // An eventfd never hangs up nor reads as EOF. Anything else (a pipe whose writer the
  // front-end closed) would stay ready forever and spin this loop.
  auto not_eventfd = [&] {
    return Error(ErrorKind::kProtocol, "queue " + std::to_string(index) +
                                           ": the kick fd hung up (it must be an eventfd)");
  };
  if (events & (EPOLLHUP | EPOLLERR)) return not_eventfd();
  if (!(events & EPOLLIN)) return Ok();
  uint64_t count;
  ssize_t n = read(fd, &count, sizeof(count));
  if (n < 0 && errno != EAGAIN) {
    return Error(ErrorKind::kSystem, "read of a kick eventfd", errno);
  }
  if (n == 0) return not_eventfd();
  return Serve(index);
}

}  // namespace vmm::vhost_user
