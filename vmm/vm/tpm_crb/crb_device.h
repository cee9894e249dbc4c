// CrbDevice: the guest-facing TPM 2.0 Command Response Buffer interface (TCG PC Client
// Platform TPM Profile (PTP) Specification for TPM 2.0, §6.5.3 "CRB Interface"), pure.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<CrbDevice> crb, CrbDevice::Create(gpa, page, backend));
//   crb->Write(0x40, cmd_ready);  crb->Read(0x4C, start);  // MMIO exits at 0xFED40000 + off
//
// The register window is 5 localities x 0x1000 at kCrbBaseGpa. The guest owns locality 0
// only (CapLocality = 0): locality 1..4 pages read as all-ones and ignore writes, so no
// guest can request them (the VMM speaks to the TPM at locality 3 directly, never here).
//
// The command/response buffer is NOT in the trapped register page: it is one shared buffer
// at `buffer_gpa` (CTRL_CMD_LADDR/HADDR and CTRL_RSP_ADDR point at it; command and response
// overlap, so their sizes are equal as Linux's tpm_crb requires). The owner maps that page
// into the guest and gives the device a span over the same bytes, so the guest fills a
// command with plain stores, not one exit per access. Because the guest can change those
// bytes at any time, the device copies the whole buffer once when START is written and
// only then reads the TPM header (tag u16 BE, commandSize u32 BE). A commandSize below 10
// or above the buffer is answered by the device itself with TPM_RC_COMMAND_SIZE, without
// the backend.
//
// Threads: Read/Write (vCPU threads), Complete (any thread), Reset and SetFatal serialise on
// one internal lock. Backend calls are made after that lock is released, so a backend may
// call Complete() from inside Submit(). The device borrows the backend and the buffer; both
// must outlive it. No access sequence can crash it or make it touch memory outside them.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/result.h"
#include "vmm/contract/layout.h"

