// A hostile vTPM process against the VM process's CRB front end (vmm/vm/tpm_crb/tpm_frontend.h):
// the guest starts commands through the CRB registers while the "vTPM" end of the data
// socket answers with arbitrary bytes in arbitrary chunks (short, oversized, garbage
// headers, unsolicited data, early close).
//
// Input: 1 byte buffer-size selector, then ops of 3 bytes: kind, length, seed.
//   kind 0: the guest writes a command into the buffer and STARTs it (after cmdReady);
//   kind 1: the vTPM end writes `length` bytes (taken from the input) on the socket;
//   kind 2: the main loop runs OnReadable;  kind 3: the vTPM end closes.
// Checked: no crash or hang; the front end never reads past one response; START reads 0
// once a complete response was taken or the channel broke; after a break the CRB is fatal.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "vmm/vm/tpm_crb/tpm_frontend.h"

namespace {

uint32_t Read32(vmm::TpmFrontend& f, uint64_t offset) {
  uint8_t b[4] = {};
  f.Read(offset, b);
  return uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
}

void Write32(vmm::TpmFrontend& f, uint64_t offset, uint32_t v) {
  uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                  static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
  f.Write(offset, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t buffer_size = (data[0] & 1) ? 4096 : 64;
  std::vector<uint8_t> buffer(buffer_size, 0);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  vmm::UniqueFd peer(sv[1]);
  auto made = vmm::TpmFrontend::Create(vmm::UniqueFd(sv[0]), vtpm::kCrbSuggestedBufferGpa, buffer);
  if (!made) return 0;
  vmm::TpmFrontend& f = **made;
  Write32(f, vtpm::kCrbLocCtrl, vtpm::kCrbLocCtrlRequestAccess);
  size_t i = 1;
  while (i + 3 <= size) {
    const uint8_t kind = data[i] & 3, length = data[i + 1], seed = data[i + 2];
    i += 3;
    switch (kind) {
      case 0: {
        Write32(f, vtpm::kCrbCtrlReq, vtpm::kCrbCtrlReqCmdReady);
        const uint32_t len = 10 + seed % 40;
        std::memset(buffer.data(), seed, buffer.size());
        const uint8_t header[10] = {0x80, 0x01, 0, 0, 0, static_cast<uint8_t>(len), 0, 0, 1, 0x7b};
        std::memcpy(buffer.data(), header, sizeof(header));
        Write32(f, vtpm::kCrbCtrlStart, vtpm::kCrbStart);
        break;
      }
      case 1: {
        size_t n = std::min<size_t>(length, size - i);
        if (peer.valid() && n > 0)
          (void)!send(peer.get(), data + i, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        i += n;
        break;
      }
      case 2:
        (void)f.OnReadable();
        if (f.broken()) CHECK((Read32(f, vtpm::kCrbCtrlSts) & vtpm::kCrbCtrlStsFatal) != 0);
        break;
      case 3:
        peer.reset();
        break;
    }
    if (!f.crb().command_outstanding()) CHECK((Read32(f, vtpm::kCrbCtrlStart) & 1) == 0);
  }
  return 0;
}
