#include "sandbox/apparmor.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/unique_fd.h"

namespace vmm::sandbox {

bool IsPlainAppArmorName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '-' || name[0] == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<std::string> SetAppArmorExecProfile(std::string_view profile) {
  if (!IsPlainAppArmorName(profile)) {
    return InvalidArgument("AppArmor profile name '" + std::string(profile) +
                           "': only [A-Za-z0-9._-] are accepted");
  }
  // The LSM-specific file first (Linux 5.1), then the shared one AppArmor used before.
  const char* path = "/proc/thread-self/attr/apparmor/exec";
  UniqueFd fd(open(path, O_WRONLY | O_CLOEXEC));
  if (!fd.valid() && errno == ENOENT) {
    path = "/proc/thread-self/attr/exec";
    fd.reset(open(path, O_WRONLY | O_CLOEXEC));
  }
  if (!fd.valid()) return ErrnoError(std::string("open ") + path);
  const std::string command = "exec " + std::string(profile);
  if (write(fd.get(), command.data(), command.size()) != static_cast<ssize_t>(command.size())) {
    return ErrnoError("AppArmor change_onexec to '" + std::string(profile) + "' (" + path +
                      "; is the profile loaded?)");
  }
  return "exec profile " + std::string(profile);
}

}  // namespace vmm::sandbox