namespace vtpm {

// PTP §6.5.3.1 (and the fixed PC memory map, PTP §5.4): locality n at base + n * 0x1000.
inline constexpr uint64_t kCrbBaseGpa = vmm::x86::kTpmCrbBase;
inline constexpr uint64_t kCrbLocalitySize = 0x1000;
inline constexpr uint32_t kCrbLocalityCount = 5;
inline constexpr uint64_t kCrbWindowSize = kCrbLocalitySize * kCrbLocalityCount;
// The ACPI TPM2 table's "address of control area" is the CTRL_REQ register of locality 0.
inline constexpr uint64_t kCrbControlAreaGpa = kCrbBaseGpa + 0x40;
// A suggested buffer address: the page right after the five locality pages, still inside
// the 0xFED40000..0xFED4FFFF range PC platforms leave to the TPM, and outside e820 RAM (so
// Linux can claim it with request_mem_region). The owner may choose any page-aligned GPA
// that does not overlap the register window.
inline constexpr uint64_t kCrbSuggestedBufferGpa = kCrbBaseGpa + kCrbWindowSize;
// libtpms' MAX_COMMAND_SIZE / MAX_RESPONSE_SIZE: one 4 KiB page holds any command.
inline constexpr size_t kCrbSuggestedBufferSize = 0x1000;

// Register offsets within a locality page, PTP §6.5.3.2 Table "CRB Register Space".
enum CrbRegister : uint32_t {
  kCrbLocState = 0x00,  // R
  kCrbLocCtrl = 0x08,   // W
  kCrbLocSts = 0x0C,    // R
  kCrbIntfId = 0x30,    // R, 64 bits (VID/DID in the upper half, "INTF_ID2" at 0x34)
  kCrbIntfId2 = 0x34,
  kCrbCtrlExt = 0x38,      // 64 bits; chunking is not offered: reads 0, writes ignored
  kCrbCtrlReq = 0x40,      // RW
  kCrbCtrlSts = 0x44,      // R
  kCrbCtrlCancel = 0x48,   // RW
  kCrbCtrlStart = 0x4C,    // RW
  kCrbIntEnable = 0x50,    // no interrupt is wired (the ACPI device lists none): RAZ/WI
  kCrbIntSts = 0x54,       // RAZ/WI
  kCrbCtrlCmdSize = 0x58,  // R (the buffer is fixed by the VMM; writes are ignored)
  kCrbCtrlCmdLaddr = 0x5C,
  kCrbCtrlCmdHaddr = 0x60,
  kCrbCtrlRspSize = 0x64,
  kCrbCtrlRspAddr = 0x68,   // 64 bits
  kCrbRegistersEnd = 0x80,  // 0x80..0xFFF would be the data buffer; unused here, RAZ/WI
};

// Register bits, PTP §6.5.3.2.
inline constexpr uint32_t kCrbLocStateEstablished = 1u << 0;  // see kCrbLocStateValue
inline constexpr uint32_t kCrbLocStateAssigned = 1u << 1;
inline constexpr uint32_t kCrbLocStateRegValid = 1u << 7;
inline constexpr uint32_t kCrbLocCtrlRequestAccess = 1u << 0;
inline constexpr uint32_t kCrbLocCtrlRelinquish = 1u << 1;
inline constexpr uint32_t kCrbLocCtrlSeize = 1u << 2;               // locality 0: ignored
inline constexpr uint32_t kCrbLocCtrlResetEstablishment = 1u << 3;  // 3/4 only: ignored
inline constexpr uint32_t kCrbLocStsGranted = 1u << 0;
inline constexpr uint32_t kCrbLocStsBeenSeized = 1u << 1;
inline constexpr uint32_t kCrbCtrlReqCmdReady = 1u << 0;
inline constexpr uint32_t kCrbCtrlReqGoIdle = 1u << 1;
inline constexpr uint32_t kCrbCtrlStsFatal = 1u << 0;
inline constexpr uint32_t kCrbCtrlStsIdle = 1u << 1;
inline constexpr uint32_t kCrbCancel = 1u << 0;
inline constexpr uint32_t kCrbStart = 1u << 0;

// INTF_ID (PTP §6.5.3.2, TPM_CRB_INTF_ID_x): InterfaceType 1 (CRB), InterfaceVersion 1,
// CapLocality 0 (locality 0 only), CapCRBIdleBypass 0 (software must write cmdReady to
// leave Idle; START in Idle is ignored), CapDataXferSizeSupport 0 (a FIFO-only field;
// CapFIFO is 0), CapCRB 1, InterfaceSelector 1 (CRB) with IntfSelLock 1 so the guest
// cannot switch to a FIFO interface that does not exist, RID 1.
inline constexpr uint32_t kCrbRid = 1;
inline constexpr uint32_t kCrbIntfIdValue =
    (1u << 0) | (1u << 4) | (1u << 14) | (1u << 17) | (1u << 19) | (kCrbRid << 24);
// INTF_ID bits 47:32 VID and 63:48 DID. Not PCI-SIG assigned: "CC" / "VM" in ASCII, in the
// spirit of the ACPI OEM id "CCVMM"; guests only print them.
inline constexpr uint16_t kCrbVendorId = 0x4343;
inline constexpr uint16_t kCrbDeviceId = 0x564D;
// LOC_STATE bit 0 follows the TIS convention of TPM_ACCESS.tpmEstablishment: 1 while no
// dynamic OS has set the TPM's establishment flag. There is no D-RTM here, so it stays 1.
inline constexpr uint32_t kCrbLocStateEstablishedValue = kCrbLocStateEstablished;

// TPM 2.0 Part 2 §6.6 response codes the device produces itself.
inline constexpr uint32_t kTpmRcCommandSize = 0x142;  // TPM_RC_COMMAND_SIZE
inline constexpr uint32_t kTpmRcFailure = 0x101;      // TPM_RC_FAILURE
inline constexpr size_t kTpmHeaderSize = 10;          // tag, size, code/rc

// The owner's side: where commands go. Calls come from vCPU threads without the device lock.
class CrbBackend {
 public:
  virtual ~CrbBackend() = default;
  // One command, already copied out of guest-shared memory and size-checked (10 ..
  // buffer size bytes, exactly its header's commandSize). The span lives only during the
  // call. The backend answers with CrbDevice::Complete exactly once, from any thread, now or
  // later. There is at most one command outstanding.
  virtual void Submit(std::span<const uint8_t> command) = 0;
  // The guest wrote CTRL_CANCEL=1 while the command runs (PTP §6.5.3.5). A hint: it can race
  // with Submit or arrive after the answer; the command is still answered by Complete.
  virtual void Cancel() = 0;
};

class CrbDevice {
 public:
  // `buffer` is the owner's view of the shared page the guest sees at `buffer_gpa`:
  // page-aligned, not overlapping the register window, 10..4 GiB-1 bytes, not wrapping.
  static vmm::Result<std::unique_ptr<CrbDevice>> Create(uint64_t buffer_gpa,
                                                        std::span<uint8_t> buffer,
                                                        CrbBackend& backend);

