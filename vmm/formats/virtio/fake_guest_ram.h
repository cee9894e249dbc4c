// FakeGuestRam for the virtio tests: the one fake of guest RAM is vmm::FakeGuestRam
// (base/fake_guest_ram.h).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <span>
#include <vector>
#include "base/fake_guest_ram.h"
#include "vmm/formats/virtio/guest_ram.h"

namespace vmm::virtio {

using vmm::FakeGuestRam;

}  // namespace vmm::virtio
