// A hostile vhost-user front-end and a hostile guest against the back-end session
// (vmm/device/vhost_user_backend.h) serving the rng device: the input is a script of requests
// (built with the codec from fuzzer-chosen fields, with fuzzer-chosen fds: the sealed RAM
// memfd, an unsealed or too small memfd, /dev/null, eventfds; or raw bytes through Decode),
// kicks, and guest writes into the 64 KiB of RAM behind the memory table, rings included.
//
// Checked: nothing crashes or touches memory outside what the table maps (ASan, SIGSEGV);
// a session ends only with a kProtocol or kSystem Error; every reply the back-end sends
// decodes as a strict reply; no fd outlives the Backend and the messages that carried it.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"
#include "vmm/device/devices.h"
#include "vmm/device/rng/fake_entropy_source.h"
#include "vmm/device/vhost_user_backend.h"
#include "vmm/formats/vhost_user/socket.h"

namespace {

using namespace vmm;
using namespace vmm::vhost_user;

constexpr uint64_t kRamSize = 64 * 1024;
constexpr uint64_t kUser = 0x7f0000000000;  // the front-end's address of RAM in good tables
constexpr size_t kMaxOps = 96;

// Guest RAM shared by all runs: one sealed memfd, mapped here as the "front-end" maps it;
// cleared before each run.
struct Ram {
  Ram() {
    fd = memfd_create("fuzz-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0 && ftruncate(fd, kRamSize) == 0);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    void* p = mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    base = static_cast<uint8_t*>(p);
  }
  int fd;
  uint8_t* base;
};

size_t OpenFdCount() {
  DIR* dir = opendir("/proc/self/fd");
  CHECK(dir != nullptr);
  size_t n = 0;
  while (dirent* e = readdir(dir))
    if (e->d_name[0] != '.') ++n;
  closedir(dir);
  return n - 1;
}

UniqueFd Memfd(uint64_t size, int seals) {
  UniqueFd fd(memfd_create("fuzz-region", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  CHECK(fd.valid() && ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
  if (seals != 0) CHECK(fcntl(fd.get(), F_ADD_SEALS, seals) == 0);
  return fd;
}

// An fd of the kind the input picks; the RAM memfd most often.
UniqueFd PickFd(FuzzReader& in, const Ram& ram) {
  switch (in.U8() % 8) {
    case 0:
      return Memfd(kRamSize, 0);  // not sealed
    case 1:
      return Memfd(4096, F_SEAL_SHRINK);  // smaller than the table says
    case 2:
      return UniqueFd(open("/dev/null", O_RDWR | O_CLOEXEC));
    case 3:
      return UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    default:
      return UniqueFd(fcntl(ram.fd, F_DUPFD_CLOEXEC, 0));
  }
}

uint64_t PickAddress(FuzzReader& in) {
  switch (in.U8() % 4) {
    case 0:
      return in.U64();
    case 1:
      return kUser + kRamSize - (in.U8() & 0x3F);  // around the end
    default:
      return kUser + (in.U16() % kRamSize);
  }
}

MemoryRegion PickRegion(FuzzReader& in) {
  if (in.U8() % 4 != 0) return {0, kRamSize, kUser, 0};
  MemoryRegion r;
  r.guest_phys_addr = in.U8() % 2 ? in.U64() : static_cast<uint64_t>(in.U16()) << 12;
  r.memory_size = in.U8() % 2 ? in.U64() : static_cast<uint64_t>(in.U8()) << 12;
  r.userspace_addr = in.U8() % 2 ? in.U64() : kUser + (static_cast<uint64_t>(in.U16()) << 16);
  r.mmap_offset = in.U8() % 2 ? in.U64() : static_cast<uint64_t>(in.U8() % 20) << 12;
  return r;
}

// The driver's view of ring 0, from the last SET_VRING_NUM/ADDR that made sense for the
// good table (RAM at kUser): where the "driver" op writes descriptors and publishes heads.
struct Driver {
  uint32_t num = 0;
  uint64_t desc = 0, avail = 0;
  bool known = false;
  uint16_t avail_idx = 0;
};

template <typename T>
void Put(const Ram& ram, uint64_t gpa, T v) {
  if (gpa <= kRamSize - sizeof(T)) std::memcpy(ram.base + gpa, &v, sizeof(T));
}

// A request built with the codec from input-chosen fields (mostly plausible ones).
struct Built {
  Request request = Request::kGetFeatures;
  Payload payload;
  std::vector<UniqueFd> fds;
  bool need_reply = false;
};

Built Build(FuzzReader& in, const Ram& ram, Driver& drv) {
  constexpr uint64_t kOffered = virtio::kVirtioFVersion1 | virtio::kVirtioRingFEventIdx |
                                virtio::kVirtioRingFIndirectDesc | kFProtocolFeatures;
  Built b;
  b.need_reply = in.U8() % 2;
  const uint32_t index = in.U8() % 16 == 0 ? in.U8() : 0;  // mostly the one queue
  switch (in.U8() % 16) {
    case 0:
      b.request = Request::kGetFeatures;
      break;
    case 1:
      b.request = Request::kSetFeatures;
      b.payload = in.U8() % 8 == 0 ? in.U64() : kOffered & in.U64();
      break;
    case 2:
      b.request = in.U8() % 2 ? Request::kGetProtocolFeatures : Request::kGetQueueNum;
      break;
    case 3:
      b.request = Request::kSetProtocolFeatures;
      b.payload = in.U8() % 8 == 0
                      ? in.U64()
                      : (ProtocolBit(kProtocolMq) | ProtocolBit(kProtocolReplyAck)) & in.U64();
      break;
    case 4:
      b.request = in.U8() % 2 ? Request::kSetOwner : Request::kResetOwner;
      break;
    case 5:
    case 6: {
      b.request = Request::kSetMemTable;
      MemoryTable t;
      const size_t n = 1 + in.U8() % 3;
      for (size_t i = 0; i < n; ++i) {
        MemoryRegion r = PickRegion(in);
        r.guest_phys_addr += i << 32;  // so that good regions do not overlap
        r.userspace_addr += i << 32;
        t.regions.push_back(r);
        b.fds.push_back(PickFd(in, ram));
      }
      b.payload = std::move(t);
      break;
    }
    case 7: {
      b.request = Request::kSetVringNum;
      uint32_t num = in.U8() % 4 == 0 ? in.U32() : 1u << (in.U8() % 12);
      b.payload = VringState{index, num};
      if (index == 0) drv.num = num;
      break;
    }
    case 8: {
      b.request = Request::kSetVringAddr;
      VringAddress a;
      a.index = index;
      a.flags = in.U8() % 16 == 0 ? kVringFlagLog : 0;
      a.descriptor = PickAddress(in) & ~uint64_t{15};
      a.available = PickAddress(in) & ~uint64_t{1};
      a.used = PickAddress(in) & ~uint64_t{3};
      b.payload = a;
      if (index == 0) {
        drv.desc = a.descriptor - kUser;
        drv.avail = a.available - kUser;
        drv.known = true;
      }
      break;
    }
    case 9:
      b.request = Request::kSetVringBase;
      b.payload = VringState{index, in.U8() % 8 == 0 ? in.U32() : in.U16()};
      break;
    case 10:
      b.request = Request::kGetVringBase;
      b.payload = VringState{index, 0};
      break;
    case 11:
    case 12: {
      const Request kinds[] = {Request::kSetVringKick, Request::kSetVringCall,
                               Request::kSetVringErr};
      b.request = kinds[in.U8() % 3];
      const bool no_fd = in.U8() % 8 == 0;
      b.payload = VringFd{index, no_fd};
      if (!no_fd) {
        b.fds.push_back(in.U8() % 8 == 0 ? PickFd(in, ram)
                                         : UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)));
      }
      break;
    }
    case 13:
      b.request = Request::kSetVringEnable;
      b.payload = VringState{index, in.U8() % 2u};
      break;
    case 14: {
      b.request = in.U8() % 2 ? Request::kGetConfig : Request::kSetConfig;
      DeviceConfig c;
      c.offset = in.U8();
      c.flags = in.U8() % 2;
      c.bytes = in.Bytes(in.U8() % 64);
      b.payload = std::move(c);
      break;
    }
    default: {
      const Request unsupported[] = {Request::kAddMemReg,      Request::kRemMemReg,
                                     Request::kSetStatus,      Request::kGetStatus,
                                     Request::kResetDevice,    Request::kGetMaxMemSlots,
                                     Request::kSetBackendReqFd};
      b.request = unsupported[in.U8() % 7];
      if (b.request == Request::kAddMemReg || b.request == Request::kRemMemReg) {
        b.payload = SingleRegion{PickRegion(in)};
      } else if (b.request == Request::kSetStatus) {
        b.payload = uint64_t{in.U8()};
      }
      if (b.request == Request::kAddMemReg || b.request == Request::kSetBackendReqFd) {
        b.fds.push_back(PickFd(in, ram));
      }
      break;
    }
  }
  return b;
}

// Every reply the back-end queued must decode as a strict reply.
void DrainReplies(int front) {
  for (;;) {
    pollfd p{front, POLLIN, 0};
    if (poll(&p, 1, 0) != 1) return;
    auto m = ReceiveMessage(front, Direction::kReply);
    CHECK(m.has_value() && m->has_value());
  }
}

// A message the session handles; false once it ended the session.
bool Deliver(Backend& backend, int front, Result<Message> m) {
  if (!m.has_value()) return false;  // Run would end the session on a Decode error too
  Result<void> r = backend.Handle(*m);
  if (!r.has_value()) {
    CHECK(r.error().kind() == ErrorKind::kProtocol || r.error().kind() == ErrorKind::kSystem);
    return false;
  }
  DrainReplies(front);
  return true;
}

bool Send(Backend& backend, int front, Request r, const Payload& p, UniqueFd fd = {}) {
  std::vector<UniqueFd> fds;
  if (fd.valid()) fds.push_back(std::move(fd));
  auto bytes = EncodeRequest(r, p, fds.size());
  CHECK(bytes.has_value());
  return Deliver(backend, front, Decode(*bytes, std::move(fds), Direction::kRequest));
}

// Ring 0 brought up the way QEMU does it, at input-chosen places, so that runs reach the
// ring contents without first having to find a whole valid setup sequence.
bool BringUp(FuzzReader& in, const Ram& ram, Driver& drv, Backend& backend, int front) {
  const uint64_t features =
      (virtio::kVirtioRingFEventIdx | virtio::kVirtioRingFIndirectDesc) & in.U64();
  drv = Driver{};
  drv.num = 1u << (in.U8() % 9);
  drv.desc = (in.U16() % kRamSize) & ~uint64_t{15};
  drv.avail = (in.U16() % kRamSize) & ~uint64_t{1};
  const uint64_t used = (in.U16() % kRamSize) & ~uint64_t{3};
  drv.known = true;
  const VringAddress a{.index = 0,
                       .flags = 0,
                       .descriptor = kUser + drv.desc,
                       .used = kUser + used,
                       .available = kUser + drv.avail,
                       .log = 0};
  return Send(backend, front, Request::kSetFeatures, virtio::kVirtioFVersion1 | features) &&
         Send(backend, front, Request::kSetMemTable, MemoryTable{{{0, kRamSize, kUser, 0}}},
              UniqueFd(fcntl(ram.fd, F_DUPFD_CLOEXEC, 0))) &&
         Send(backend, front, Request::kSetVringNum, VringState{0, drv.num}) &&
         Send(backend, front, Request::kSetVringBase, VringState{0, 0}) &&
         Send(backend, front, Request::kSetVringAddr, a) &&
         Send(backend, front, Request::kSetVringCall, VringFd{0, false},
              UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))) &&
         Send(backend, front, Request::kSetVringKick, VringFd{0, false},
              UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)));
}

