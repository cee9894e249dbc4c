// The manager's device processes: one `vmm-device` per virtio device of the VM, started
// by fork+exec into new namespaces with only its fds (SpawnRole), supervised through a
// pidfd, and reaped at the end.
//
//   ASSIGN_OR_RETURN(std::vector<DeviceProcess> devs, StartDeviceProcesses(cfg));  // single-threaded
//   ... hand each dev.sock to the VM process, poll each dev.pidfd ...
//   std::string problems = ReapDeviceProcesses(devs);  // after the VM stopped
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/manager/child_process.h"
#include "vmm/manager/config.h"

namespace vmm {

struct DeviceProcess {
  std::string name;            // "blk0", "rng0"
  std::string role;            // sandbox role: "device-blk", "device-rng"
  uint32_t device_id = 0;      // virtio device id
  uint32_t config_size = 0;    // bytes of config space the front-end reads
  ManagedChild child;          // its log lines are prefixed "vmm: <role> <name>: "
  UniqueFd sock;               // our end of the vhost-user session (moved into the Machine)
};

// A program installed beside the running one (vmm-device, vmm-vcpu): build/bin or bin/.
Result<std::string> SiblingBinary(const std::string& name);

// Bad input before anything starts: each disk image must be a regular file or block device
// we can open as asked (read-write unless readonly=on).
Result<void> CheckDiskImages(const VmConfig& cfg);

// Opens each disk image and spawns its device process, then the rng's. The caller must be
// single-threaded (SpawnRole). On error the processes already started are killed.
Result<std::vector<DeviceProcess>> StartDeviceProcesses(const VmConfig& cfg);

// Reaps a device process that ended (ManagedChild::Reap), its text prefixed for the VM's
// stop message: "device process blk0 (pid 12) was killed by SIGSYS: its seccomp filter
// denied socket (41)".
ChildExit ReapDeviceProcess(DeviceProcess& dev);

// After the VM stopped (its sessions closed): waits up to `grace_ms` for each device
// process to exit, SIGKILLs the rest, reaps all. Returns one line per process that did not
// exit with status 0, empty when all did.
std::string ReapDeviceProcesses(std::vector<DeviceProcess>& devs, int grace_ms = 2000);

}  // namespace vmm
