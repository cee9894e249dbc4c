// Drives one vhost-user-blk back-end the way a VMM would, with no VM: guest RAM is a sealed
// memfd mapped here, the front-end is our own library (vmm/vm/virtio_mmio/vhost_user_frontend.h),
// and this process is the guest driver too, with one split ring of 128 entries at queue depth 1.
// Times 4 KiB random READs, then 4 KiB random WRITEs, each from the avail-ring publish and
// the kick to the call eventfd and the used ring, and prints one line of figures.
//
//   backend_bench --socket build/bench-backends/vmm.sock --requests 20000 --name vmm-device
//   -> backend_bench: name=vmm-device read_iops=... read_p50_us=... ... write_p99_us=...
//
// Features: VERSION_1 and FLUSH (--no-flush: VERSION_1 only, i.e. write-through).
//
// The request offsets come from a seeded generator, so every back-end sees the same ones.
//
// A back-end that stops answering ends the run within --stall seconds (default 15) with
// "no progress ... the peer stopped answering" and exit status 1 (bench/common/watchdog.h):
// the vhost-user messages block, so bench/backends/run.sh would otherwise wait for ever.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/cli.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "bench/common/watchdog.h"
#include "vmm/device/blk/blk.h"
#include "vmm/formats/virtio/features.h"
#include "vmm/vm/virtio_mmio/vhost_user_frontend.h"

namespace {

using vmm::Error;
using vmm::ErrorKind;
using vmm::Result;
using vmm::UniqueFd;
namespace vu = vmm::vhost_user;
namespace virtio = vmm::virtio;

constexpr uint64_t kRamSize = 64 << 20;
constexpr uint16_t kQueueSize = 128;
constexpr uint32_t kBlock = 4096;
// Guest-physical layout: the three ring parts (virtio 1.2 §2.7: desc 16-, avail 2-, used
// 4-byte aligned; page-aligned here), then one request's header, status and data.
constexpr uint64_t kDescGpa = 0x1000;
constexpr uint64_t kAvailGpa = 0x2000;
constexpr uint64_t kUsedGpa = 0x3000;
constexpr uint64_t kHeaderGpa = 0x10000;
constexpr uint64_t kStatusGpa = 0x10010;
constexpr uint64_t kDataGpa = 0x11000;
constexpr uint16_t kDescFNext = 1;
constexpr uint16_t kDescFWrite = 2;

struct Options {
  std::string socket;
  std::string name = "back-end";
  uint64_t requests = 20000;
  uint64_t warmup = 2000;
  uint64_t span = 256ull << 20;  // bytes of the image the offsets cover
  uint64_t seed = 1;
  int connect_timeout_ms = 10000;
  int stall_s = 15;   // no progress for this long: the back-end stopped answering
  bool flush = true;  // negotiate VIRTIO_BLK_F_FLUSH: a write-back cache, as a Linux guest has
};

double NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// Guest RAM as a VMM creates it: a memfd whose size is sealed, mapped shared.
class GuestRam {
 public:
  static Result<GuestRam> Create(uint64_t size) {
    UniqueFd fd(memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd.valid()) return vmm::ErrnoError("memfd_create");
    if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return vmm::ErrnoError("ftruncate");
    if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
      return vmm::ErrnoError("F_ADD_SEALS");
    }
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) return vmm::ErrnoError("mmap guest RAM");
    return GuestRam(std::move(fd), static_cast<uint8_t*>(p), size);
  }
  GuestRam(GuestRam&& o) noexcept
      : fd_(std::move(o.fd_)), base_(std::exchange(o.base_, nullptr)), size_(o.size_) {}
  ~GuestRam() {
    if (base_ != nullptr) munmap(base_, size_);
  }

  int fd() const { return fd_.get(); }
  uint64_t size() const { return size_; }
  uint8_t* At(uint64_t gpa) { return base_ + gpa; }  // callers use the fixed layout above
  template <typename T>
  std::atomic_ref<T> Ref(uint64_t gpa) {
    return std::atomic_ref<T>(*reinterpret_cast<T*>(At(gpa)));
  }

 private:
  GuestRam(UniqueFd fd, uint8_t* base, uint64_t size)
      : fd_(std::move(fd)), base_(base), size_(size) {}
  UniqueFd fd_;
  uint8_t* base_;
  uint64_t size_;
};

// The guest's side of the one queue at depth 1: descriptors 0-2 always hold the request.
class BlkQueue {
 public:
  BlkQueue(GuestRam& ram, int kick, int call) : ram_(ram), kick_(kick), call_(call) {}

