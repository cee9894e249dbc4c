// Where the guest's COM1 output goes: the VMM's stdout, a file, or nowhere. Buffers a line
// at a time so a guest writing byte by byte does not cost a syscall per byte.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/contract/vm_spec.h"

namespace vmm {

class SerialOutput {
 public:
  static Result<SerialOutput> Open(const VmSpec& spec);
  SerialOutput(SerialOutput&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        owned_(std::move(other.owned_)),
        buf_(std::move(other.buf_)) {}
  SerialOutput& operator=(SerialOutput&&) = delete;
  ~SerialOutput() { Flush(); }
  void Put(uint8_t byte);
  void Flush();

 private:
  SerialOutput() = default;
  int fd_ = -1;  // borrowed stdout, or owned_ below
  UniqueFd owned_;
  std::string buf_;
};

}  // namespace vmm
