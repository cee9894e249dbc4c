// FakeGuestRam for the virtio tests: the one fake of guest RAM is vmm::FakeGuestRam
// (vmm/common/fake_guest_ram.h).
#pragma once

#include "vmm/common/fake_guest_ram.h"
#include "vmm/virtio/guest_ram.h"

namespace vmm::virtio {

using vmm::FakeGuestRam;

}  // namespace vmm::virtio
