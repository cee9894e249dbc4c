// Events as Linux audit records in libvirt's layout, so `ausearch -m VIRT_CONTROL` and the
// filters written for libvirt's records find ours (ARCHITECTURE.md §10). Formatting is pure and
// unit-tested; LinuxAuditSink sends through libaudit where the kernel's audit is on.
//
//   for (const LinuxAuditRecord& r : LinuxAuditRecordsFor(event)) sink.Send(r);
//
// The fields, in libvirt's order (what libaudit and the kernel add: type, pid, uid, auid, ses,
// subj, exe, hostname, addr, terminal, res):
//   VIRT_CONTROL     virt=kvm op=<action> reason=<reason> vm="<name>" uuid=<uuid> vm-pid=<pid>
//   VIRT_RESOURCE    virt=kvm resrc=disk reason=start vm=.. uuid=.. old-disk="?" new-disk="<path>"
//                    virt=kvm resrc=mem|vcpu reason=start vm=.. uuid=.. old-mem=0 new-mem=<KiB>
//                    virt=kvm resrc=rng ... old-rng="?" new-rng="<source>"
//                    virt=kvm resrc=tpm-emulator reason=start vm=.. uuid=.. device="<state>"
//   VIRT_MACHINE_ID  virt=kvm vm=.. uuid=.. vm-ctx=<label> img-ctx=<label> model=selinux
// then, after libvirt's fields, who asked: client-uid= client-gid= client-pid= client-ctx=.
// virt=kvm, as libvirt writes for a KVM domain: our VMs are KVM VMs, and the exe= field the
// kernel adds names /usr/bin/vmm, not QEMU. A value with a space, a quote or a byte outside
// printable ASCII is hex-encoded as libaudit's audit_encode_nv_string does; an absent one is "?".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "vmm/manager/audit/audit_event.h"

namespace vmm::audit {

// The record types of <libaudit.h> (checked against it in linux_audit.cc).
inline constexpr int kAuditVirtControl = 2500;
inline constexpr int kAuditVirtResource = 2501;
inline constexpr int kAuditVirtMachineId = 2502;

struct LinuxAuditRecord {
  int type = kAuditVirtControl;
  std::string text;
  bool success = true;
};

// name="value", or name=HEX (uppercase) when the value has a byte that needs encoding.
std::string EncodeAuditField(std::string_view name, std::string_view value);
// For keyword fields libvirt writes bare (reason=, vm-ctx=): the value itself when it is
// printable ASCII without spaces or quotes, "?" when empty, else hex as above.
std::string AuditToken(std::string_view value);

// A start: VIRT_RESOURCE per disk, rng, tpm, mem and vcpu detail, VIRT_MACHINE_ID when the
// details have vm_ctx, then VIRT_CONTROL op=start. Any other action: VIRT_CONTROL op=<action>.
// The resource records carry the event's result (a refused start assigned nothing).
std::vector<LinuxAuditRecord> LinuxAuditRecordsFor(const Event& event);

// The kernel's audit socket, when there is one. Best effort: never fails the caller.
class LinuxAuditSink {
 public:
  LinuxAuditSink();  // opens the socket; on a kernel without audit, stays off
  ~LinuxAuditSink();
  LinuxAuditSink(const LinuxAuditSink&) = delete;
  LinuxAuditSink& operator=(const LinuxAuditSink&) = delete;

  bool enabled() const { return fd_ >= 0 && !failed_; }
  // Why records are not sent ("" while they are); set once, at the first failure.
  const std::string& status() const { return status_; }
  // Sends; on the first failure notes why (status()) and sends nothing more. Returns whether
  // the kernel took the record.
  bool Send(const LinuxAuditRecord& record);

 private:
  int fd_ = -1;
  bool failed_ = false;
  std::string status_;
};

}  // namespace vmm::audit