  // One request; returns its latency in µs.
  Result<double> Do(bool is_write, uint64_t sector) {
    const uint32_t type = is_write ? virtio::kVirtioBlkTOut : virtio::kVirtioBlkTIn;
    std::memcpy(ram_.At(kHeaderGpa), &type, 4);
    std::memset(ram_.At(kHeaderGpa + 4), 0, 4);
    std::memcpy(ram_.At(kHeaderGpa + 8), &sector, 8);
    *ram_.At(kStatusGpa) = 0xff;
    Desc(0, kHeaderGpa, virtio::kBlkRequestHeaderSize, kDescFNext, 1);
    Desc(1, kDataGpa, kBlock, static_cast<uint16_t>(kDescFNext | (is_write ? 0 : kDescFWrite)), 2);
    Desc(2, kStatusGpa, 1, kDescFWrite, 0);
    ram_.Ref<uint16_t>(kAvailGpa + 4 + 2 * (avail_ % kQueueSize))
        .store(0, std::memory_order_relaxed);

    const double start = NowUs();
    ++avail_;
    ram_.Ref<uint16_t>(kAvailGpa + 2).store(avail_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // idx before the kick (§2.7.13)
    const uint64_t one = 1;
    if (write(kick_, &one, sizeof(one)) != sizeof(one)) return vmm::ErrnoError("kick");
    while (ram_.Ref<uint16_t>(kUsedGpa + 2).load(std::memory_order_acquire) != avail_) {
      pollfd p{call_, POLLIN, 0};
      int n = poll(&p, 1, 5000);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return Error(ErrorKind::kProtocol, "no used buffer within 5 s of the kick");
      if (n < 0) return vmm::ErrnoError("poll call eventfd");
      uint64_t count;
      if (read(call_, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        return vmm::ErrnoError("read call eventfd");
      }
    }
    const double us = NowUs() - start;

    const uint64_t elem = kUsedGpa + 4 + 8ull * ((avail_ - 1) % kQueueSize);
    const uint32_t id = ram_.Ref<uint32_t>(elem).load(std::memory_order_relaxed);
    const uint32_t len = ram_.Ref<uint32_t>(elem + 4).load(std::memory_order_relaxed);
    const uint8_t status = *ram_.At(kStatusGpa);
    // §2.7.8.1: len is the bytes written into the device-writable buffers.
    const uint32_t want_len = is_write ? 1 : kBlock + 1;
    if (id != 0 || status != virtio::kVirtioBlkSOk || len != want_len) {
      return Error(ErrorKind::kProtocol, std::string(is_write ? "WRITE" : "READ") + " sector " +
                                             std::to_string(sector) + ": used id " +
                                             std::to_string(id) + " len " + std::to_string(len) +
                                             " (want " + std::to_string(want_len) + "), status " +
                                             std::to_string(status));
    }
    return us;
  }
  uint16_t avail_idx() const { return avail_; }
  uint8_t* data() { return ram_.At(kDataGpa); }

 private:
  void Desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t* d = ram_.At(kDescGpa + 16ull * i);
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  }

  GuestRam& ram_;
  int kick_, call_;
  uint16_t avail_ = 0;
};

Result<UniqueFd> ConnectUnix(const std::string& path, int timeout_ms) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return vmm::InvalidArgument("--socket: path too long");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const double deadline = NowUs() + timeout_ms * 1e3;
  while (true) {  // the back-end may still be starting up
    UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return vmm::ErrnoError("socket");
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return s;
    if ((errno != ENOENT && errno != ECONNREFUSED) || NowUs() > deadline) {
      return vmm::ErrnoError("connect '" + path + "'");
    }
    usleep(20000);
  }
}

struct Figures {
  double iops = 0, p50_us = 0, p99_us = 0;
};

Figures Summarize(std::vector<double> lat, double wall_us) {
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(lat.size()));
    return lat[std::min(i, lat.size() - 1)];
  };
  return {static_cast<double>(lat.size()) / (wall_us / 1e6), pct(0.50), pct(0.99)};
}

