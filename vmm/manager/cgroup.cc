// The VM's cgroup v2 (cgroup.h): the parsers of mountinfo and /proc/self/cgroup, and the cgroup.
#include "vmm/manager/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace vmm {
namespace {

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return lines;
}

std::vector<std::string_view> SplitSpaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == ' ') {
      out.push_back(line.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// The kernel shows no control characters in these files (mountinfo escapes them; cgroup names
// cannot hold a newline), so one is a sign of a file that is not what it claims.
bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f;
  });
}

bool IsDecimal(std::string_view s) {
  return !s.empty() && s.size() <= 10 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// mountinfo escapes ' ', '\t', '\n' and '\\' in paths as three octal digits (\040).
std::optional<std::string> Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    int v = 0;
    for (size_t k = 1; k <= 3; ++k) {
      if (i + k >= s.size() || s[i + k] < '0' || s[i + k] > '7') return std::nullopt;
      v = v * 8 + (s[i + k] - '0');
    }
    if (v == 0 || v > 0xff) return std::nullopt;
    out += static_cast<char>(v);
    i += 3;
  }
  return out;
}

// A cgroup path as the kernel shows it: "/" or "/a/b", no empty, "." or ".." component (a
// process outside its cgroup namespace's root is shown with ".." components).
bool IsPlainCgroupPath(std::string_view p) {
  if (p.empty() || p[0] != '/') return false;
  if (p == "/") return true;
  size_t start = 1;
  for (size_t i = 1; i <= p.size(); ++i) {
    if (i == p.size() || p[i] == '/') {
      const std::string_view c = p.substr(start, i - start);
      if (c.empty() || c == "." || c == "..") return false;
      start = i + 1;
    }
  }
  return true;
}

Error Unsupported(const std::string& message, int err = 0) {
  return Error(ErrorKind::kUnsupported, message, err);
}

// Reads a whole file of at most `max` bytes (procfs and cgroupfs files say size 0).
Result<std::string> ReadBounded(int dirfd, const std::string& name, size_t max) {
  UniqueFd fd(openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return ErrnoError("open " + name);
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + name);
    if (n == 0) return text;
    if (text.size() + static_cast<size_t>(n) > max) {
      return InvalidArgument(name + ": more than " + std::to_string(max) + " bytes");
    }
    text.append(buf, static_cast<size_t>(n));
  }
}

Result<void> WriteText(int dirfd, const std::string& name, const std::string& text) {
  UniqueFd fd(openat(dirfd, name.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return ErrnoError("open " + name);
  const ssize_t n = write(fd.get(), text.data(), text.size());
  if (n != static_cast<ssize_t>(text.size())) {
    return ErrnoError("write \"" + text + "\" to " + name);
  }
  return Ok();
}

std::string Join(const std::vector<std::string>& words, const std::string& sep) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : sep) + w;
  return out;
}

std::vector<std::string> NeededControllers(const policy::CgroupLimits& l) {
  std::vector<std::string> out;
  if (l.cpu) out.push_back("cpu");
  if (l.memory_max) out.push_back("memory");
  if (l.pids_max) out.push_back("pids");
  return out;
}

std::vector<std::string> Missing(const std::vector<std::string>& needed,
                                 const std::vector<std::string>& have) {
  std::vector<std::string> out;
  for (const std::string& c : needed) {
    if (std::find(have.begin(), have.end(), c) == have.end()) out.push_back(c);
  }
  return out;
}

bool IsVmUuidText(std::string_view s) {
  return s.size() == 36 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
         });
}

}  // namespace

