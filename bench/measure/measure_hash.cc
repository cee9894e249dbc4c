// Times measured boot's hashing through the code `vmm run` uses: the kernel and initramfs
// read as PlanBoot reads them (into memory, once), then attestation::HashAll per digest, and
// MeasureVm, the whole measurement `vmm run` makes before the VM process exists (both banks
// over kernel and initramfs, the configuration, the ACPI tables, the log and its replay).
//
//   measure_hash --kernel K --initramfs I [--seconds 2]
//   -> measure_hash: input=kernel bytes=10485760 digest=sha256 reps=... cpu_s=... wall_s=...
//      cpu_Bps=... wall_Bps=... value=<hex>
//      (digest=sha256, sha384 and both per input; both: one pass, one EVP_MD_CTX per bank)
//      measure_hash: input=measure_vm bytes=<kernel+initramfs> ... pcr4_sha256=<hex> ...
//
// Each figure: one untimed warm-up, then whole-input hashes until --seconds of CPU time have
// passed (at least one). cpu_s is this process's CPU time (user and system), as
// `openssl speed` divides by its own CPU (user) time; wall_s is the steady clock. value is
// the digest computed, for bench/measure/run.sh to check against `openssl dgst`.
// Exit status: 0, 1 when reading or hashing failed, 2 usage.
#include <time.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>
#include "base/cli.h"

#include "attestation/event_log.h"
#include "base/hex.h"
#include "vmm/manager/config.h"
#include "vmm/manager/measured_boot.h"
#include "vmm/vm/machine/boot_plan.h"

namespace {

struct Options {
  std::string kernel;
  std::string initramfs;
  double seconds = 2;
};

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs `op` once untimed, then until `seconds` of CPU time have passed; prints one line.
// `op` returns the value to print, or nothing when it failed (it printed why).
bool Time(const Options& o, const std::string& input, size_t bytes, const std::string& digest,
          const std::function<std::optional<std::string>()>& op) {
  std::optional<std::string> value = op();
  if (!value) return false;
  long reps = 0;
  const double cpu0 = CpuSeconds(), wall0 = WallSeconds();
  double cpu = 0, wall = 0;
  do {
    if (!op()) return false;
    ++reps;
    cpu = CpuSeconds() - cpu0;
    wall = WallSeconds() - wall0;
  } while (cpu < o.seconds);
  const double total = static_cast<double>(bytes) * static_cast<double>(reps);
  std::printf(
      "measure_hash: input=%s bytes=%zu digest=%s reps=%ld cpu_s=%.4f wall_s=%.4f "
      "cpu_Bps=%.0f wall_Bps=%.0f %s\n",
      input.c_str(), bytes, digest.c_str(), reps, cpu, wall, total / cpu, total / wall,
      value->c_str());
  std::fflush(stdout);
  return true;
}

std::optional<std::string> Hash(std::span<const uint16_t> algs, std::span<const uint8_t> data) {
  auto digests = vmm::attestation::HashAll(algs, data);
  if (!digests) {
    std::fprintf(stderr, "measure_hash: %s\n", digests.error().message().c_str());
    return std::nullopt;
  }
  std::string value = "value=";
  for (size_t i = 0; i < digests->size(); ++i) {
    value += (i ? "," : "") + vmm::HexBytes((*digests)[i].bytes);
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Times measured boot's hashing through the code vmm run uses", "measure_hash"};
  app.add_option("--kernel", o.kernel, "kernel image")->required();
  app.add_option("--initramfs", o.initramfs, "initramfs")->required();
  app.add_option("--seconds", o.seconds, "CPU seconds a figure")->check(CLI::Range(0.001, 600.0));
  if (std::optional<int> done = vmm::ParseCommandLine(app, argc, argv, "measure_hash"))
    return *done;

  // As `vmm run` with --tpm ephemeral and the host's kvm_pvm decision: PlanBoot reads and
  // checks both files (the kernel must be a bootable image).
  vmm::VmConfig cfg;
  cfg.kernel = o.kernel;
  cfg.initramfs = o.initramfs;
  cfg.memory = 256ull << 20;
  cfg.tpm.mode = vmm::TpmConfig::Mode::kEphemeral;
  auto plan = vmm::PlanBoot(vmm::SpecFromConfig(cfg), vmm::kvm::DetectFlavor());
  if (!plan) {
    std::fprintf(stderr, "measure_hash: %s\n", plan.error().message().c_str());
    return 1;
  }

  using vmm::attestation::kAlgSha256;
  using vmm::attestation::kAlgSha384;
  static constexpr uint16_t kSha256[] = {kAlgSha256};
  static constexpr uint16_t kSha384[] = {kAlgSha384};
  static constexpr uint16_t kBoth[] = {kAlgSha256, kAlgSha384};
  struct Input {
    const char* name;
    std::span<const uint8_t> bytes;
  };
  const Input inputs[] = {{"kernel", plan->kernel_bytes}, {"initramfs", plan->initrd_bytes}};
  struct Bank {
    const char* name;
    std::span<const uint16_t> algs;
  };
  const Bank banks[] = {{"sha256", kSha256}, {"sha384", kSha384}, {"both", kBoth}};
  for (const Input& in : inputs) {
    for (const Bank& b : banks) {
      if (!Time(o, in.name, in.bytes.size(), b.name, [&] { return Hash(b.algs, in.bytes); })) {
        return 1;
      }
    }
  }
  const size_t all = plan->kernel_bytes.size() + plan->initrd_bytes.size();
  bool ok = Time(o, "measure_vm", all, "both", [&]() -> std::optional<std::string> {
    auto boot = vmm::MeasureVm(cfg, *plan, /*launch_policy_digest=*/"");
    if (!boot) {
      std::fprintf(stderr, "measure_hash: %s\n", boot.error().message().c_str());
      return std::nullopt;
    }
    // The kernel's and the initramfs's events (PCRs 4 and 9), for the check against openssl.
    std::string v;
    for (const vmm::PcrExtend& x : boot->extends) {
      if (x.pcr != 4 && x.pcr != 9) continue;
      for (const vmm::PcrDigest& d : x.digests) {
        v += (v.empty() ? "" : " ") + std::string("pcr") + std::to_string(x.pcr) + "_" +
             vmm::attestation::AlgName(d.alg) + "=" + vmm::HexBytes(d.digest);
      }
    }
    return v;
  });
  return ok ? 0 : 1;
}