Result<void> Run(const Options& o) {
  bench::Watchdog dog("backend_bench: " + o.name, o.stall_s);
  ASSIGN_OR_RETURN(GuestRam ram, GuestRam::Create(kRamSize));
  dog.Progress("connect");
  ASSIGN_OR_RETURN(UniqueFd sock, ConnectUnix(o.socket, o.connect_timeout_ms));
  dog.Progress("the vhost-user handshake");
  ASSIGN_OR_RETURN(vu::Frontend fe, vu::Frontend::Connect(std::move(sock)));
  // No EVENT_IDX, so every used buffer is signalled; no indirect descriptors. FLUSH matters:
  // without it our device makes every write stable before completing it (virtio 1.2
  // §5.2.6.2, an fdatasync per write), which qemu-storage-daemon 7.2 does not do.
  RETURN_IF_ERROR(
      fe.SetFeatures(virtio::kVirtioFVersion1 | (o.flush ? virtio::kVirtioBlkFFlush : 0)));
  ASSIGN_OR_RETURN(std::vector<uint8_t> config, fe.GetConfig(8));
  if (config.size() == 8) {
    uint64_t sectors;
    std::memcpy(&sectors, config.data(), 8);
    if (sectors * virtio::kSectorSize < o.span) {
      return vmm::InvalidArgument("the image holds " + std::to_string(sectors) +
                                  " sectors, fewer than --span-mib covers");
    }
  }
  const vu::GuestRegion region{0, ram.size(), 0};
  RETURN_IF_ERROR(fe.SetMemTable({&region, 1}, ram.fd()));
  UniqueFd kick(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  UniqueFd call(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!kick.valid() || !call.valid()) return vmm::ErrnoError("eventfd");
  RETURN_IF_ERROR(
      fe.StartQueue(0, {kQueueSize, kDescGpa, kAvailGpa, kUsedGpa}, kick.get(), call.get()));
  dog.Progress("the first requests");

  BlkQueue q(ram, kick.get(), call.get());
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<uint64_t> block(0, o.span / kBlock - 1);
  auto sector = [&] { return block(rng) * (kBlock / virtio::kSectorSize); };

  // A write, then a read of the same block, must bring the bytes back.
  const uint64_t probe = sector();
  for (uint32_t i = 0; i < kBlock; ++i) q.data()[i] = static_cast<uint8_t>(i * 7 + o.seed);
  std::vector<uint8_t> written(q.data(), q.data() + kBlock);
  RETURN_IF_ERROR(q.Do(true, probe));
  std::memset(q.data(), 0, kBlock);
  RETURN_IF_ERROR(q.Do(false, probe));
  if (std::memcmp(q.data(), written.data(), kBlock) != 0) {
    return Error(ErrorKind::kProtocol,
                 "READ after WRITE of sector " + std::to_string(probe) + " returned other bytes");
  }

  Figures f[2];
  for (int w = 0; w < 2; ++w) {
    const char* step = w ? "the WRITE requests" : "the READ requests";
    for (uint64_t i = 0; i < o.warmup; ++i) {
      RETURN_IF_ERROR(q.Do(w == 1, sector()));
      dog.Progress(step);
    }
    std::vector<double> lat;
    lat.reserve(o.requests);
    const double start = NowUs();
    for (uint64_t i = 0; i < o.requests; ++i) {
      ASSIGN_OR_RETURN(double us, q.Do(w == 1, sector()));
      lat.push_back(us);
      dog.Progress(step);
    }
    f[w] = Summarize(std::move(lat), NowUs() - start);
  }

  // GET_VRING_BASE must report every request we made available as consumed.
  dog.Progress("GET_VRING_BASE");
  ASSIGN_OR_RETURN(uint32_t base, fe.StopQueue(0));
  if (base != q.avail_idx()) {
    return Error(ErrorKind::kProtocol, "GET_VRING_BASE says " + std::to_string(base) +
                                           ", the driver made " + std::to_string(q.avail_idx()) +
                                           " available");
  }
  std::printf(
      "backend_bench: name=%s flush=%s requests=%llu read_iops=%.0f read_p50_us=%.1f "
      "read_p99_us=%.1f write_iops=%.0f write_p50_us=%.1f write_p99_us=%.1f\n",
      o.name.c_str(), o.flush ? "on" : "off", static_cast<unsigned long long>(o.requests),
      f[0].iops, f[0].p50_us, f[0].p99_us, f[1].iops, f[1].p50_us, f[1].p99_us);
  return vmm::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  uint64_t span_mib = o.span >> 20;
  CLI::App app{"Times 4 KiB random reads and writes against a vhost-user-blk back-end",
               "backend_bench"};
  app.add_option("--socket", o.socket, "the back-end's vhost-user socket")->required();
  app.add_option("--name", o.name, "the back-end's name in the output");
  app.add_option("--requests", o.requests, "timed requests of each kind")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  app.add_option("--warmup", o.warmup, "untimed requests first");
  app.add_option("--span-mib", span_mib, "MiB of the image the offsets cover")
      ->check(CLI::Range(uint64_t{1}, (uint64_t{1} << 40) - 1));
  app.add_option("--seed", o.seed, "the offsets' random seed");
  app.add_option("--stall", o.stall_s, "give up after this many seconds without progress")
      ->check(CLI::Range(0, 99999));
  app.add_flag("!--no-flush", o.flush, "do not negotiate VIRTIO_BLK_F_FLUSH");
  if (std::optional<int> done = vmm::ParseCommandLine(app, argc, argv, "backend_bench")) {
    return *done;
  }
  o.span = span_mib << 20;
  auto r = Run(o);
  if (!r) {
    std::fprintf(stderr, "backend_bench: %s: error: %s\n", o.name.c_str(),
                 r.error().ToString().c_str());
    return 1;
  }
  return 0;
}