Result<std::vector<Cgroup2Mount>> ParseCgroup2Mounts(std::string_view text) {
  if (text.size() > kMaxMountinfoBytes) return InvalidArgument("mountinfo: too large");
  std::vector<Cgroup2Mount> out;
  size_t number = 0;
  for (std::string_view line : SplitLines(text)) {
    ++number;
    const auto bad = [number](const std::string& what) {
      return InvalidArgument("mountinfo line " + std::to_string(number) + ": " + what);
    };
    if (HasControl(line)) return bad("a control character");
    const std::vector<std::string_view> f = SplitSpaces(line);
    // id parent major:minor root mount-point options [optional fields...] - type source super
    const auto dash = std::find(f.begin(), f.end(), "-");
    if (std::find(f.begin(), f.end(), "") != f.end() || dash == f.end() || dash - f.begin() < 6 ||
        f.end() - dash != 4) {
      return bad(
          "not \"ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS ... - TYPE SOURCE OPTIONS\"");
    }
    const size_t colon = f[2].find(':');
    if (!IsDecimal(f[0]) || !IsDecimal(f[1]) || colon == std::string_view::npos ||
        !IsDecimal(f[2].substr(0, colon)) || !IsDecimal(f[2].substr(colon + 1))) {
      return bad("bad mount id or device number");
    }
    if (dash[1] != "cgroup2") continue;
    std::optional<std::string> root = Unescape(f[3]), point = Unescape(f[4]);
    if (!root || !point || root->empty() || (*root)[0] != '/' || point->empty() ||
        (*point)[0] != '/') {
      return bad("a cgroup2 mount's root or mount point is not an absolute path");
    }
    out.push_back({std::move(*root), std::move(*point)});
  }
  return out;
}

Result<std::string> ParseOwnCgroup(std::string_view text) {
  if (text.size() > kMaxProcCgroupBytes) return InvalidArgument("/proc/self/cgroup: too large");
  std::optional<std::string> v2;
  size_t number = 0;
  for (std::string_view line : SplitLines(text)) {
    ++number;
    const size_t a = line.find(':');
    const size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos || !IsDecimal(line.substr(0, a))) {
      return InvalidArgument("/proc/self/cgroup line " + std::to_string(number) +
                             ": not \"ID:CONTROLLERS:PATH\"");
    }
    if (line.substr(0, b + 1) != "0::") continue;
    if (v2) return InvalidArgument("/proc/self/cgroup: two cgroup v2 (0::) lines");
    const std::string_view path = line.substr(b + 1);
    if (path.ends_with(" (deleted)")) {
      return InvalidArgument("/proc/self/cgroup: our cgroup v2 was removed");
    }
    if (!IsPlainCgroupPath(path) || HasControl(path)) {
      return InvalidArgument("/proc/self/cgroup: the cgroup v2 path '" + std::string(path) +
                             "' is not a plain path below this cgroup namespace's root");
    }
    v2 = std::string(path);
  }
  if (!v2) return Error(ErrorKind::kNotFound, "/proc/self/cgroup has no cgroup v2 (0::) line");
  return *v2;
}

Result<std::vector<std::string>> ParseControllerList(std::string_view text) {
  if (text.size() > kMaxCgroupFileBytes) return InvalidArgument("controller list: too large");
  if (text.ends_with('\n')) text.remove_suffix(1);
  std::vector<std::string> out;
  if (text.empty()) return out;
  for (std::string_view w : SplitSpaces(text)) {
    if (w.empty() || w.size() > 64 || !std::all_of(w.begin(), w.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        })) {
      return InvalidArgument("controller list: '" + std::string(text.substr(0, 80)) +
                             "' is not names separated by spaces");
    }
    out.emplace_back(w);
  }
  return out;
}

Result<std::string> CgroupDirectory(const std::vector<Cgroup2Mount>& mounts,
                                    const std::string& path) {
  for (const Cgroup2Mount& m : mounts) {
    std::string rest;
    if (m.root == "/") {
      rest = path == "/" ? "" : path;
    } else if (path == m.root) {
      rest = "";
    } else if (path.starts_with(m.root + "/")) {
      rest = path.substr(m.root.size());
    } else {
      continue;
    }
    std::string point = m.mount_point;
    while (point.size() > 1 && point.back() == '/') point.pop_back();
    if (point == "/") return rest.empty() ? point : rest;
    return point + rest;
  }
  return Error(ErrorKind::kNotFound, "no cgroup2 mount shows the cgroup " + path);
}

Result<CgroupMode> ParseCgroupMode(std::string_view text) {
  if (text == "off") return CgroupMode::kOff;
  if (text == "auto") return CgroupMode::kAuto;
  if (text == "required") return CgroupMode::kRequired;
  return InvalidArgument("--cgroup '" + std::string(text) + "': one of off, auto, required");
}

