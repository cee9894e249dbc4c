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
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmm {

enum class SerialMode { kTty, kFile, kNull, kOff };
// The kvm_pvm compatibility module (vmm/vm/compat/kvm_pvm): auto = on when the host's KVM is
// kvm_pvm. Part of the configuration because it changes what the guest runs on (and the
// kernel command line), so a later measured boot records it.
enum class KvmCompat { kAuto, kOn, kOff };
const char* KvmCompatName(KvmCompat mode);

// One virtio-blk disk, served by its own `vmm-device blk` process.
struct DiskConfig {
  std::string path;
  bool readonly = false;
};
inline constexpr size_t kMaxDisks = 7;  // 8 virtio-mmio slots, one kept for the rng

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

struct VmConfig {
  std::string kernel;
  std::string initramfs;
  std::string cmdline;
  uint32_t cpus = 1;
  uint64_t memory = 512ull << 20;
  SerialMode serial = SerialMode::kTty;
  std::string serial_path;  // with SerialMode::kFile
  KvmCompat kvm_compat = KvmCompat::kAuto;
  std::vector<DiskConfig> disks;  // --disk, repeatable
  bool rng = false;               // --rng: a virtio-rng device (from the host's getrandom)
  TpmConfig tpm;                  // --tpm
};

struct HostLimits {
  uint64_t memory_bytes;  // the host's MemTotal
  uint32_t max_vcpus;     // what the VMM supports (ACPI/APIC ids); KVM may allow fewer
  static HostLimits Probe();
};

inline constexpr uint32_t kMaxVcpus = 254;  // APIC ids 0..253, the IOAPIC takes the next

Result<uint64_t> ParseSize(std::string_view text);       // "512M", "2G", "1048576"
Result<VmConfig> ParseConfigJson(std::string_view text);
// One flag by its long name without dashes ("cpus", "memory", "serial", "kernel", ...).
Result<void> ApplyFlag(VmConfig& cfg, std::string_view name, std::string_view value);
Result<void> ValidateConfig(const VmConfig& cfg, const HostLimits& host);
// The configuration as JSON, in the same format ParseConfigJson reads.
std::string ConfigToJson(const VmConfig& cfg);
std::string SerialToString(const VmConfig& cfg);

}  // namespace vmm
