// Helpers for the vhost-user tests: hand-built wire messages, dummy fds, an fd census.
//
//   std::vector<uint8_t> m = Wire(5, kVersion, PayloadBytes().U32(1).U32(0).Region(...));
//   size_t before = OpenFdCount(); ...; EXPECT_EQ(OpenFdCount(), before);
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "base/unique_fd.h"
#include "vmm/formats/vhost_user/message.h"

namespace vmm::vhost_user::testing {

// Payload bytes written field by field, independently of the code under test.
struct PayloadBytes {
  std::vector<uint8_t> bytes;
  template <typename T>
  PayloadBytes& Put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    bytes.insert(bytes.end(), raw, raw + sizeof(T));
    return *this;
  }
  PayloadBytes& U32(uint32_t v) { return Put(v); }
  PayloadBytes& U64(uint64_t v) { return Put(v); }
  PayloadBytes& Region(uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t offset) {
    return U64(gpa).U64(size).U64(uaddr).U64(offset);
  }
  PayloadBytes& Zeros(size_t n) {
    bytes.resize(bytes.size() + n);
    return *this;
  }
};

// Header + payload; `size` is the payload's length unless given.
inline std::vector<uint8_t> Wire(uint32_t request, uint32_t flags, const PayloadBytes& p = {},
                                 int64_t size = -1) {
  PayloadBytes h;
  h.U32(request).U32(flags).U32(size < 0 ? static_cast<uint32_t>(p.bytes.size())
                                         : static_cast<uint32_t>(size));
  h.bytes.insert(h.bytes.end(), p.bytes.begin(), p.bytes.end());
  return h.bytes;
}
inline std::vector<uint8_t> Wire(Request request, const PayloadBytes& p = {}) {
  return Wire(static_cast<uint32_t>(request), kVersion, p);
}

inline std::vector<UniqueFd> DevNullFds(size_t n) {
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < n; ++i) fds.emplace_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fds;
}

inline bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

// Entries in /proc/self/fd, not counting the directory stream used to read it.
inline size_t OpenFdCount() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  size_t n = 0;
  while (dirent* e = readdir(dir))
    if (e->d_name[0] != '.') ++n;
  closedir(dir);
  return n - 1;
}

}  // namespace vmm::vhost_user::testing
