#include "vmm/manager/audit/linux_audit.h"

#include <libaudit.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmm::audit {

static_assert(kAuditVirtControl == AUDIT_VIRT_CONTROL);
static_assert(kAuditVirtResource == AUDIT_VIRT_RESOURCE);
static_assert(kAuditVirtMachineId == AUDIT_VIRT_MACHINE_ID);

namespace {

// The bytes libaudit's audit_value_needs_encoding flags: a quote, space and controls, DEL and
// everything above ASCII.
bool NeedsEncoding(std::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u == '"' || u < 0x21 || u >= 0x7f) return true;
  }
  return false;
}

std::string HexUpper(std::string_view v) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string s;
  s.reserve(v.size() * 2);
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    s += kDigits[u >> 4];
    s += kDigits[u & 0xf];
  }
  return s;
}

std::string Detail(const Event& e, std::string_view key) {
  for (const auto& [k, v] : e.details) {
    if (k == key) return v;
  }
  return "";
}

bool IsNumber(const std::string& s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "vm=\"name\" uuid=..." shared by every record.
std::string VmFields(const Event& e) {
  return EncodeAuditField("vm", e.vm_name) + " uuid=" + (e.vm_uuid.empty() ? "?" : e.vm_uuid);
}

std::string ClientFields(const Event& e) {
  return " client-uid=" + std::to_string(e.who.uid) + " client-gid=" + std::to_string(e.who.gid) +
         " client-pid=" + std::to_string(e.who.pid) + " client-ctx=" + AuditToken(e.who.context);
}

}  // namespace

std::string EncodeAuditField(std::string_view name, std::string_view value) {
  std::string out(name);
  out += '=';
  if (NeedsEncoding(value)) return out + HexUpper(value);
  out += '"';
  out += value;
  out += '"';
  return out;
}

std::string AuditToken(std::string_view value) {
  if (value.empty()) return "?";
  return NeedsEncoding(value) ? HexUpper(value) : std::string(value);
}

std::vector<LinuxAuditRecord> LinuxAuditRecordsFor(const Event& e) {
  std::vector<LinuxAuditRecord> out;
  const std::string virt = "virt=kvm";
  const std::string vm = VmFields(e);
  const std::string client = ClientFields(e);
  if (e.action == "start") {
    for (const auto& [k, v] : e.details) {
      std::string text;
      if (k == "disk" || k == "rng") {
        text = virt + " resrc=" + k + " reason=start " + vm + " " +
               EncodeAuditField("old-" + k, "?") + " " + EncodeAuditField("new-" + k, v);
      } else if (k == "tpm") {
        text =
            virt + " resrc=tpm-emulator reason=start " + vm + " " + EncodeAuditField("device", v);
      } else if ((k == "mem_kib" || k == "vcpus") && IsNumber(v)) {
        const std::string r = k == "mem_kib" ? "mem" : "vcpu";
        text = virt + " resrc=" + r + " reason=start " + vm + " old-" + r + "=0 new-" + r + "=" + v;
      } else {
        continue;
      }
      out.push_back({kAuditVirtResource, text + client, e.success});
    }
    const std::string vm_ctx = Detail(e, "vm_ctx");
    if (!vm_ctx.empty()) {
      out.push_back({kAuditVirtMachineId,
                     virt + " " + vm + " vm-ctx=" + AuditToken(vm_ctx) +
                         " img-ctx=" + AuditToken(Detail(e, "img_ctx")) + " model=selinux" + client,
                     e.success});
    }
  }
  std::string vm_pid = Detail(e, "vm_pid");
  if (!IsNumber(vm_pid)) vm_pid = "0";
  out.push_back({kAuditVirtControl,
                 virt + " op=" + e.action + " reason=" + AuditToken(Detail(e, "reason")) + " " +
                     vm + " vm-pid=" + vm_pid + client,
                 e.success});
  return out;
}

LinuxAuditSink::LinuxAuditSink() {
  fd_ = audit_open();
  if (fd_ < 0) {
    failed_ = true;
    status_ = errno == EINVAL || errno == EPROTONOSUPPORT || errno == EAFNOSUPPORT
                  ? "the kernel has no audit support"
                  : std::string("audit_open: ") + std::strerror(errno);
    return;
  }
  // 0: off, 1: on, 2: on and locked; below 0: we may not ask (no CAP_AUDIT_CONTROL), so try.
  if (audit_is_enabled(fd_) == 0) {
    failed_ = true;
    status_ = "the kernel's audit is off (auditctl -e 1 turns it on)";
  }
}

LinuxAuditSink::~LinuxAuditSink() {
  if (fd_ >= 0) audit_close(fd_);
}

bool LinuxAuditSink::Send(const LinuxAuditRecord& record) {
  if (!enabled()) return false;
  // hostname, addr and tty: none (libvirt passes none for its own records either).
  const int rc = audit_log_user_message(fd_, record.type, record.text.c_str(), nullptr, nullptr,
                                        nullptr, record.success ? 1 : 0);
  if (rc <= 0) {
    failed_ = true;
    // 0: libaudit hid the failure (no audit daemon listening, or no CAP_AUDIT_WRITE).
    const int err = rc < 0 ? -rc : ECONNREFUSED;
    status_ = err == ECONNREFUSED ? "the kernel's audit is off (auditctl -e 1 turns it on)"
              : err == EPERM      ? "not allowed to write audit records (needs CAP_AUDIT_WRITE)"
                                  : std::string("audit_log_user_message: ") + std::strerror(err);
    return false;
  }
  return true;
}

}  // namespace vmm::audit
