// Measured boot (ARCHITECTURE.md §6): the manager is the VM's static root of trust for
// measurement. From the bytes the VM process will load (kernel, initramfs, final command line,
// ACPI tables) and the canonical configuration it builds the TCG event log and the PCR extends
// that go with it; `vmm run` sends the extends to the vTPM at locality 3 before the VM process
// exists, and `vmm measure` prints the same log and the PCR values it yields.
//
// The scheme (README.md, "Measured boot"), every event in every active bank (SHA-256, SHA-384):
//   EV_NO_ACTION StartupLocality 3 (PCR 0 starts as 0...03)
//   PCR 0  EV_S_CRTM_VERSION        "vmm <version>"
//   PCR 1  EV_PLATFORM_CONFIG_FLAGS the canonical configuration (CanonicalConfiguration)
//   PCR 1  EV_PLATFORM_CONFIG_FLAGS one per ACPI table as loaded, data "ACPI <signature>"
//   PCR 4  EV_IPL                   the kernel image, data "kernel"
//   PCR 8  EV_IPL                   the final command line (digest and data: its bytes)
//   PCR 9  EV_IPL                   the initramfs, data "initramfs" (only with one)
//   PCR 0-7 EV_SEPARATOR            4 zero bytes
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attestation/event_log.h"
#include "base/result.h"
#include "vmm/manager/config.h"
#include "vmm/manager/vtpm_process.h"
#include "vmm/vm/acpi/tables.h"
#include "vmm/vm/machine/boot_plan.h"

namespace vmm {

struct MeasuredBootInputs {
  std::span<const uint8_t> kernel;
  std::span<const uint8_t> initramfs;
  std::string cmdline;        // final: with the kvm_pvm module's parameters
  std::string configuration;  // CanonicalConfiguration()
  const acpi::AcpiTables* acpi = nullptr;
};

struct PcrExtend {
  uint32_t pcr = 0;
  std::vector<PcrDigest> digests;  // one per bank
};

struct MeasuredBoot {
  std::vector<uint8_t> log;                    // TCG PC Client crypto-agile
  std::vector<PcrExtend> extends;              // in log order, EV_NO_ACTION left out
  std::vector<attestation::PcrBank> expected;  // the log replayed: every PCR, every bank
};

// The configuration as measured into PCR 1: compact JSON, keys sorted, no paths, schema
// "vmm-config/1": cpus, memory, serial (mode), kvm_compat (whether the module runs, and the
// kernel parameters it added), devices (kind, name, read_only for disks), tpm (ephemeral or
// persistent), launch_policy (the SHA-256 hex of the launch policy file that admitted the VM,
// ARCHITECTURE.md §9, or null without one). Two VMs that the guest could tell apart differ
// here, and so do two VMs admitted by different policies.
std::string CanonicalConfiguration(const VmConfig& cfg, const BootPlan& plan,
                                   std::string_view launch_policy_digest);

// The ACPI tables of this VM as its VM process will build them (with the event log area).
Result<acpi::AcpiTables> MeasuredAcpiTables(const VmConfig& cfg);

// Builds the log and the extends (kInvalidArgument if a log would outgrow the guest's
// x86::kTpmEventLogSize).
Result<MeasuredBoot> MeasureBoot(const MeasuredBootInputs& in);

// The whole scheme for `cfg` and its plan: canonical configuration, ACPI tables, hashes.
// `launch_policy_digest`: LaunchDecision::policy_digest (launch_check.h), empty for none.
Result<MeasuredBoot> MeasureVm(const VmConfig& cfg, const BootPlan& plan,
                               std::string_view launch_policy_digest);

// Sends the extends at the manager's locality (3), then reads every touched PCR back and
// compares it with the replayed log: a vTPM that does not hold what the log says is an error.
Result<void> ExtendMeasurements(VtpmProcess& tpm, const MeasuredBoot& boot);

// `vmm measure`'s text: the log event by event, then the expected value of each PCR touched.
std::string DescribeMeasuredBoot(const MeasuredBoot& boot);

}  // namespace vmm
