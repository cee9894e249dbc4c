// The VM configuration: what `vmm run` flags and `--config FILE.json` describe. Parsing and
// validation are pure (no KVM, no files opened) so every bad input has a unit test.
//
//   ASSIGN_OR_RETURN(VmConfig cfg, ParseConfigJson(text));     // unknown keys are errors
//   RETURN_IF_ERROR(ApplyFlag(cfg, "memory", "1G"));            // flags override the file
//   RETURN_IF_ERROR(ValidateConfig(cfg, HostLimits::Probe()));
//
// Flag and JSON field syntax follow Cloud Hypervisor: `--cpus boot=2`, `--memory size=1G`,
// `--serial tty|file=PATH|null|off`; the plain forms `--cpus 2` and `--memory 1G` also work.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vmm/contract/device_table.h"
#include "vmm/contract/vm_spec.h"

namespace vmm {

// SerialMode, KvmCompat and kMaxVcpus are the contract's (vmm/contract/vm_spec.h).

// One virtio-blk disk, served by its own `vmm-device blk` process.
struct DiskConfig {
  std::string path;
  bool readonly = false;
};
inline constexpr size_t kMaxDisks = GetDeviceKind(DeviceType::kBlk).max_count;

// The VM's TPM 2.0 (vmm-vtpm, ARCHITECTURE.md §6): off, ephemeral (state in the vTPM process's
// memory, gone at exit) or persistent (sealed state files in `state_dir`, encrypted and
// authenticated with the 32-byte key in `key_file`, which is created 0600 on first use).
// --tpm off | ephemeral | state=DIR,key=FILE
struct TpmConfig {
  enum class Mode { kOff, kEphemeral, kPersistent } mode = Mode::kOff;
  std::string state_dir;
  std::string key_file;
  bool enabled() const { return mode != Mode::kOff; }
};
std::string TpmToString(const TpmConfig& tpm);

// The VM's virtio-vsock device (`vmm-device vsock`, ARCHITECTURE.md §3, "Vsock"): host
// clients connect to `socket` and send "CONNECT <port>\n"; a guest's connection to CID 2 port P
// goes to the listener at "<socket>_P". --vsock cid=N,socket=PATH
struct VsockConfig {
  uint64_t cid = 0;    // 3 .. 2^32-2: virtio 1.2 §5.10.4 reserves 0, 1, 2 and U32_MAX
  std::string socket;  // absolute; created by the device process
};
inline constexpr uint64_t kMinVsockCid = 3;
inline constexpr uint64_t kMaxVsockCid = 0xfffffffeull;

struct VmConfig {
  std::string kernel;
  std::string initramfs;
  std::string cmdline;
  uint32_t cpus = 1;
  uint64_t memory = 512ull << 20;
  SerialMode serial = SerialMode::kTty;
  std::string serial_path;  // with SerialMode::kFile
  KvmCompat kvm_compat = KvmCompat::kAuto;
  std::vector<DiskConfig> disks;     // --disk, repeatable
  bool rng = false;                  // --rng: a virtio-rng device (from the host's getrandom)
  TpmConfig tpm;                     // --tpm
  std::optional<VsockConfig> vsock;  // --vsock (one per VM)
};

struct HostLimits {
  uint64_t memory_bytes;  // the host's MemTotal
  uint32_t max_vcpus;     // what the VMM supports (ACPI/APIC ids); KVM may allow fewer
  static HostLimits Probe();
};

Result<uint64_t> ParseSize(std::string_view text);  // "512M", "2G", "1048576"
Result<VmConfig> ParseConfigJson(std::string_view text);
// One flag by its long name without dashes ("cpus", "memory", "serial", "kernel", ...).
Result<void> ApplyFlag(VmConfig& cfg, std::string_view name, std::string_view value);
Result<void> ValidateConfig(const VmConfig& cfg, const HostLimits& host);
// The configuration as JSON, in the same format ParseConfigJson reads.
std::string ConfigToJson(const VmConfig& cfg);
std::string SerialToString(const VmConfig& cfg);
// What the VM process boots from the configuration (kernel, initramfs, cmdline, cpus, memory,
// serial, kvm-compat); the caller adds the fds (kvm_fd, devices, tpm_fd) and diagnostics.
VmSpec SpecFromConfig(const VmConfig& cfg);

}  // namespace vmm
