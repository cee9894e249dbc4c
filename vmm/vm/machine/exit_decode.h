// A vCPU exit as a typed value, decoded once from the kvm_run mapping and matched in one
// place (in the manner of Firecracker's VcpuExit).
//
//   ASSIGN_OR_RETURN(VcpuExit exit, DecodeExit(vcpu.run_mapping()));
//   std::visit(Overloaded{[&](const exits::Io& io) { ... }, ...}, exit);
//
// The decoder is pure: it reads the mapping and checks every offset and length against the
// mapping's real size (KVM_GET_VCPU_MMAP_SIZE); a field KVM should never produce (an I/O
// access of 3 bytes, data outside the mapping, an MMIO access of 0 or more than 8 bytes) is
// an Error, never an out-of-bounds access. The spans in the result point into the mapping
// (the caller keeps it alive): for port IN and MMIO reads the handler writes its answer
// there, as KVM expects on the next KVM_RUN. Only the vCPU's own KVM_RUN rewrites the page,
// so a decoded exit stays valid until that thread runs the vCPU again.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "base/result.h"

namespace vmm {
namespace exits {

enum class IoDirection { kIn, kOut };

// KVM_EXIT_IO: `count` accesses of `size` bytes each; `data` is size * count bytes.
struct Io {
  uint16_t port = 0;
  IoDirection direction = IoDirection::kIn;
  uint8_t size = 0;
  uint32_t count = 0;
  std::span<uint8_t> data;
};

// KVM_EXIT_MMIO: `data` is the access, 1 to 8 bytes (the result goes there for a read).
struct Mmio {
  uint64_t addr = 0;
  std::span<uint8_t> data;
  bool is_write = false;
};

struct Shutdown {};
struct Hlt {};
struct Intr {};

struct FailEntry {
  uint64_t hardware_reason = 0;
  uint32_t cpu = 0;
};

// KVM_EXIT_INTERNAL_ERROR. `data` holds at most 16 words (ndata is clamped to kvm_run's
// array); `insn_bytes` is set for an emulation failure that carries its instruction bytes
// (at most 15).
struct InternalError {
  uint32_t suberror = 0;
  std::vector<uint64_t> data;
  bool has_insn_bytes = false;
  std::vector<uint8_t> insn_bytes;
};

struct SystemEvent {
  uint32_t type = 0;
};

// KVM_EXIT_X86_RDMSR / WRMSR (filtered MSR accesses, KVM_CAP_X86_USER_SPACE_MSR).
struct X86Rdmsr {
  uint32_t index = 0;
  uint32_t reason = 0;
};
struct X86Wrmsr {
  uint32_t index = 0;
  uint32_t reason = 0;
  uint64_t data = 0;
};

struct Debug {
  uint32_t exception = 0;
  uint64_t pc = 0;
  uint64_t dr6 = 0;
  uint64_t dr7 = 0;
};

// Any exit reason not decoded above.
struct Unknown {
  uint32_t reason = 0;
};

}  // namespace exits

using VcpuExit =
    std::variant<exits::Io, exits::Mmio, exits::Shutdown, exits::FailEntry, exits::InternalError,
                 exits::SystemEvent, exits::Intr, exits::X86Rdmsr, exits::X86Wrmsr, exits::Debug,
                 exits::Hlt, exits::Unknown>;

// Decodes the exit in `run_page`, the whole kvm_run mapping of one vCPU at its real size.
// An Error (kind kKvm) names the exit and the field that is out of bounds; a mapping smaller
// than kvm_run or not aligned for it is an Error too.
Result<VcpuExit> DecodeExit(std::span<uint8_t> run_page);

// For std::visit over a VcpuExit.
template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace vmm
