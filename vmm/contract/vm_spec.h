// The manager -> VM process contract: everything `vmm-vcpu` needs to build and run the VM,
// as one versioned JSON document the manager writes (VmSpecToJson) and the VM process parses
// and checks (ParseVmSpec) before it does anything else.
//
//   vmm-vcpu --spec '{"version":1,"kernel":"/proc/self/fd/5",...}'
//
//   ASSIGN_OR_RETURN(VmSpec spec, ParseVmSpec(text));  // strict: see below
//   RETURN_IF_ERROR(ValidateVmSpec(spec));             // what ParseVmSpec also checks
//
// The parser is strict: input larger than kMaxVmSpecBytes, a "version" other than
// kVmSpecVersion, a missing, unknown or repeated key, a value of the wrong type or out of
// range, an fd number that is stdio or repeated, an unknown device kind or one whose virtio id
// or config size is not the device table's (device_table.h), and two devices with one name
// are each an error that says which. The format, version 1:
//
//   {"version": 1,
//    "kernel": PATH, "initramfs": PATH or "", "cmdline": TEXT,
//    "cpus": 1..254, "memory": BYTES (multiple of 4 KiB, 32 MiB..1 TiB),
//    "serial": {"mode": "tty"|"file"|"null"|"off", "path": PATH ("" unless file)},
//    "kvm_compat": "auto"|"on"|"off",
//    "kvm_fd": FD,
//    "devices": [{"kind": "blk", "name": "blk0", "virtio_id": 2, "config_size": 60, "fd": FD}],
//    "tpm_fd": FD or null,
//    "diagnostics": {"profile": BOOL, "exit_stats": BOOL, "profile_symbols": PATH or ""}}
//
// Paths are the manager's open files as "/proc/self/fd/N"; FDs are fds the VM process
// inherited. Shared by the manager and the VM process: includes nothing of vmm/ but
// vmm/common.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm {

enum class SerialMode { kTty, kFile, kNull, kOff };
// "tty", "file", "null", "off": the names the spec and the measured configuration use.
std::string_view SerialModeName(SerialMode mode);
// The kvm_pvm compatibility module (vmm/vm/compat/kvm_pvm): auto = on when the host's KVM is
// kvm_pvm. Part of the configuration because it changes what the guest runs on (and the
// kernel command line), so a later measured boot records it.
enum class KvmCompat { kAuto, kOn, kOff };
const char* KvmCompatName(KvmCompat mode);

inline constexpr uint32_t kMaxVcpus = 254;  // APIC ids 0..253, the IOAPIC takes the next

inline constexpr uint32_t kVmSpecVersion = 1;
// It travels as one argv string, which Linux caps at 128 KiB (MAX_ARG_STRLEN).
inline constexpr size_t kMaxVmSpecBytes = 96 * 1024;
inline constexpr size_t kMaxSpecPathBytes = 4095;              // PATH_MAX less the NUL
inline constexpr size_t kMaxSpecCmdlineBytes = 64 * 1024 - 1;  // its room in guest memory
inline constexpr uint64_t kMinSpecMemory = 32ull << 20;  // x86::kMinMemory (boot_plan.cc checks)
inline constexpr uint64_t kMaxSpecMemory = 1ull << 40;
inline constexpr int kMaxSpecFd = (1 << 20) - 1;  // fs.nr_open's default

// A virtio device served by a device process: the VM process's end of its vhost-user session.
struct DeviceSpec {
  std::string kind;          // a row of kDeviceKinds: "blk", "rng"
  std::string name;          // "blk0": the kind and its index
  uint32_t virtio_id = 0;    // the row's, repeated so a mismatch is caught
  uint32_t config_size = 0;  // the row's
  int fd = -1;               // connected vhost-user session
  bool operator==(const DeviceSpec&) const = default;
};

// Diagnostics that do not change what the guest sees.
struct DiagnosticsSpec {
  bool profile = false;         // sample the guest RIP; implies exit_stats
  bool exit_stats = false;      // count exits by reason, port and address
  std::string profile_symbols;  // a vmlinux or System.map for the profile, or ""
  bool operator==(const DiagnosticsSpec&) const = default;
};

struct VmSpec {
  uint32_t version = kVmSpecVersion;
  std::string kernel;
  std::string initramfs;
  // The TCG event log of measured boot (ARCHITECTURE.md §6), written by the manager; the VM
  // process copies it to x86::kTpmEventLogAddr and names it in the ACPI TPM2 table. "" = none;
  // needs a TPM.
  std::string event_log;
  std::string cmdline;
  uint32_t cpus = 1;
  uint64_t memory = 512ull << 20;
  SerialMode serial = SerialMode::kTty;
  std::string serial_path;  // with SerialMode::kFile
  KvmCompat kvm_compat = KvmCompat::kAuto;
  int kvm_fd = -1;  // /dev/kvm, opened by the manager
  std::vector<DeviceSpec> devices;
  int tpm_fd = -1;  // the vTPM's guest data channel, or -1: no TPM
  DiagnosticsSpec diagnostics;
  bool operator==(const VmSpec&) const = default;
};

// Checks everything listed above but the JSON syntax.
Result<void> ValidateVmSpec(const VmSpec& spec);
Result<VmSpec> ParseVmSpec(std::string_view text);
// Compact JSON (one line), in the format ParseVmSpec reads.
std::string VmSpecToJson(const VmSpec& spec);

}  // namespace vmm
