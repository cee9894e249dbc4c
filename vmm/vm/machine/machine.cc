#include "vmm/vm/machine/machine.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/hex.h"
#include "vmm/contract/layout.h"
#include "vmm/vm/acpi/tables.h"
#include "vmm/vm/arch/x86_64/cpu_setup.h"
#include "vmm/vm/compat/kvm_pvm/emulation_window.h"
#include "vmm/vm/compat/kvm_pvm/pvm_compat.h"
#include "vmm/vm/devices/acpi_pm/acpi_pm.h"
#include "vmm/vm/devices/i8042/i8042.h"
#include "vmm/vm/devices/io_bus.h"
#include "vmm/vm/devices/uart/uart16550.h"
#include "vmm/vm/machine/exit_decode.h"
#include "vmm/vm/machine/exit_dispatch.h"
#include "vmm/vm/machine/exit_stats.h"
#include "vmm/vm/machine/profiler.h"
#include "vmm/vm/machine/serial_output.h"
#include "vmm/vm/tpm_crb/tpm_frontend.h"
#include "vmm/vm/virtio_mmio/vhost_mmio_device.h"

namespace vmm {
namespace {

// Kicks a vCPU thread out of KVM_RUN; the handler itself does nothing.
constexpr int kKickSignal = SIGUSR1;
void OnKick(int) {}

std::string InternalErrorDetail(const exits::InternalError& e) {
  std::string s = "suberror " + std::to_string(e.suberror);
  if (e.has_insn_bytes) {
    s += ", instruction bytes:";
    for (uint8_t b : e.insn_bytes) {
      char buf[4];
      std::snprintf(buf, sizeof(buf), " %02x", b);
      s += buf;
    }
  } else {
    for (size_t i = 0; i < e.data.size(); ++i) s += (i ? " " : ", data: ") + Hex(e.data[i]);
  }
  return s;
}

}  // namespace

struct Machine::Impl {
  Impl(kvm::KvmVm vm, GuestMemory mem, SerialOutput serial)
      : vm(std::move(vm)), mem(std::move(mem)), serial(std::move(serial)) {}

  kvm::KvmVm vm;
  GuestMemory mem;
  SerialOutput serial;
  VmControl control;
  std::vector<kvm::KvmVcpu> vcpus;
  // Filled by each vCPU thread itself before its first KVM_RUN; 0 until then.
  std::unique_ptr<std::atomic<pthread_t>[]> thread_ids;
  devices::IoBus pio;
  devices::IoBus mmio;
  std::unique_ptr<devices::Uart16550> uart;
  std::unique_ptr<devices::I8042> i8042;
  std::unique_ptr<devices::AcpiPm> acpi_pm;
  MachineOptions options;
  std::unique_ptr<GuestProfiler> profiler;
  std::vector<VcpuExitCounts> exit_counts;  // one per vCPU with options.exit_stats, else none
  std::unique_ptr<compat::pvm::PvmCompat> compat;               // on kvm_pvm hosts or when forced
  std::unique_ptr<compat::pvm::EmulationWindow> compat_window;  // with `compat` only
  std::vector<std::unique_ptr<VhostMmioDevice>> virtio_devices;
  // The CRB buffer page (shared with nobody: the VM process copies commands out of it) and
  // the front end that forwards commands to the vTPM process.
  void* tpm_page = MAP_FAILED;
  std::unique_ptr<TpmFrontend> tpm;

  ~Impl() {
    tpm.reset();
    if (tpm_page != MAP_FAILED) munmap(tpm_page, vtpm::kCrbSuggestedBufferSize);
  }

  Result<void> CreateVirtioDevices(std::vector<DeviceLink> links);

  ExitAction HandleInternalError(VcpuContext& ctx, const exits::InternalError& e);
  std::string SymbolHint(VcpuContext& ctx) const;