Result<std::unique_ptr<VmCgroup>> VmCgroup::Create(const CgroupHost& host,
                                                   const std::string& vm_uuid,
                                                   const policy::CgroupLimits& limits) {
  if (!IsVmUuidText(vm_uuid)) return InvalidArgument("cgroup: '" + vm_uuid + "' is not a UUID");
  ASSIGN_OR_RETURN(std::string mountinfo,
                   ReadBounded(AT_FDCWD, host.mountinfo, kMaxMountinfoBytes));
  ASSIGN_OR_RETURN(std::vector<Cgroup2Mount> mounts, ParseCgroup2Mounts(mountinfo));
  if (mounts.empty()) return Unsupported("no cgroup v2 hierarchy is mounted");
  ASSIGN_OR_RETURN(std::string self, ReadBounded(AT_FDCWD, host.self_cgroup, kMaxProcCgroupBytes));
  auto own = ParseOwnCgroup(self);
  if (!own && own.error().kind() == ErrorKind::kNotFound) return Unsupported(own.error().message());
  if (!own) return own.error();
  auto dir = CgroupDirectory(mounts, *own);
  if (!dir) return Unsupported(dir.error().message());

  UniqueFd parent(open(dir->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent.valid()) return Unsupported("cannot open our cgroup " + *dir, errno);
  const std::vector<std::string> needed = NeededControllers(limits);
  ASSIGN_OR_RETURN(std::string available_text,
                   ReadBounded(parent.get(), "cgroup.controllers", kMaxCgroupFileBytes));
  ASSIGN_OR_RETURN(std::vector<std::string> available, ParseControllerList(available_text));
  if (std::vector<std::string> missing = Missing(needed, available); !missing.empty()) {
    return Unsupported("our cgroup " + *own + " (" + *dir + ") has no " + Join(missing, ", ") +
                       (missing.size() == 1
                            ? " controller (the host keeps it on cgroup v1, or did not delegate it)"
                            : " controllers (the host keeps them on cgroup v1, or did not "
                              "delegate them)"));
  }
  for (const char* name : {".", "cgroup.procs", "cgroup.subtree_control"}) {
    if (faccessat(parent.get(), name, W_OK, 0) != 0) {
      return Unsupported("our cgroup " + *own + " is not delegated to uid " +
                             std::to_string(geteuid()) + ": " + *dir + "/" + name +
                             " is not writable",
                         errno);
    }
  }
  // Controllers for the children: the kernel refuses them (EBUSY) while processes are in our
  // cgroup (unless it is the root); then we move into a leaf of our own and try again.
  ASSIGN_OR_RETURN(std::string enabled_text,
                   ReadBounded(parent.get(), "cgroup.subtree_control", kMaxCgroupFileBytes));
  ASSIGN_OR_RETURN(std::vector<std::string> enabled, ParseControllerList(enabled_text));
  if (std::vector<std::string> off = Missing(needed, enabled); !off.empty()) {
    const std::string plus = "+" + Join(off, " +");
    auto turned_on = WriteText(parent.get(), "cgroup.subtree_control", plus);
    if (!turned_on && turned_on.error().sys_errno() == EBUSY) {
      if (mkdirat(parent.get(), "manager", 0755) == 0) {
        if (host.after_mkdir) host.after_mkdir(*dir + "/manager");
      } else if (errno != EEXIST) {
        return Unsupported("cannot make " + *dir + "/manager for the manager itself", errno);
      }
      auto moved = WriteText(parent.get(), "manager/cgroup.procs", std::to_string(getpid()));
      if (!moved)
        return Unsupported("cannot move the manager into " + *dir + "/manager",
                           moved.error().sys_errno());
      turned_on = WriteText(parent.get(), "cgroup.subtree_control", plus);
    }
    if (!turned_on) {
      return Unsupported(
          "cannot enable " + plus + " in " + *dir + "/cgroup.subtree_control" +
              (turned_on.error().sys_errno() == EBUSY
                   ? " (other processes share our cgroup; give vmm a cgroup of its own, as "
                     "systemd's Delegate=yes does)"
                   : ""),
          turned_on.error().sys_errno());
    }
  }

  std::unique_ptr<VmCgroup> cg(new VmCgroup());
  cg->host_ = host;
  cg->limits_ = limits;
  cg->name_ = "vmm-" + vm_uuid;
  cg->directory_ = *dir + "/" + cg->name_;
  cg->path_ = (*own == "/" ? "" : *own) + "/" + cg->name_;
  int made = mkdirat(parent.get(), cg->name_.c_str(), 0755);
  if (made != 0 && errno == EEXIST) {
    // Left by a manager that died: empty, so it can go. A running VM's cannot (EBUSY).
    if (host.before_rmdir) host.before_rmdir(cg->directory_);
    if (unlinkat(parent.get(), cg->name_.c_str(), AT_REMOVEDIR) != 0) {
      return Error(ErrorKind::kInvalidArgument,
                   "the cgroup " + cg->directory_ + " exists and is in use: is VM " + vm_uuid +
                       " running already?",
                   errno);
    }
    made = mkdirat(parent.get(), cg->name_.c_str(), 0755);
  }
  if (made != 0) return ErrnoError("cgroup: mkdir " + cg->directory_);
  if (host.after_mkdir) host.after_mkdir(cg->directory_);
  cg->parent_ = std::move(parent);
  cg->dir_.reset(openat(cg->parent_.get(), cg->name_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Result<void> written =
      cg->dir_.valid() ? Result<void>(Ok()) : ErrnoError("open " + cg->directory_);
  const int fd = cg->dir_.get();
  auto write = [&](const std::string& file, const std::string& text, bool if_present) {
    if (!written) return;
    if (if_present && faccessat(fd, file.c_str(), F_OK, 0) != 0) return;
    written = WriteText(fd, file, text);
  };
  if (limits.cpu) write("cpu.max", policy::CpuMaxText(*limits.cpu), false);
  if (limits.memory_max) {
    write("memory.max", std::to_string(*limits.memory_max), false);
    // No swap beyond the limit, and an OOM ends the whole VM at once (the manager sees it).
    write("memory.swap.max", "0", true);
    write("memory.oom.group", "1", true);
  }
  if (limits.pids_max) write("pids.max", std::to_string(*limits.pids_max), false);
  if (!written) {
    Error e = written.error().Wrap("cgroup " + cg->directory_);
    (void)cg->Remove();
    return e;
  }
  return cg;
}

std::vector<std::pair<std::string, std::string>> VmCgroup::AuditDetails() const {
  std::vector<std::pair<std::string, std::string>> d = {{"cgroup", path_}};
  if (limits_.cpu) d.emplace_back("cgroup_cpu_max", policy::CpuMaxText(*limits_.cpu));
  if (limits_.memory_max) d.emplace_back("cgroup_memory_max", std::to_string(*limits_.memory_max));
  if (limits_.pids_max) d.emplace_back("cgroup_pids_max", std::to_string(*limits_.pids_max));
  return d;
}

Result<void> VmCgroup::Remove() {
  if (removed_ || !parent_.valid()) return Ok();
  dir_.reset();
  if (host_.before_rmdir) host_.before_rmdir(directory_);
  // A reaped process has left; the kernel may still be finishing its exit for a moment.
  for (int attempt = 0;; ++attempt) {
    if (unlinkat(parent_.get(), name_.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) break;
    if (errno != EBUSY || attempt == 100) return ErrnoError("cgroup: rmdir " + directory_);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  removed_ = true;
  return Ok();
}

VmCgroup::~VmCgroup() {
  if (auto r = Remove(); !r) {
    std::fprintf(stderr, "vmm: warning: %s\n", r.error().ToString().c_str());
  }
}

Result<std::unique_ptr<VmCgroup>> SetUpVmCgroup(CgroupMode mode,
                                                const std::optional<policy::CgroupLimits>& limits,
                                                const std::string& vm_uuid, const CgroupHost& host,
                                                std::string* note) {
  note->clear();
  if (mode == CgroupMode::kOff) {
    if (limits) *note = "--cgroup off: the launch policy's cgroup limits are not applied";
    return std::unique_ptr<VmCgroup>();
  }
  if (!limits) {
    if (mode == CgroupMode::kRequired) {
      return InvalidArgument("--cgroup required: the launch policy sets no limits.cgroup");
    }
    return std::unique_ptr<VmCgroup>();
  }
  auto made = VmCgroup::Create(host, vm_uuid, *limits);
  if (!made && made.error().kind() == ErrorKind::kUnsupported) {
    if (mode == CgroupMode::kRequired) return made.error().Wrap("--cgroup required");
    *note = "no cgroup limits for this VM: " + made.error().ToString();
    return std::unique_ptr<VmCgroup>();
  }
  if (!made) return made.error();
  std::string what;
  for (const auto& [k, v] : (*made)->AuditDetails()) {
    if (k != "cgroup") what += (what.empty() ? "" : ", ") + k.substr(7) + " " + v;
  }
  *note = "the VM's processes run in the cgroup " + (*made)->path() + " (" + what + ")";
  return made;
}

}  // namespace vmm
