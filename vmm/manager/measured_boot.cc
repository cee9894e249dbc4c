#include "vmm/manager/measured_boot.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <set>
#include <string_view>

#include "base/hex.h"
#include "base/version.h"
#include "vmm/contract/layout.h"

namespace vmm {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The PCRs the boot sets: 0 (its start value comes from StartupLocality) and every PCR
// extended.
std::set<uint32_t> TouchedPcrs(const MeasuredBoot& boot) {
  std::set<uint32_t> touched = {0};
  for (const PcrExtend& x : boot.extends) touched.insert(x.pcr);
  return touched;
}

}  // namespace

std::string CanonicalConfiguration(const VmConfig& cfg, const BootPlan& plan,
                                   std::string_view launch_policy_digest) {
  nlohmann::json devices = nlohmann::json::array();
  for (size_t i = 0; i < cfg.disks.size(); ++i) {
    devices.push_back({{"kind", "blk"},
                       {"name", "blk" + std::to_string(i)},
                       {"read_only", cfg.disks[i].readonly}});
  }
  if (cfg.rng) devices.push_back({{"kind", "rng"}, {"name", "rng0"}});
  nlohmann::json doc = {
      {"schema", "vmm-config/1"},
      {"cpus", cfg.cpus},
      {"memory", cfg.memory},
      {"serial", std::string(SerialModeName(cfg.serial))},
      {"kvm_compat", {{"on", plan.kvm_compat}, {"parameters", plan.kvm_compat_added}}},
      {"devices", devices},
      {"tpm", cfg.tpm.mode == TpmConfig::Mode::kPersistent ? "persistent" : "ephemeral"},
      {"launch_policy", launch_policy_digest.empty() ? nlohmann::json(nullptr)
                                                     : nlohmann::json(launch_policy_digest)},
  };
  return doc.dump();  // std::map keys: sorted, so stable
}

Result<acpi::AcpiTables> MeasuredAcpiTables(const VmConfig& cfg) {
  const size_t devices = cfg.disks.size() + (cfg.rng ? 1 : 0);
  return BuildPlatformAcpi(cfg.cpus, cfg.tpm.enabled(), devices, /*event_log=*/true);
}

Result<MeasuredBoot> MeasureBoot(const MeasuredBootInputs& in) {
  if (in.acpi == nullptr) return InvalidArgument("measured boot: no ACPI tables");
  ASSIGN_OR_RETURN(
      attestation::EventLogBuilder b,
      attestation::EventLogBuilder::Create({attestation::kAlgSha256, attestation::kAlgSha384}, {},
                                           static_cast<size_t>(x86::kTpmEventLogSize)));
  RETURN_IF_ERROR(b.AddStartupLocality(3));
  const std::string version = std::string("vmm ") + VMM_VERSION;
  RETURN_IF_ERROR(b.AddSCrtmVersion(Bytes(version)));
  RETURN_IF_ERROR(b.AddPlatformConfigFlags(Bytes(in.configuration), 1));
  for (const acpi::TableLocation& t : in.acpi->tables) {
    const std::string what = "ACPI " + std::string(t.signature);
    std::span<const uint8_t> table = in.acpi->TableBytes(t.signature);
    RETURN_IF_ERROR(b.Measure(1, attestation::kEvPlatformConfigFlags, Bytes(what), table));
  }
  RETURN_IF_ERROR(b.Measure(4, attestation::kEvIpl, Bytes("kernel"), in.kernel));
  RETURN_IF_ERROR(b.AddIpl(8, in.cmdline));
  if (!in.initramfs.empty()) {
    RETURN_IF_ERROR(b.Measure(9, attestation::kEvIpl, Bytes("initramfs"), in.initramfs));
  }
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) RETURN_IF_ERROR(b.AddSeparator(pcr));

  MeasuredBoot out;
  out.log = b.bytes();
  ASSIGN_OR_RETURN(attestation::EventLog log, attestation::ParseEventLog(out.log));
  for (const attestation::Event& e : log.events) {
    if (e.type == attestation::kEvNoAction) continue;
    PcrExtend x{e.pcr, {}};
    for (const attestation::Digest& d : e.digests) x.digests.push_back({d.alg, d.bytes});
    out.extends.push_back(std::move(x));
  }
  ASSIGN_OR_RETURN(out.expected, attestation::ReplayEventLog(log));
  return out;
}

Result<MeasuredBoot> MeasureVm(const VmConfig& cfg, const BootPlan& plan,
                               std::string_view launch_policy_digest) {
  ASSIGN_OR_RETURN(acpi::AcpiTables tables, MeasuredAcpiTables(cfg));
  MeasuredBootInputs in;
  in.kernel = plan.kernel_bytes;
  in.initramfs = plan.initrd_bytes;
  in.cmdline = plan.cmdline;
  in.configuration = CanonicalConfiguration(cfg, plan, launch_policy_digest);
  in.acpi = &tables;
  return MeasureBoot(in);
}

Result<void> ExtendMeasurements(VtpmProcess& tpm, const MeasuredBoot& boot) {
  for (const PcrExtend& x : boot.extends) {
    if (auto r = ExtendPcr(tpm, x.pcr, x.digests); !r) {
      return r.error().Wrap("measured boot: extending PCR " + std::to_string(x.pcr));
    }
  }
  for (const attestation::PcrBank& bank : boot.expected) {
    for (uint32_t pcr : TouchedPcrs(boot)) {
      ASSIGN_OR_RETURN(std::vector<uint8_t> value, ReadPcr(tpm, bank.alg, pcr));
      if (value != bank.pcrs[pcr]) {
        return Error(ErrorKind::kProtocol, "measured boot: the vTPM's " +
                                               attestation::AlgName(bank.alg) + " PCR " +
                                               std::to_string(pcr) + " is " + HexBytes(value) +
                                               ", not the event log's " + HexBytes(bank.pcrs[pcr]));
      }
    }
  }
  return Ok();
}

std::string DescribeMeasuredBoot(const MeasuredBoot& boot) {
  std::string out;
  auto log = attestation::ParseEventLog(boot.log);
  if (log) out += attestation::EventLogToText(*log);
  out += "expected PCR values:\n";
  for (const attestation::PcrBank& bank : boot.expected) {
    for (uint32_t pcr : TouchedPcrs(boot)) {
      out += "  " + attestation::AlgName(bank.alg) + ":" + std::to_string(pcr) + " " +
             HexBytes(bank.pcrs[pcr]) + "\n";
    }
  }
  return out;
}

}  // namespace vmm