  Result<void> CreateDevices(const VmSpec& cfg);
  ExitAction HandleExit(VcpuContext& ctx);
  void HandleIo(const exits::Io& io);
  void HandleMmio(const exits::Mmio& m);
  ExitAction HandleMsr(VcpuContext& ctx, uint32_t reason);
  ExitAction HandleDebug(VcpuContext& ctx);
  ExitAction HandleSystemEvent(VcpuContext& ctx, const exits::SystemEvent& e);
  void VcpuLoop(size_t index);
  void KickAll();
  void SampleLoop();
};

Result<void> Machine::Impl::CreateDevices(const VmSpec& cfg) {
  auto irq = [this](uint32_t gsi) {
    return [this, gsi](bool level) {
      auto r = vm.SetIrqLine(gsi, level);
      if (!r) control.RequestStop(StopReason::kError, r.error().ToString());
    };
  };
  if (cfg.serial != SerialMode::kOff) {
    uart = std::make_unique<devices::Uart16550>([this](uint8_t b) { serial.Put(b); },
                                                irq(x86::kCom1Irq));
    RETURN_IF_ERROR(pio.Insert(x86::kCom1Port, 8, uart.get()));
  }
  i8042 = std::make_unique<devices::I8042>([this] {
    control.RequestStop(StopReason::kReset,
                        "the guest reset the VM through the i8042; reboot is not supported, "
                        "so the VM stopped");
  });
  RETURN_IF_ERROR(pio.Insert(x86::kI8042DataPort, 1, i8042->data_port()));
  RETURN_IF_ERROR(pio.Insert(x86::kI8042CmdPort, 1, i8042->command_port()));
  acpi_pm = std::make_unique<devices::AcpiPm>(
      [this] { control.RequestStop(StopReason::kPowerOff, "the guest powered off through ACPI"); },
      irq(x86::kSciIrq));
  RETURN_IF_ERROR(pio.Insert(x86::kPm1aEvtPort, devices::AcpiPm::kSize, acpi_pm.get()));
  return Ok();
}

Result<void> Machine::Impl::CreateVirtioDevices(std::vector<DeviceLink> links) {
  for (size_t i = 0; i < links.size(); ++i) {
    DeviceLink& link = links[i];
    VhostMmioSpec spec;
    spec.name = link.name;
    spec.device_id = link.device_id;
    spec.config_size = link.config_size;
    spec.base = x86::VirtioMmioBase(i);
    spec.gsi = x86::VirtioMmioGsi(i);
    auto fe = vhost_user::Frontend::Connect(std::move(link.sock));
    if (!fe) return fe.error().Wrap(link.name);
    ASSIGN_OR_RETURN(std::unique_ptr<VhostMmioDevice> dev,
                     VhostMmioDevice::Create(vm, mem, std::move(fe).value(), spec,
                                             [this](const std::string& why) {
                                               control.RequestStop(StopReason::kError, why);
                                             }));
    RETURN_IF_ERROR(mmio.Insert(spec.base, x86::kVirtioMmioSize, dev.get()));
    virtio_devices.push_back(std::move(dev));
  }
  return Ok();
}

void Machine::Impl::HandleIo(const exits::Io& io) {
  for (uint32_t i = 0; i < io.count; ++i) {
    std::span<uint8_t> d = io.data.subspan(size_t{i} * io.size, io.size);
    if (io.direction == exits::IoDirection::kOut) {
      pio.Write(io.port, d);
    } else {
      pio.Read(io.port, d);
    }
  }
}

void Machine::Impl::HandleMmio(const exits::Mmio& m) {
  if (m.is_write) {
    mmio.Write(m.addr, m.data);
  } else {
    mmio.Read(m.addr, m.data);
  }
}

// Filtered MSR accesses and debug exits only occur with the kvm_pvm module on; without it
// they are as unexpected as any other exit we do not handle.
ExitAction Machine::Impl::HandleMsr(VcpuContext& ctx, uint32_t reason) {
  if (!compat) return StopWithVcpuError(ctx, "unhandled KVM exit " + ExitReasonName(reason));
  const GuestRam& ram = mem.ram();
  auto r = compat->HandleMsrExit(ctx.vcpu, ram);
  return r ? ExitAction::kContinue : StopWithVcpuError(ctx, r.error().ToString());
}

ExitAction Machine::Impl::HandleDebug(VcpuContext& ctx) {
  if (!compat) {
    return StopWithVcpuError(ctx, "unhandled KVM exit " + ExitReasonName(KVM_EXIT_DEBUG));
  }
  auto r = compat->HandleDebugExit(ctx.vcpu);
  if (!r) return StopWithVcpuError(ctx, r.error().ToString() + SymbolHint(ctx));
  return ctx.control.stopping() ? ExitAction::kStop : ExitAction::kContinue;
}

ExitAction Machine::Impl::HandleSystemEvent(VcpuContext& ctx, const exits::SystemEvent& e) {
  if (e.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
    ctx.control.RequestStop(StopReason::kPowerOff, "the guest shut down (KVM system event)");
  } else if (e.type == KVM_SYSTEM_EVENT_RESET) {
    ctx.control.RequestStop(StopReason::kReset, "the guest reset the VM; reboot is not supported");
  } else {
    return StopWithVcpuError(ctx, "KVM system event " + std::to_string(e.type));
  }
  return ExitAction::kStop;
}

// Every exit is decoded once, against the mapping's real size, and matched here.
ExitAction Machine::Impl::HandleExit(VcpuContext& ctx) {
  auto decoded = DecodeExit(ctx.vcpu.run_mapping());
  if (!decoded) return StopWithVcpuError(ctx, decoded.error().message());
  auto proceed = [&ctx] {
    return ctx.control.stopping() ? ExitAction::kStop : ExitAction::kContinue;
  };
  auto unhandled = [&ctx](uint32_t reason) {
    return StopWithVcpuError(ctx, "unhandled KVM exit " + ExitReasonName(reason));
  };
  return std::visit(
      Overloaded{
          [&](const exits::Io& io) {
            HandleIo(io);
            return proceed();
          },
          [&](const exits::Mmio& m) {
            HandleMmio(m);
            return proceed();
          },
          [&](const exits::Intr&) { return proceed(); },
          [&](const exits::Shutdown&) {
            return StopWithVcpuError(ctx, "the guest triple-faulted (KVM_EXIT_SHUTDOWN)");
          },
          [&](const exits::FailEntry& f) {
            return StopWithVcpuError(
                ctx, "KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason " +
                         Hex(f.hardware_reason) + ")");
          },
          [&](const exits::InternalError& e) { return HandleInternalError(ctx, e); },
          [&](const exits::X86Rdmsr&) { return HandleMsr(ctx, KVM_EXIT_X86_RDMSR); },
          [&](const exits::X86Wrmsr&) { return HandleMsr(ctx, KVM_EXIT_X86_WRMSR); },
          [&](const exits::Debug&) { return HandleDebug(ctx); },
          [&](const exits::SystemEvent& e) { return HandleSystemEvent(ctx, e); },
          [&](const exits::Hlt&) { return unhandled(KVM_EXIT_HLT); },
          [&](const exits::Unknown& u) { return unhandled(u.reason); },
      },
      decoded.value());
}

std::string Machine::Impl::SymbolHint(VcpuContext& ctx) const {
  if (!options.symbols) return "";
  auto regs = ctx.vcpu.GetRegs();
  if (!regs) return "";
  std::string name = options.symbols->Describe(regs->rip);
  return name.empty() ? "" : " in " + name;
}

ExitAction Machine::Impl::HandleInternalError(VcpuContext& ctx, const exits::InternalError& e) {
  const GuestRam& ram = mem.ram();
  if (e.suberror != KVM_INTERNAL_ERROR_EMULATION) {
    return StopWithVcpuError(
        ctx, "KVM internal error (KVM_EXIT_INTERNAL_ERROR, " + InternalErrorDetail(e) + ")");
  }
  if (!compat) {
    return StopWithVcpuError(ctx, "KVM's instruction emulator gave up on " +
                                      compat::pvm::DescribeFailedInstruction(ctx.vcpu, ram) +
                                      SymbolHint(ctx) + " (KVM_EXIT_INTERNAL_ERROR, " +
                                      InternalErrorDetail(e) +
                                      "); the kvm_pvm compatibility module is off (--kvm-compat)");
  }
  auto r = compat->CompleteEmulationFailure(ctx.vcpu, ram);
  if (!r) return StopWithVcpuError(ctx, r.error().ToString() + SymbolHint(ctx));
  return ctx.control.stopping() ? ExitAction::kStop : ExitAction::kContinue;
}

void Machine::Impl::VcpuLoop(size_t index) {
  kvm::KvmVcpu& vcpu = vcpus[index];
  thread_ids[index].store(pthread_self());
  VcpuContext ctx{vcpu, control};
  while (!control.stopping()) {
    auto r = vcpu.Run();
    if (!r) {
      if (r.error().sys_errno() == EINTR || r.error().sys_errno() == EAGAIN) {
        // A profiling sample (or a stop request) interrupted the guest.
        if (!exit_counts.empty()) exit_counts[index].RecordInterrupted();
        if (profiler && !control.stopping()) {
          auto regs = vcpu.GetRegs();
          if (regs) profiler->Record(regs->rip);
        }
        continue;
      }
      control.RequestStop(StopReason::kError,
                          "vCPU " + std::to_string(index) + ": " + r.error().ToString());
      break;
    }
    if (!exit_counts.empty()) exit_counts[index].Record(*vcpu.run_page());
    if (HandleExit(ctx) == ExitAction::kStop) break;
  }
}

void Machine::Impl::KickAll() {
  for (size_t i = 0; i < vcpus.size(); ++i) {
    // Set before the signal: a thread about to enter KVM_RUN returns at once (EINTR).
    __atomic_store_n(&vcpus[i].run_page()->immediate_exit, 1, __ATOMIC_SEQ_CST);
    pthread_t t = thread_ids[i].load();
    if (t != 0) pthread_kill(t, kKickSignal);
  }
}

void Machine::Impl::SampleLoop() {
  int timeout_ms = static_cast<int>(std::max<uint32_t>(options.profile_interval_us / 1000, 1));
  auto loop = EventLoop::Create();
  if (!loop || !loop->Add(control.WaitFd(), EPOLLIN, [](uint32_t) {})) {
    std::fprintf(stderr, "vmm: vcpu: the profiler's sampler has no event loop; no samples\n");
    return;
  }
  while (!control.stopping()) {
    auto ready = loop->RunOnce(timeout_ms);
    if (!ready || *ready != 0) continue;  // a stop request ends the loop
    for (size_t i = 0; i < vcpus.size(); ++i) {
      pthread_t t = thread_ids[i].load();
      if (t != 0) pthread_kill(t, kKickSignal);
    }
  }
}

Machine::Machine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Machine::~Machine() = default;

Result<std::unique_ptr<Machine>> Machine::Create(const VmSpec& cfg, BootPlan plan,
                                                 const kvm::Kvm& kvm, MachineOptions options,
                                                 std::vector<DeviceLink> devices,
                                                 UniqueFd tpm_data) {
  if (devices.size() > x86::kMaxVirtioMmioDevices) {
    return InvalidArgument("at most " + std::to_string(x86::kMaxVirtioMmioDevices) +
                           " virtio devices");
  }
  if (static_cast<int>(cfg.cpus) > kvm.MaxVcpus()) {
    return InvalidArgument("--cpus: " + std::to_string(cfg.cpus) + " vCPUs is more than KVM " +
                           "allows on this host (" + std::to_string(kvm.MaxVcpus()) + ")");
  }
  ASSIGN_OR_RETURN(SerialOutput serial, SerialOutput::Open(cfg));
  ASSIGN_OR_RETURN(kvm::KvmVm vm, kvm.CreateVm());
  RETURN_IF_ERROR(vm.SetupX86Platform());
  ASSIGN_OR_RETURN(GuestMemory mem, GuestMemory::Create(cfg.memory));
  auto impl = std::make_unique<Impl>(std::move(vm), std::move(mem), std::move(serial));
  const bool plan_compat = plan.kvm_compat;

  // With the kvm_pvm module on, one page of low RAM stays out of the memslots: the module's
  // emulation window (compat/kvm_pvm/emulation_window.h).
  const uint64_t hole = plan_compat ? x86::kCompatWindowAddr : 0;
  const uint64_t hole_end = plan_compat ? hole + compat::pvm::EmulationWindow::kSize : 0;
  uint32_t slot = 0;
  for (const MemoryRegion& r : impl->mem.regions()) {
    uint8_t* host = impl->mem.host_base() + r.file_offset;
    if (plan_compat && r.guest_phys <= hole && hole_end <= r.guest_phys + r.size) {
      const uint64_t below = hole - r.guest_phys;
      if (below > 0)
        RETURN_IF_ERROR(impl->vm.SetUserMemoryRegion(slot++, r.guest_phys, below, host));
      RETURN_IF_ERROR(impl->vm.SetUserMemoryRegion(
          slot++, hole_end, r.size - below - (hole_end - hole), host + (hole_end - r.guest_phys)));
      impl->compat_window = std::make_unique<compat::pvm::EmulationWindow>(impl->mem, hole);
      RETURN_IF_ERROR(
          impl->mmio.Insert(hole, compat::pvm::EmulationWindow::kSize, impl->compat_window.get()));
      continue;
    }
    RETURN_IF_ERROR(impl->vm.SetUserMemoryRegion(slot++, r.guest_phys, r.size, host));
  }

  if (tpm_data.valid()) {
    // One page of ordinary memory the guest fills with plain stores (no exit per access);
    // registers trap, the page does not.
    impl->tpm_page = mmap(nullptr, vtpm::kCrbSuggestedBufferSize, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (impl->tpm_page == MAP_FAILED) return ErrnoError("mmap of the TPM CRB buffer");
    RETURN_IF_ERROR(impl->vm.SetUserMemoryRegion(slot++, vtpm::kCrbSuggestedBufferGpa,
                                                 vtpm::kCrbSuggestedBufferSize,
                                                 static_cast<uint8_t*>(impl->tpm_page)));
    std::span<uint8_t> page(static_cast<uint8_t*>(impl->tpm_page), vtpm::kCrbSuggestedBufferSize);
    ASSIGN_OR_RETURN(impl->tpm,
                     TpmFrontend::Create(std::move(tpm_data), vtpm::kCrbSuggestedBufferGpa, page));
    RETURN_IF_ERROR(impl->mmio.Insert(vtpm::kCrbBaseGpa, vtpm::kCrbWindowSize, impl->tpm.get()));
  }

  // The measured boot's event log, as the manager wrote it, where the TPM2 table says.
  const bool event_log = impl->tpm != nullptr && !cfg.event_log.empty();
  if (event_log) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> log,
                     ReadFileLimited(cfg.event_log, x86::kTpmEventLogSize, "the event log"));
    RETURN_IF_ERROR(impl->mem.Write(x86::kTpmEventLogAddr, log));
  }
  ASSIGN_OR_RETURN(acpi::AcpiTables tables,
                   BuildPlatformAcpi(cfg.cpus, impl->tpm != nullptr, devices.size(), event_log));
  std::vector<uint8_t> acpi_blob = std::move(tables.bytes);
  RETURN_IF_ERROR(impl->mem.Write(x86::kAcpiTablesAddr, acpi_blob));
  RETURN_IF_ERROR(LoadBootPlan(plan, impl->mem, x86::kAcpiTablesAddr));

