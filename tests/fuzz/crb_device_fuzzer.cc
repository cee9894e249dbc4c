// A hostile guest against the TPM CRB register model (vmm/vm/tpm_crb/crb_device.h): any sequence of
// reads and writes of any width at any offset of the five locality pages, with the shared
// command buffer rewritten between them, and a backend that answers at once (from inside
// Submit), later, with malformed responses, or not before a reset or a fatal error.
//
// Input: 2 header bytes (buffer size, backend mode), then 7-byte ops:
//   op, offset lo, offset hi, value (4 bytes, little-endian).
// Checked throughout: every command reaching the backend is 10..buffer bytes and exactly its
// header's commandSize; at most one command is outstanding; identity registers never change;
// reads write exactly the access width; START and the outstanding command agree.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "base/bytes.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_reader.h"
#include "vmm/vm/tpm_crb/crb_device.h"

namespace {

using namespace vtpm;

struct CheckingBackend : CrbBackend {
  void Submit(std::span<const uint8_t> command) override {
    CHECK(!pending);  // one command at a time
    CHECK(command.size() >= kTpmHeaderSize && command.size() <= buffer_size);
    CHECK(vmm::LoadBe<uint32_t>(command, 2) == command.size());
    CHECK(device->command_outstanding());
    pending = true;
    last = std::vector<uint8_t>(command.begin(), command.end());
    if (answer_in_submit) Answer(static_cast<uint32_t>(command.size()));
  }
  void Cancel() override { ++cancels; }

  // Answers the pending command with a response `len` bytes long whose size field says
  // `len`, or lies about it when `value` asks to.
  void Answer(uint32_t value) {
    if (!pending) {
      CHECK(!device->Complete(last));  // nothing outstanding: refused
      return;
    }
    pending = false;
    std::vector<uint8_t> response((value >> 4) % (buffer_size + 32), 0x5A);
    if (response.size() >= 6) {
      const uint32_t size = (value & 1) ? value : static_cast<uint32_t>(response.size());
      for (int i = 0; i < 4; ++i) response[2 + i] = static_cast<uint8_t>(size >> (24 - 8 * i));
    }
    device->Complete(response);
  }

  CrbDevice* device = nullptr;
  size_t buffer_size = 0;
  bool answer_in_submit = false;
  bool pending = false;
  uint64_t cancels = 0;
  std::vector<uint8_t> last;
};

constexpr size_t kWidths[8] = {4, 4, 1, 2, 8, 4, 3, 0};

uint64_t PickOffset(uint8_t op, uint16_t raw) {
  if (op & 0x80) return raw % 0x5100;                            // anywhere, even past the window
  if (op & 0x40) return (raw % 5) * 0x1000 + (raw >> 3) % 0x80;  // any locality, any byte
  return (raw % 0x20) * 4;                                       // a locality-0 register
}

void W32(CrbDevice& crb, uint64_t off, uint32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  crb.Write(off, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::vector<uint8_t> page(kTpmHeaderSize + (data[0] % 4) * 0x500 + data[0]);
  CheckingBackend backend;
  backend.buffer_size = page.size();
  backend.answer_in_submit = data[1] & 1;
  auto created = CrbDevice::Create(kCrbSuggestedBufferGpa, page, backend);
  CHECK(created.has_value());
  CrbDevice& crb = **created;
  backend.device = &crb;

  uint8_t buf[16];
  for (FuzzReader in{data + 2, size - 2}; in.left() >= FuzzReader::kAccessBytes;) {
    const auto [op, raw, value] = in.NextAccess();
    const uint64_t offset = PickOffset(op, raw);
    const size_t width = kWidths[(op >> 3) & 7];
    switch (op & 7) {
      case 0: {  // read: exactly `width` bytes written
        const uint8_t* b =
            CheckedRead(width, [&](std::span<uint8_t> out) { crb.Read(offset, out); });
        if (width == 4 && offset == kCrbIntfId) CHECK(b[0] == 0x11 && b[3] == kCrbRid);
        if (width == 4 && offset == kCrbCtrlSts) CHECK((b[0] & ~3) == 0 && b[1] == 0);
        if (width == 4 && offset == kCrbLocState) CHECK(b[0] & kCrbLocStateRegValid);
        break;
      }
      case 1: {
        std::memcpy(buf, &value, 4);
        std::memcpy(buf + 4, &value, 4);
        crb.Write(offset, std::span<const uint8_t>(buf, width));
        break;
      }
      case 2:  // a well-behaved driver step: locality, cmdReady, command, START
        W32(crb, kCrbLocCtrl, kCrbLocCtrlRequestAccess);
        W32(crb, kCrbCtrlReq, kCrbCtrlReqCmdReady);
        if (page.size() >= 6) {
          const uint32_t len = (value & 0x80000000) ? value : value % (page.size() + 2);
          page[0] = 0x80;
          page[1] = 0x01;
          for (int i = 0; i < 4; ++i) page[2 + i] = static_cast<uint8_t>(len >> (24 - 8 * i));
        }
        W32(crb, kCrbCtrlStart, kCrbStart);
        break;
      case 3:  // the guest scribbles on the shared page (possibly while the TPM runs)
        page[raw % page.size()] = static_cast<uint8_t>(value);
        break;
      case 4:
        backend.Answer(value);
        break;
      case 5:
        if (value & 1) {
          crb.Reset();
        } else if ((value & 0xFF) == 0x42) {
          crb.SetFatal();
        }
        break;
      case 6:
        backend.answer_in_submit = value & 1;
        break;
      case 7:
        W32(crb, kCrbCtrlCancel, value & 1);
        break;
    }
    // Invariants between accesses.
    CHECK(crb.command_outstanding() == backend.pending);
    CHECK(crb.buffer_size() == page.size());
  }
  if (backend.pending) backend.Answer(0);  // as an owner would before dropping the device
  return 0;
}
