# Freestanding x86-64 guests (tests/guest, bench/exits/guest), included by the CMakeLists.txt
# of a directory that builds one (after its gcc/clang x86-64 check). A guest must not inherit
# anything meant for host code (sanitizers, PIE, hardening, include paths, build-type flags),
# so every inheritable setting is replaced rather than appended to.
include(CheckLinkerFlag)

# Directory-scoped flag variables (CMake reads their value at the end of the including
# directory's CMakeLists.txt for the targets defined there): drop global/build-type flags.
# The guests and tools set exactly what they need per target.
foreach(lang C ASM)
  set(CMAKE_${lang}_FLAGS "")
  foreach(cfg DEBUG RELEASE RELWITHDEBINFO MINSIZEREL)
    set(CMAKE_${lang}_FLAGS_${cfg} "")
  endforeach()
endforeach()
set(CMAKE_EXE_LINKER_FLAGS "")
foreach(cfg DEBUG RELEASE RELWITHDEBINFO MINSIZEREL)
  set(CMAKE_EXE_LINKER_FLAGS_${cfg} "")
endforeach()
# add_compile_definitions()/add_definitions() apply per directory, not per target.
set_property(DIRECTORY PROPERTY COMPILE_DEFINITIONS "")

# freestanding_isolate(TARGET): replaces (not appends) every property a target inherits from
# the project.
function(freestanding_isolate target)
  set_target_properties(${target} PROPERTIES
    COMPILE_OPTIONS ""
    LINK_OPTIONS ""
    LINK_LIBRARIES ""
    INCLUDE_DIRECTORIES ""
    COMPILE_DEFINITIONS ""
    POSITION_INDEPENDENT_CODE OFF
    INTERPROCEDURAL_OPTIMIZATION OFF
    C_CLANG_TIDY ""
    C_STANDARD 11
    C_EXTENSIONS ON)
endfunction()

# freestanding_guest(TARGET LDSCRIPT): isolates TARGET and makes it a static, freestanding
# guest ELF (suffix .elf) laid out by the linker script LDSCRIPT.
function(freestanding_guest target ldscript)
  freestanding_isolate(${target})
  target_compile_options(${target} PRIVATE
    -O2 -g
    -ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-stack-clash-protection
    -fcf-protection=none -mno-red-zone -mgeneral-regs-only -mcmodel=small
    -fno-asynchronous-unwind-tables -fno-common
    -fno-delete-null-pointer-checks         # physical address 0 is a real address here
    $<$<C_COMPILER_ID:GNU>:-fno-tree-loop-distribute-patterns>  # keep memset() from calling itself
    -Wall -Wextra -Werror)
  set(link_options
    -nostdlib -static -no-pie
    "-Wl,-T,${ldscript}"
    -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096)
  # One RWX PT_LOAD is deliberate (the VMMs load one flat segment); binutils >= 2.39 warns.
  check_linker_flag(C "-Wl,--no-warn-rwx-segments" FREESTANDING_HAVE_NO_WARN_RWX)
  if(FREESTANDING_HAVE_NO_WARN_RWX)
    list(APPEND link_options -Wl,--no-warn-rwx-segments)
  endif()
  target_link_options(${target} PRIVATE ${link_options})
  set_target_properties(${target} PROPERTIES
    SUFFIX ".elf"
    LINK_DEPENDS "${ldscript}")
endfunction()