  // A guest access at `offset` from kCrbBaseGpa; `data` is the access (1, 2, 4 or 8 bytes,
  // naturally aligned; 8-byte writes only change nothing). Anything else reads all-ones, is
  // ignored and counted in guest_errors().
  void Read(uint64_t offset, std::span<uint8_t> data);
  void Write(uint64_t offset, std::span<const uint8_t> data);

  // The backend's answer to the outstanding command: copied into the buffer, then START
  // clears. A response that is shorter than 10 bytes, larger than the buffer or whose
  // header size disagrees with its length is replaced by a TPM_RC_FAILURE response.
  // Returns false (and changes nothing) when no command is outstanding or the command was
  // abandoned by Reset/SetFatal.
  bool Complete(std::span<const uint8_t> response);

  // Machine reset (PTP: _TPM_Init): Idle, no locality, START/CANCEL 0, fatal cleared. A
  // command still in the backend is abandoned: its Complete() is dropped, and a START the
  // guest writes meanwhile is held (START reads 1) and submitted on the first guest access
  // after that Complete.
  void Reset();
  // The backend is gone (e.g. its process died): CTRL_STS.tpmSts reads 1, a running command
  // is answered with TPM_RC_FAILURE, and START is ignored until Reset().
  void SetFatal();

  // Observers, for the owner and for tests.
  bool idle() const;
  bool locality_assigned() const;
  bool command_outstanding() const;  // Submit called, Complete not yet
  uint64_t guest_errors() const;     // malformed accesses
  uint64_t commands_submitted() const;
  uint64_t commands_refused() const;  // answered by the device itself (bad size)
  uint64_t buffer_gpa() const { return buffer_gpa_; }
  uint32_t buffer_size() const { return static_cast<uint32_t>(buffer_.size()); }

 private:
  CrbDevice(uint64_t buffer_gpa, std::span<uint8_t> buffer, CrbBackend& backend);

  struct Action {  // a backend call decided under the lock, made after it is released
    enum Kind { kNone, kSubmit, kCancel } kind = kNone;
    std::vector<uint8_t> command;
  };
  void RunAction(std::unique_lock<std::mutex>& lock, Action action);
  uint32_t ReadRegister32(uint32_t reg) const;
  Action WriteRegister32(uint32_t reg, uint32_t value, uint32_t mask);
  Action WriteStart();
  Action TakeCommand();
  Action SubmitDeferred();
  void Respond(std::span<const uint8_t> response);
  void RespondError(uint32_t rc);
  void FinishCommand();
  // A copy of one state field, read under the lock (for the accessors above).
  template <typename T>
  T Locked(const T& field) const {
    std::lock_guard lock(mu_);
    return field;
  }

  const uint64_t buffer_gpa_;
  const std::span<uint8_t> buffer_;
  CrbBackend* const backend_;

  mutable std::mutex mu_;
  bool locality_assigned_ = false;
  bool idle_ = true;
  bool go_idle_pending_ = false;  // goIdle written while busy: applied when START clears
  bool start_ = false;            // CTRL_START as the guest reads it
  bool cancel_ = false;           // CTRL_CANCEL bit 0 as written
  bool cancel_sent_ = false;
  bool outstanding_ = false;  // the backend holds a command
  bool abandoned_ = false;    // ... whose answer nobody waits for any more
  bool deferred_ = false;     // START accepted while an abandoned command was out
  bool fatal_ = false;
  uint64_t guest_errors_ = 0;
  uint64_t commands_submitted_ = 0;
  uint64_t commands_refused_ = 0;
};

}  // namespace vtpm
