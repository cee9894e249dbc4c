// A hostile vhost-user peer against Decode (vmm/formats/vhost_user/message.h): arbitrary message
// bytes arriving with 0..10 fds, as a request (what a back-end receives) or a reply (what a
// front-end receives).
//
// Input: one control byte (bits 0-3: fd count mod 11, bit 4: reply), then the message.
// Checked: every fd handed to Decode is closed once the result is gone, whether Decode
// failed or not; a decoded message keeps only as many fds as its request allows; and it
// encodes again into bytes that decode to the same message.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "vmm/formats/vhost_user/message.h"

namespace {

using namespace vmm::vhost_user;

std::vector<vmm::UniqueFd> DummyFds(size_t n, std::vector<int>& numbers) {
  std::vector<vmm::UniqueFd> fds;
  for (size_t i = 0; i < n; ++i) {
    fds.emplace_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    CHECK(fds.back().valid());
    numbers.push_back(fds.back().get());
  }
  return fds;
}

void CheckAllClosed(const std::vector<int>& numbers) {
  for (int fd : numbers) CHECK(fcntl(fd, F_GETFD) == -1);
}

void CheckReencodes(const Message& m, Direction direction) {
  auto bytes = direction == Direction::kReply
                   ? EncodeReply(m.request, m.payload)
                   : EncodeRequest(m.request, m.payload, m.fds.size(), m.need_reply());
  CHECK(bytes.has_value());
  std::vector<int> numbers;
  {
    auto again = Decode(*bytes, DummyFds(m.fds.size(), numbers), direction);
    CHECK(again.has_value());
    CHECK(again->request == m.request && again->flags == m.flags);
    CHECK(again->payload == m.payload);
    CHECK(again->fds.size() == m.fds.size());
  }
  CheckAllClosed(numbers);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t fd_count = (data[0] & 0x0F) % 11;
  const Direction direction = (data[0] & 0x10) ? Direction::kReply : Direction::kRequest;
  std::span<const uint8_t> bytes(data + 1, size - 1);

  std::vector<int> numbers;
  {
    auto m = Decode(bytes, DummyFds(fd_count, numbers), direction);
    if (m.has_value()) {
      CHECK(m->fds.size() <= fd_count && m->fds.size() <= kMaxMemoryRegions);
      CHECK(m->is_reply() == (direction == Direction::kReply));
      CHECK(bytes.size() <= kHeaderSize + kMaxPayloadSize);
      for (const vmm::UniqueFd& fd : m->fds) CHECK(fcntl(fd.get(), F_GETFD) != -1);
      CheckReencodes(*m, direction);
    }
  }
  CheckAllClosed(numbers);
  return 0;
}
