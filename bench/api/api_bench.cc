// bench/api: requests per second and latency of the management API (ARCHITECTURE.md §8).
//   api_bench --socket PATH --method GET|PUT --path /api/v1/vm.info [--body JSON]
//             [--clients N] [--seconds S] [--max-requests R]
// N threads each loop for S seconds (or until R requests in all): connect to PATH, send one
// fixed HTTP/1.1 request (the server serves one request per connection), read the answer to
// EOF, check its status line. Latency is connect to EOF, per request. One line out:
//   api_bench: path=P clients=N requests=K errors=E seconds=T rps=X p50_us=A p99_us=B
//   max_us=C bytes=D first_error=TEXT
// Exit status: 0 when at least one request got 200, else 1 (the line is printed anyway).
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include "base/cli.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxAnswer = 1 << 20;  // the biggest answer we read (an evidence bundle is ~9 KB)
constexpr int kIoTimeoutSec = 30;       // a server that stops answering fails the request

struct Options {
  std::string socket, method = "GET", path = "/api/v1/vm.info", body;
  int clients = 1;
  double seconds = 2;
  long max_requests = 0;  // 0: no limit
};

struct Shared {
  std::atomic<long> started{0};
  std::mutex mu;
  std::vector<uint64_t> ok_ns;  // latencies of 200 answers
  long errors = 0;
  uint64_t bytes = 0;
  std::string first_error;
};

// One request on a fresh connection; "" when the answer was 200, else why not.
std::string OneRequest(const Options& o, const std::string& request, size_t* answer_bytes) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  timeval tv{kIoTimeoutSec, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, o.socket.data(), o.socket.size());
  std::string err;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    err = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return err;
  }
  for (size_t off = 0; off < request.size();) {
    ssize_t n = write(fd, request.data() + off, request.size() - off);
    if (n <= 0) {
      err = std::string("write: ") + (n < 0 ? std::strerror(errno) : "closed");
      close(fd);
      return err;
    }
    off += static_cast<size_t>(n);
  }
  std::string answer;
  char buf[16384];
  while (answer.size() < kMaxAnswer) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = std::string("read: ") + std::strerror(errno);
      break;
    }
    if (n == 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  *answer_bytes = answer.size();
  if (!err.empty()) return err;
  if (answer.compare(0, 13, "HTTP/1.1 200 ") == 0) return "";
  std::string line = answer.substr(0, answer.find("\r\n"));
  if (line.empty()) return "an empty answer";
  size_t body = answer.find("\r\n\r\n");
  if (body != std::string::npos) line += " " + answer.substr(body + 4, 200);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

void Client(const Options& o, const std::string& request, Clock::time_point end, Shared* s) {
  std::vector<uint64_t> ns;
  long errors = 0;
  uint64_t bytes = 0;
  std::string first_error;
  while (Clock::now() < end) {
    if (o.max_requests > 0 && s->started.fetch_add(1) >= o.max_requests) break;
    size_t got = 0;
    Clock::time_point t0 = Clock::now();
    std::string err = OneRequest(o, request, &got);
    uint64_t dt = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    bytes += got;
    if (err.empty()) {
      ns.push_back(dt);
    } else {
      ++errors;
      if (first_error.empty()) first_error = err;
    }
  }
  std::lock_guard lock(s->mu);
  s->ok_ns.insert(s->ok_ns.end(), ns.begin(), ns.end());
  s->errors += errors;
  s->bytes += bytes;
  if (s->first_error.empty()) s->first_error = first_error;
}

double Percentile(const std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(i, sorted.size() - 1)]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Drives the management API with fixed HTTP/1.1 requests", "api_bench"};
  app.add_option("--socket", o.socket, "the API's unix socket")
      ->required()
      ->check([](const std::string& s) {
        return s.size() < sizeof(sockaddr_un{}.sun_path) ? "" : "longer than a socket path";
      });
  app.add_option("--method", o.method)->check(CLI::IsMember({"GET", "PUT"}));
  app.add_option("--path", o.path);
  app.add_option("--body", o.body, "JSON body");
  app.add_option("--clients", o.clients, "concurrent clients")->check(CLI::Range(1, 64));
  app.add_option("--seconds", o.seconds)->check(CLI::Range(0.001, 3600.0));
  app.add_option("--max-requests", o.max_requests, "0: no limit")->check(CLI::NonNegativeNumber);
  if (std::optional<int> done = vmm::ParseCommandLine(app, argc, argv, "api_bench")) return *done;
  std::string request = o.method + " " + o.path +
                        " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                        "Content-Type: application/json\r\nContent-Length: " +
                        std::to_string(o.body.size()) + "\r\n\r\n" + o.body;
  Shared s;
  Clock::time_point t0 = Clock::now();
  Clock::time_point end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.clients; ++i) threads.emplace_back(Client, std::cref(o), request, end, &s);
  for (std::thread& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::sort(s.ok_ns.begin(), s.ok_ns.end());
  std::string first_error = s.first_error.empty() ? "none" : s.first_error;
  std::printf(
      "api_bench: path=%s clients=%d requests=%zu errors=%ld seconds=%.3f rps=%.1f p50_us=%.0f "
      "p99_us=%.0f max_us=%.0f bytes=%llu first_error=%s\n",
      o.path.c_str(), o.clients, s.ok_ns.size(), s.errors, elapsed,
      static_cast<double>(s.ok_ns.size()) / elapsed, Percentile(s.ok_ns, 0.50),
      Percentile(s.ok_ns, 0.99), s.ok_ns.empty() ? 0.0 : static_cast<double>(s.ok_ns.back()) / 1000,
      static_cast<unsigned long long>(s.bytes), first_error.c_str());
  return s.ok_ns.empty() ? 1 : 0;
}
