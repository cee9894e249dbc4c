#include "sandbox/report.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iterator>

#include "base/unique_fd.h"

namespace vmm::sandbox {
namespace {

constexpr const char* kNamespaces[] = {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"};

Result<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) return ErrnoError("read " + path);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

bool ParseField(std::string_view value, int base, uint64_t* out) {
  std::string s(value);
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, base);
  if (errno != 0 || end == s.c_str()) return false;
  *out = v;
  return true;
}

}  // namespace

Result<ConfinementReport> ParseProcStatus(std::string_view status) {
  ConfinementReport r;
  struct Field {
    std::string_view key;
    int base;
    uint64_t* u64;
    int* i;
  };
  uint64_t nnp = 0, seccomp = 0, threads = 0;
  const Field fields[] = {
      {"CapInh", 16, &r.cap_inh, nullptr},        {"CapPrm", 16, &r.cap_prm, nullptr},
      {"CapEff", 16, &r.cap_eff, nullptr},        {"CapBnd", 16, &r.cap_bnd, nullptr},
      {"CapAmb", 16, &r.cap_amb, nullptr},        {"NoNewPrivs", 10, &nnp, &r.no_new_privs},
      {"Seccomp", 10, &seccomp, &r.seccomp_mode}, {"Threads", 10, &threads, &r.threads},
  };
  size_t found = 0;
  while (!status.empty()) {
    size_t nl = status.find('\n');
    std::string_view line = status.substr(0, nl);
    status = nl == std::string_view::npos ? std::string_view() : status.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    for (const Field& f : fields) {
      if (f.key != key) continue;
      if (!ParseField(line.substr(colon + 1), f.base, f.u64)) {
        return Error(ErrorKind::kProtocol, "proc status: bad value for " + std::string(key));
      }
      if (f.i) *f.i = static_cast<int>(*f.u64);
      ++found;
    }
  }
  if (found != std::size(fields)) {
    return Error(ErrorKind::kProtocol, "proc status: missing capability/NoNewPrivs/Seccomp lines");
  }
  return r;
}

Result<ConfinementReport> ReadConfinementReport(pid_t pid) {
  const std::string dir = pid == 0 ? "/proc/self" : "/proc/" + std::to_string(pid);
  ASSIGN_OR_RETURN(std::string status, ReadSmallFile(dir + "/status"));
  ASSIGN_OR_RETURN(ConfinementReport r, ParseProcStatus(status));
  for (const char* ns : kNamespaces) {
    char target[128];
    std::string link = dir + "/ns/" + ns;
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n < 0) {
      if (errno == ENOENT) continue;  // a namespace type this kernel lacks
      return ErrnoError("readlink " + link);
    }
    r.namespaces[ns] = std::string(target, static_cast<size_t>(n));
  }
  DIR* d = opendir((dir + "/fd").c_str());
  if (d == nullptr) return ErrnoError("opendir " + dir + "/fd");
  int own = pid == 0 ? dirfd(d) : -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != own) r.fds.push_back(fd);
  }
  closedir(d);
  std::sort(r.fds.begin(), r.fds.end());
  return r;
}

std::string DescribeReport(const ConfinementReport& r) {
  auto hex = [](uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof(b), "%llx", static_cast<unsigned long long>(v));
    return std::string(b);
  };
  std::string s = "CapEff=" + hex(r.cap_eff) + " CapPrm=" + hex(r.cap_prm) +
                  " CapBnd=" + hex(r.cap_bnd) + " CapAmb=" + hex(r.cap_amb) +
                  " NoNewPrivs=" + std::to_string(r.no_new_privs) +
                  " Seccomp=" + std::to_string(r.seccomp_mode) + " fds=";
  for (size_t i = 0; i < r.fds.size(); ++i) s += (i ? "," : "") + std::to_string(r.fds[i]);
  return s;
}

}  // namespace vmm::sandbox