  ASSIGN_OR_RETURN(std::vector<kvm_cpuid_entry2> supported, kvm.GetSupportedCpuid());
  for (uint32_t i = 0; i < cfg.cpus; ++i) {
    ASSIGN_OR_RETURN(kvm::KvmVcpu vcpu, impl->vm.CreateVcpu(i, kvm.vcpu_mmap_size()));
    RETURN_IF_ERROR(
        x86::SetupVcpuCommon(vcpu, x86::BuildCpuid(supported, i, cfg.cpus, kvm.flavor())));
    if (i == 0) {
      RETURN_IF_ERROR(x86::SetupBootCpuRegisters(vcpu, impl->mem, plan.image.protocol,
                                                 plan.image.entry, plan.boot_data_gpa));
    }
    impl->vcpus.push_back(std::move(vcpu));
  }
  RETURN_IF_ERROR(impl->CreateDevices(cfg));
  RETURN_IF_ERROR(impl->CreateVirtioDevices(std::move(devices)));
  if (plan_compat) {
    ASSIGN_OR_RETURN(impl->compat, compat::pvm::PvmCompat::Enable(impl->vm, cfg.cpus));
  }
  impl->options = options;
  if (options.profile) impl->profiler = std::make_unique<GuestProfiler>();
  if (options.exit_stats) impl->exit_counts.resize(cfg.cpus);
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

RunOutcome Machine::Run() {
  Impl& m = *impl_;
  // SIGINT/SIGTERM (stop) and SIGPWR (press the ACPI power button: the manager's graceful
  // shutdown, ARCHITECTURE.md §8) are taken through a signalfd by this thread only; vCPU
  // threads inherit the mask with the kick signal unblocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGPWR);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  UniqueFd sigfd(signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));

  struct sigaction sa {};
  sa.sa_handler = OnKick;  // no SA_RESTART: KVM_RUN must return EINTR
  sigaction(kKickSignal, &sa, nullptr);
  sigset_t kick;
  sigemptyset(&kick);
  sigaddset(&kick, kKickSignal);
  pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);

