#include "vmm/manager/audit/linux_audit.h"

#include <libaudit.h>

#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/unit/audit/audit_test_util.h"

namespace vmm::audit {
namespace {

Event Start() {
  Event e;
  e.action = "start";
  e.who = {0, 0, 321, ""};
  e.vm_uuid = "6f1c9a3e-2b4d-4e8f-9a1b-3c5d7e9f1a2b";
  e.vm_name = "web";
  e.details = {{"kernel_sha256", std::string(64, 'a')},
               {"disk", "/var/lib/vmm/web.raw"},
               {"disk", "/var/lib/vmm/my data.raw"},
               {"tpm", "/var/lib/vmm/web-tpm"},
               {"mem_kib", "524288"},
               {"vcpus", "2"},
               {"vm_ctx", "system_u:system_r:svirt_t:s0:c1,c2"},
               {"img_ctx", "system_u:object_r:svirt_image_t:s0:c1,c2"},
               {"vm_pid", "4321"},
               {"reason", "booted"}};
  return e;
}

const std::string kVm = "vm=\"web\" uuid=6f1c9a3e-2b4d-4e8f-9a1b-3c5d7e9f1a2b";
const std::string kClient = " client-uid=0 client-gid=0 client-pid=321 client-ctx=?";

TEST(LinuxAudit, StartIsLibvirtsResourceIdAndControlRecords) {
  const auto records = LinuxAuditRecordsFor(Start());
  ASSERT_EQ(records.size(), 7u);
  EXPECT_EQ(records[0].type, kAuditVirtResource);
  EXPECT_EQ(records[0].text, "virt=kvm resrc=disk reason=start " + kVm +
                                 " old-disk=\"?\" new-disk=\"/var/lib/vmm/web.raw\"" + kClient);
  // A path with a space is hex, as audit_encode_nv_string writes it.
  EXPECT_EQ(records[1].text,
            "virt=kvm resrc=disk reason=start " + kVm +
                " old-disk=\"?\" new-disk=2F7661722F6C69622F766D6D2F6D7920646174612E726177" +
                kClient);
  EXPECT_EQ(records[2].text, "virt=kvm resrc=tpm-emulator reason=start " + kVm +
                                 " device=\"/var/lib/vmm/web-tpm\"" + kClient);
  EXPECT_EQ(records[3].text,
            "virt=kvm resrc=mem reason=start " + kVm + " old-mem=0 new-mem=524288" + kClient);
  EXPECT_EQ(records[4].text,
            "virt=kvm resrc=vcpu reason=start " + kVm + " old-vcpu=0 new-vcpu=2" + kClient);
  EXPECT_EQ(records[5].type, kAuditVirtMachineId);
  EXPECT_EQ(records[5].text, "virt=kvm " + kVm +
                                 " vm-ctx=system_u:system_r:svirt_t:s0:c1,c2 "
                                 "img-ctx=system_u:object_r:svirt_image_t:s0:c1,c2 model=selinux" +
                                 kClient);
  EXPECT_EQ(records[6].type, kAuditVirtControl);
  EXPECT_EQ(records[6].text, "virt=kvm op=start reason=booted " + kVm + " vm-pid=4321" + kClient);
  for (const auto& r : records) EXPECT_TRUE(r.success);
}

TEST(LinuxAudit, RefusedStartCarriesTheFailureAndTheClient) {
  Event e = Start();
  e.success = false;
  e.who = {1001, 1002, 77, "user_u:user_r:user_t:s0"};
  e.details = {{"reason", "policy: kernel not allowed"}};
  const auto records = LinuxAuditRecordsFor(e);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_FALSE(records[0].success);
  EXPECT_EQ(records[0].text,
            "virt=kvm op=start reason=706F6C6963793A206B65726E656C206E6F7420616C6C6F776564 " + kVm +
                " vm-pid=0 client-uid=1001 client-gid=1002 client-pid=77 "
                "client-ctx=user_u:user_r:user_t:s0");
}

TEST(LinuxAudit, OtherActionsAreControlRecordsOnly) {
  for (const char* action : {"stop", "pause", "resume", "shutdown", "attest"}) {
    Event e = Start();
    e.action = action;
    e.vm_uuid = "";
    e.details = {};
    const auto records = LinuxAuditRecordsFor(e);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].type, kAuditVirtControl);
    EXPECT_EQ(records[0].text, std::string("virt=kvm op=") + action +
                                   " reason=? vm=\"web\" uuid=? vm-pid=0" + kClient);
  }
}

TEST(LinuxAudit, EncodingMatchesLibaudit) {
  for (const std::string value :
       {"web", "", "with space", "quote\"d", "tab\t", "caf\xc3\xa9", "del\x7f", "~!#$%^&*()"}) {
    char* theirs = audit_encode_nv_string("vm", value.c_str(), 0);
    ASSERT_NE(theirs, nullptr);
    EXPECT_EQ(EncodeAuditField("vm", value), theirs) << value;
    std::free(theirs);
  }
}

TEST(LinuxAudit, SinkIsBestEffort) {
  LinuxAuditSink sink;
  if (sink.enabled()) {
    // The kernel's audit is on here: the record goes out, or the first failure says why.
    const bool sent = sink.Send(LinuxAuditRecordsFor(Start()).back());
    EXPECT_EQ(sent, sink.status().empty()) << sink.status();
  } else {
    EXPECT_FALSE(sink.status().empty());
    EXPECT_FALSE(sink.Send(LinuxAuditRecordsFor(Start()).back()));
  }
}

}  // namespace
}  // namespace vmm::audit
