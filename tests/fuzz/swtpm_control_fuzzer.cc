// swtpm's control protocol from hostile peers: (1) the pure decoders (vtpm/swtpm/
// swtpm_protocol.h) on the raw input; (2) the whole server (SwtpmServer over
// FakeTpmService) fed a fuzzer-chosen script of chunks on four socketpairs: a platform and
// a guest group, each with a control and a data channel, some chunks carrying an fd.
//
// Checked: no crash, no overread (ASan); a decoded request re-encodes to exactly the bytes
// it came from; framing never claims more bytes than it was given; Run() always returns
// (every peer ends with EOF, so every channel closes); the guest group's TPM commands all
// ran at their fixed localities, and guests never changed the TPM's power or state.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "base/unix_socket.h"
#include "tests/fuzz/fuzz_check.h"
#include "vtpm/process/swtpm_server.h"
#include "vtpm/process/tpm_service_fake.h"
#include "vtpm/protocol/swtpm_protocol.h"

namespace {

using namespace vmm;
using namespace vmm::vtpm;

void CheckDecoders(std::span<const uint8_t> data) {
  swtpm::Decoded d = swtpm::DecodeRequest(data);
  if (d.status == swtpm::Decoded::kRequest) {
    CHECK(d.size <= data.size());
    std::vector<uint8_t> again = swtpm::EncodeRequest(d.request);
    size_t padding = 0;  // QEMU's SET_LOCALITY / RESET_TPMESTABLISHED: 3 zero bytes more
    if ((d.request.command == swtpm::Command::kSetLocality ||
         d.request.command == swtpm::Command::kResetTpmEstablished) &&
        d.size == again.size() + 3) {
      padding = 3;
      for (size_t i = again.size(); i < d.size; ++i) CHECK(data[i] == 0);
    }
    CHECK(again.size() + padding == d.size &&
          std::memcmp(again.data(), data.data(), again.size()) == 0);
  } else if (d.status == swtpm::Decoded::kNeedMore) {
    CHECK(d.size > data.size());
  } else {
    CHECK(!d.error.empty());
  }
  swtpm::Decoded t = swtpm::FrameTpmCommand(data, 4096);
  if (t.status == swtpm::Decoded::kRequest) CHECK(t.size <= data.size() && t.size >= 10);
  for (uint32_t c = 1; c <= 0x13; ++c) {
    swtpm::ResponseFrame f = swtpm::FrameResponse(swtpm::Command(c), data);
    if (f.total) CHECK(*f.total >= 4);
  }
}

bool SendChunk(int fd, std::span<const uint8_t> bytes, bool with_fd) {
  int pair[2] = {-1, -1};
  const bool attach = with_fd && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0;
  const bool ok =
      vmm::SendWithFds(fd, bytes,
                       attach ? std::span<const int>(&pair[1], 1) : std::span<const int>(),
                       MSG_DONTWAIT) == ssize_t(bytes.size());
  if (pair[0] >= 0) close(pair[0]), close(pair[1]);  // the server's copy sees EOF
  return ok;
}

// guest_only: both groups are guest groups (the second at locality 0, the first at 2).
void RunServer(std::span<const uint8_t> data, bool guest_only) {
  FakeTpmService tpm;
  SwtpmServer server(tpm, nullptr,
                     ServerOptions{.message_deadline = std::chrono::milliseconds(20)});
  UniqueFd ours[4];
  for (int g = 0; g < 2; ++g) {
    int c[2], d[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c) != 0) return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, d) != 0) {
      close(c[0]), close(c[1]);
      return;
    }
    ours[2 * g] = UniqueFd(c[0]);
    ours[2 * g + 1] = UniqueFd(d[0]);
    const ChannelPolicy policy{.platform = g == 0 && !guest_only,
                               .locality = uint8_t(guest_only && g == 0 ? 2 : 0)};
    server.AddGroup(policy, UniqueFd(c[1]), UniqueFd(d[1]));
  }
  // Script: [selector, length, bytes...]*; selector bits 0-1 pick the channel (platform
  // control, platform data, guest control, guest data), bit 2 attaches an fd.
  size_t i = 0;
  while (i + 2 <= data.size()) {
    const uint8_t sel = data[i];
    const size_t len = std::min<size_t>(data[i + 1], data.size() - i - 2);
    if (!SendChunk(ours[sel & 3].get(), data.subspan(i + 2, len), sel & 4)) break;
    i += 2 + len;
  }
  for (UniqueFd& fd : ours) shutdown(fd.get(), SHUT_WR);
  auto r = server.Run();
  (void)r;
  if (!guest_only) return;
  // Guests ran at their fixed localities and changed nothing of the TPM's power or state.
  for (uint8_t l : tpm.executed_localities) CHECK(l == 0 || l == 2);
  CHECK(tpm.init_flags.empty() && tpm.stops == 0 && tpm.is_running && tpm.blobs.empty());
  CHECK(tpm.buffer_size == 4096 && tpm.hashed.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  CheckDecoders(in);
  RunServer(in, false);
  RunServer(in, true);
  return 0;
}