// One step of the script; false once the session is over. Weighted towards the guest's
// side: a hostile front-end ends its session at its first mistake, a hostile guest does not.
bool Step(FuzzReader& in, const Ram& ram, Driver& drv, Backend& backend, int front) {
  switch (in.U8() % 16) {
    case 0: {  // raw bytes, 0..2 fds, through the strict decoder
      std::vector<UniqueFd> fds;
      for (size_t n = in.U8() % 3; n > 0; --n) fds.push_back(PickFd(in, ram));
      std::vector<uint8_t> bytes = in.Bytes(in.U16() % 300);
      return Deliver(backend, front, Decode(bytes, std::move(fds), Direction::kRequest));
    }
    case 1:
    case 2:
    case 3:  // a kick
      CHECK(backend.ServeForTest(0).has_value());
      return true;
    case 4:
    case 5: {  // the guest writes anywhere in its RAM
      uint64_t at = in.U16() % kRamSize;
      std::vector<uint8_t> bytes = in.Bytes(std::min<uint64_t>(in.U8(), kRamSize - at));
      if (!bytes.empty()) std::memcpy(ram.base + at, bytes.data(), bytes.size());
      return true;
    }
    case 6:
    case 7:
    case 8: {  // the guest writes a descriptor of ring 0 and publishes it
      if (!drv.known || drv.num == 0 || drv.num > 32768) return true;
      const uint32_t i = in.U8() % drv.num;
      const uint64_t d = drv.desc + 16ull * i;
      Put<uint64_t>(ram, d, in.U8() % 8 == 0 ? in.U64() : in.U16() % kRamSize);
      Put<uint32_t>(ram, d + 8, in.U8() % 8 == 0 ? in.U32() : in.U8() + 1u);
      Put<uint16_t>(ram, d + 12, static_cast<uint16_t>(in.U8() & 7));
      Put<uint16_t>(ram, d + 14, static_cast<uint16_t>(in.U8() % drv.num));
      Put<uint16_t>(ram, drv.avail + 4 + 2ull * (drv.avail_idx % drv.num),
                    static_cast<uint16_t>(in.U8() % 8 == 0 ? in.U16() : i));
      Put<uint16_t>(ram, drv.avail + 2, ++drv.avail_idx);
      return true;
    }
    case 9:
      return BringUp(in, ram, drv, backend, front);
    default: {
      Built b = Build(in, ram, drv);
      auto bytes = EncodeRequest(b.request, b.payload, b.fds.size(), b.need_reply);
      if (!bytes.has_value()) return true;  // never sent: the codec refuses to write it
      return Deliver(backend, front, Decode(*bytes, std::move(b.fds), Direction::kRequest));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Ram ram;
  std::memset(ram.base, 0, kRamSize);
  lseek(ram.fd, 0, SEEK_SET);  // shared with dups handed over (and written to as call fds)
  const size_t fds_before = OpenFdCount();
  {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd front(sv[0]), back(sv[1]);
    virtio::FakeEntropySource entropy;
    virtio::RngDevice rng(entropy);
    device::RngVhostDevice dev(rng);
    BackendOptions options;
    options.log = [](const std::string&) {};
    Backend backend(dev, back.get(), options);
    FuzzReader in{data, size};
    Driver drv;
    for (size_t op = 0; op < kMaxOps && !in.done(); ++op) {
      if (!Step(in, ram, drv, backend, front.get())) break;
    }
  }
  CHECK(OpenFdCount() == fds_before);
  return 0;
}