  m.thread_ids.reset(new std::atomic<pthread_t>[m.vcpus.size()]);
  for (size_t i = 0; i < m.vcpus.size(); ++i) m.thread_ids[i].store(0);
  m.control.SetKicker([&m] { m.KickAll(); });
  std::vector<std::thread> threads;
  for (size_t i = 0; i < m.vcpus.size(); ++i) threads.emplace_back([&m, i] { m.VcpuLoop(i); });
  std::thread sampler;
  if (m.profiler) sampler = std::thread([&m] { m.SampleLoop(); });

  int signo = 0;
  auto loop = EventLoop::Create();
  if (!loop) {
    m.control.RequestStop(StopReason::kError, "vcpu: " + loop.error().ToString());
  }
  auto watch = [&](int fd, EventLoop::Callback cb) {
    if (!loop || m.control.stopping()) return;
    if (auto r = loop->Add(fd, EPOLLIN, std::move(cb)); !r) {
      m.control.RequestStop(StopReason::kError, "vcpu: " + r.error().ToString());
    }
  };
  watch(m.control.WaitFd(), [](uint32_t) {});  // wakes the wait; the loop checks stopping()
  watch(sigfd.get(), [&](uint32_t events) {
    signalfd_siginfo si;
    if ((events & EPOLLIN) && read(sigfd.get(), &si, sizeof(si)) == sizeof(si)) {
      if (si.ssi_signo == SIGPWR) {
        m.acpi_pm->PressPowerButton();
        std::fprintf(stderr, "vmm-vcpu: ACPI power button pressed\n");
        return;
      }
      signo = static_cast<int>(si.ssi_signo);
      const char* name = sigabbrev_np(signo);
      m.control.RequestStop(StopReason::kSignal,
                            std::string("stopped by SIG") + (name ? name : "?"));
    }
  });
  for (auto& dev : m.virtio_devices) {
    for (int fd : dev->error_fds()) {
      VhostMmioDevice* owner = dev.get();
      watch(fd, [owner, fd](uint32_t events) {
        if (events & EPOLLIN) owner->OnRingError(fd);
      });
    }
  }
  const int tpm_fd = m.tpm ? m.tpm->fd() : -1;
  if (m.tpm && !m.tpm->broken()) {
    watch(tpm_fd, [&m](uint32_t) {
      // The guest sees a fatal TPM; the manager stops the VM if the vTPM process died.
      if (auto r = m.tpm->OnReadable(); !r) {
        std::fprintf(stderr, "vmm: vcpu: %s; the guest's TPM reports a fatal error\n",
                     r.error().ToString().c_str());
      }
    });
  }
  while (loop && !m.control.stopping()) {
    // A broken channel (a vCPU's send may break it) is no longer waited on.
    if (tpm_fd >= 0 && loop->Watching(tpm_fd) && m.tpm->broken()) loop->Remove(tpm_fd);
    if (!loop->RunOnce(-1)) break;
  }
  m.KickAll();
  for (std::thread& t : threads) t.join();
  if (sampler.joinable()) sampler.join();
  m.serial.Flush();
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  RunOutcome out{m.control.reason(), m.control.message(), signo, "", ""};
  if (m.compat) out.compat_summary = m.compat->Summary();
  if (m.profiler) out.profile = m.profiler->Report(m.options.symbols.get(), 25);
  if (!m.exit_counts.empty()) out.exit_stats = FormatExitStats(MergeExitCounts(m.exit_counts), 10);
  return out;
}

}  // namespace vmm
