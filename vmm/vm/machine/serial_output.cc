#include "vmm/vm/machine/serial_output.h"

#include <fcntl.h>
#include <unistd.h>

namespace vmm {

Result<SerialOutput> SerialOutput::Open(const VmSpec& cfg) {
  SerialOutput out;
  switch (cfg.serial) {
    case SerialMode::kTty:
      out.fd_ = STDOUT_FILENO;
      break;
    case SerialMode::kFile:
      out.owned_.reset(
          open(cfg.serial_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600));
      if (!out.owned_.valid()) {
        return Error(ErrorKind::kInvalidArgument,
                     "--serial: cannot open '" + cfg.serial_path + "' for writing", errno);
      }
      out.fd_ = out.owned_.get();
      break;
    case SerialMode::kNull:
    case SerialMode::kOff:
      break;
  }
  return out;
}

void SerialOutput::Put(uint8_t byte) {
  if (fd_ < 0) return;
  buf_.push_back(static_cast<char>(byte));
  if (byte == '\n' || buf_.size() >= 512) Flush();
}

void SerialOutput::Flush() {
  size_t done = 0;
  while (fd_ >= 0 && done < buf_.size()) {
    ssize_t n = write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a closed pipe must not stop the VM; the output is lost
    done += static_cast<size_t>(n);
  }
  buf_.clear();
}

}  // namespace vmm
