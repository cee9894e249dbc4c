// The manager's device processes: one `vmm-device` per virtio device of the VM, started
// by fork+exec into new namespaces with only its fds (SpawnRole), supervised through a
// pidfd, and reaped at the end.
//
//   ASSIGN_OR_RETURN(std::vector<DeviceProcess> devs, StartDeviceProcesses(cfg));  //
//   single-threaded
//   ... hand each dev.sock to the VM process, poll each dev.pidfd ...
//   std::string problems = ReapDeviceProcesses(devs);  // after the VM stopped
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "sandbox/child_log.h"
#include "vmm/contract/device_table.h"
#include "vmm/manager/child_process.h"
#include "vmm/manager/config.h"

namespace vmm {

// One virtio device the configuration asks for, in virtio-mmio slot order (disks, then the
// rng, then the vsock): what StartDeviceProcesses starts and `vmm run --dry-run` lists.
struct PlannedDevice {
  const DeviceKind* kind = nullptr;    // its row of the device table: virtio id, role, ...
  std::string name;                    // "blk0", "rng0"
  size_t slot = 0;                     // virtio-mmio slot (x86::VirtioMmioBase, VirtioMmioGsi)
  const DiskConfig* disk = nullptr;    // with kind->has_image: the disk it serves
  const VsockConfig* vsock = nullptr;  // the vsock device's CID and host socket
};
std::vector<PlannedDevice> PlanDevices(const VmConfig& cfg);

// Its --dry-run line: "virtio-blk0: disk.img (read-only), in its own process (vmm-device
// blk), mmio 0xd0000000 gsi 16"; a kind with one instance is not numbered ("virtio-rng: ...").
std::string DescribePlannedDevice(const PlannedDevice& dev);

struct DeviceProcess {
  const DeviceKind* kind = nullptr;  // its row of the device table: virtio id, config size, role
  std::string name;                  // "blk0", "rng0"
  ManagedChild child;                // its log lines are prefixed "vmm: <role> <name>: "
  UniqueFd sock;                     // our end of the vhost-user session (moved into the Machine)
  // The VM process's end of its session, for the VM spec: fd is our sock's number.
  DeviceSpec Spec() const;
};

// A role binary (vmm-vcpu, vmm-device, vmm-vtpm), found from the running manager's own path
// (/proc/self/exe, never the environment): the installed libexec directory (bin/vmm ->
// libexec/vmm/NAME, README.md "Installing"), else beside the manager (build/bin).
Result<std::string> RoleBinary(const std::string& name);

// Bad input before anything starts: each disk image must be a regular file or block device
// we can open as asked (read-write unless readonly=on).
Result<void> CheckDiskImages(const VmConfig& cfg);
// --vsock's socket path: absent or a (stale) socket, in an existing directory.
Result<void> CheckVsockSocket(const VmConfig& cfg);

// Opens each disk image and spawns its device process, then the rng's (PlanDevices' order). The
// caller must be single-threaded (SpawnRole). On error the processes already started are killed.
// With `apparmor_vm_id`, each process is exec'd into its VM's AppArmor profile
// vmm-<id>-<name> (apparmor_vm.h, ARCHITECTURE.md "AppArmor").
Result<std::vector<DeviceProcess>> StartDeviceProcesses(const VmConfig& cfg,
                                                        const std::string& apparmor_vm_id = "");
// The same with the images already open, one fd per cfg.disks entry in its order
// (OpenDiskImages): a manager that drops its privileges opens them first (ARCHITECTURE.md §1).
Result<std::vector<DeviceProcess>> StartDeviceProcesses(const VmConfig& cfg,
                                                        std::vector<UniqueFd> images,
                                                        const std::string& apparmor_vm_id = "");
// Opens each disk image and labels it for this VM (SELinux: the VM's MCS level, ARCHITECTURE.md
// §11; a read-only image at s0).
Result<std::vector<UniqueFd>> OpenDiskImages(const VmConfig& cfg);

// Reaps a device process that ended (ManagedChild::Reap), its text prefixed for the VM's
// stop message: "device process blk0 (pid 12) was killed by SIGSYS: its seccomp filter
// denied socket (41)".
ChildExit ReapDeviceProcess(DeviceProcess& dev);

// After the VM stopped (its sessions closed): waits up to `grace_ms` for each device
// process to exit, SIGKILLs the rest, reaps all. Returns one line per process that did not
// exit with status 0, empty when all did.
std::string ReapDeviceProcesses(std::vector<DeviceProcess>& devs, int grace_ms = 2000);

}  // namespace vmm
