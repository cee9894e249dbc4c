#include "vmm/manager/mcs.h"

#include <dirent.h>
#include <fcntl.h>
#include <selinux/selinux.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <vector>

#include "base/unique_fd.h"

namespace vmm {
namespace {

std::optional<int> ParseCategory(std::string_view s) {
  if (s.size() < 2 || s.size() > 5 || s[0] != 'c') return std::nullopt;
  int v = -1;
  auto [end, ec] = std::from_chars(s.data() + 1, s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0 || v >= kMcsCategories) {
    return std::nullopt;
  }
  return v;
}

// The context's type (third field), or "" if it has fewer than four fields.
std::string_view ContextType(std::string_view context) {
  size_t a = context.find(':');
  if (a == std::string_view::npos) return {};
  size_t b = context.find(':', a + 1);
  if (b == std::string_view::npos) return {};
  size_t c = context.find(':', b + 1);
  if (c == std::string_view::npos) return {};
  return context.substr(b + 1, c - b - 1);
}

}  // namespace

std::string McsPair::Level() const {
  return "s0:c" + std::to_string(low) + ",c" + std::to_string(high);
}

std::optional<McsPair> ParseMcsPair(std::string_view context) {
  while (!context.empty() && (context.back() == '\0' || context.back() == '\n')) {
    context.remove_suffix(1);
  }
  // The level is what follows the sensitivity "s0:"; a range ("s0-...") is not a VM's pair.
  size_t s = context.rfind("s0:");
  if (s == std::string_view::npos || (s > 0 && context[s - 1] != ':')) return std::nullopt;
  std::string_view cats = context.substr(s + 3);
  size_t comma = cats.find(',');
  if (comma == std::string_view::npos || cats.find(',', comma + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  auto a = ParseCategory(cats.substr(0, comma));
  auto b = ParseCategory(cats.substr(comma + 1));
  if (!a || !b || *a == *b) return std::nullopt;
  return McsPair{std::min(*a, *b), std::max(*a, *b)};
}

std::set<McsPair> McsPairsInUse(const std::string& proc) {
  std::set<McsPair> out;
  DIR* d = opendir(proc.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    UniqueFd fd(open((proc + "/" + e->d_name + "/attr/current").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) continue;
    char buf[256];
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n <= 0 || n == static_cast<ssize_t>(sizeof(buf))) continue;
    std::string_view context(buf, static_cast<size_t>(n));
    std::string_view type = ContextType(context);
    if (!type.starts_with("vmm_") || type == "vmm_manager_t") continue;
    if (auto pair = ParseMcsPair(context)) out.insert(*pair);
  }
  closedir(d);
  return out;
}

Result<McsPair> PickMcsPair(const std::set<McsPair>& in_use,
                            const std::function<uint32_t(uint32_t)>& random_below) {
  constexpr size_t kPairs = kMcsCategories * (kMcsCategories - 1) / 2;
  if (in_use.size() >= kPairs) {
    return Error(ErrorKind::kSystem, "every MCS category pair is in use");
  }
  // Rejection sampling stays uniform; after many misses (an almost full set) a scan from a
  // random start finds the free pair without looping for long.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int a = static_cast<int>(random_below(kMcsCategories));
    int b = static_cast<int>(random_below(kMcsCategories));
    if (a == b) continue;
    McsPair p{std::min(a, b), std::max(a, b)};
    if (!in_use.contains(p)) return p;
  }
  const int start = static_cast<int>(random_below(kMcsCategories));
  for (int i = 0; i < kMcsCategories; ++i) {
    int a = (start + i) % kMcsCategories;
    for (int b = a + 1; b < kMcsCategories; ++b) {
      if (!in_use.contains(McsPair{a, b})) return McsPair{a, b};
    }
  }
  for (int a = 0; a < kMcsCategories; ++a) {
    for (int b = a + 1; b < kMcsCategories; ++b) {
      if (!in_use.contains(McsPair{a, b})) return McsPair{a, b};
    }
  }
  return Error(ErrorKind::kSystem, "every MCS category pair is in use");
}

uint32_t RandomBelow(uint32_t n) {
  // Rejection of the top partial range keeps the value uniform.
  const uint32_t limit = UINT32_MAX - UINT32_MAX % n;
  for (;;) {
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != sizeof(v)) continue;
    if (v < limit) return v % n;
  }
}

std::optional<std::string> WithLevel(std::string_view context, std::string_view level) {
  std::string_view type = ContextType(context);
  if (type.empty()) return std::nullopt;
  const size_t level_at = static_cast<size_t>(type.data() + type.size() - context.data()) + 1;
  return std::string(context.substr(0, level_at)) + std::string(level);
}

Result<std::string> CreateSocketsAtLevel(std::string_view level) {
  if (!SelinuxEnabled()) return std::string("SELinux off");
  char* own = nullptr;
  if (getcon(&own) != 0 || own == nullptr) return ErrnoError("getcon");
  auto context = WithLevel(own, level);
  freecon(own);
  if (!context) return Error(ErrorKind::kSystem, "getcon: a context without a level");
  if (setsockcreatecon(context->c_str()) != 0) {
    return Error(ErrorKind::kSystem, "setsockcreatecon " + *context, errno);
  }
  return "sockets created as " + *context;
}

bool SelinuxEnabled() { return is_selinux_enabled() > 0; }

Result<std::string> LabelVmFile(int fd, std::string_view type, std::string_view level) {
  if (!SelinuxEnabled()) return std::string("SELinux off");
  const std::string context = "system_u:object_r:" + std::string(type) + ":" + std::string(level);
  if (fsetfilecon(fd, context.c_str()) != 0) {
    return Error(ErrorKind::kSystem, "labelling a VM file " + context, errno);
  }
  return "labelled " + context;
}

Result<std::string> LabelVmDir(int dir_fd, std::string_view type, std::string_view level) {
  ASSIGN_OR_RETURN(std::string note, LabelVmFile(dir_fd, type, level));
  if (!SelinuxEnabled()) return note;
  UniqueFd list(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!list.valid()) return ErrnoError("opening the directory to label its files");
  DIR* d = fdopendir(list.release());
  if (d == nullptr) return ErrnoError("fdopendir");
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (e->d_type == DT_REG) names.emplace_back(e->d_name);
  }
  closedir(d);
  for (const std::string& name : names) {
    UniqueFd f(openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!f.valid()) return ErrnoError("opening '" + name + "' to label it");
    RETURN_IF_ERROR(LabelVmFile(f.get(), type, level));
  }
  return note + " (and " + std::to_string(names.size()) + " files in it)";
}

}  // namespace vmm
