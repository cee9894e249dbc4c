/* Constants shared by C and assembly (keep this file preprocessor-only). */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

#define IMAGE_BASE 0x100000          /* linked and loaded at 1 MiB */
#define LINUX64_ENTRY_OFFSET 0x200   /* boot protocol: 64-bit entry = load address + 0x200 */
#define IDENTITY_MAP_END 0x100000000 /* head.S maps 0..4 GiB with 2 MiB pages */

/* GDT selectors (head.S). */
#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_CODE32 0x18
/* Ring 3 (compat=exercise), laid out as Linux's: kvm_pvm's SYSRET loads 0x33/0x2b whatever
 * the guest's STAR says, so the guest's STAR names the same (STAR[63:48] = 0x23). */
#define SEL_UCODE32 0x20 /* STAR[63:48]; unused */
#define SEL_UDATA 0x28   /* SYSRET: STAR[63:48] + 8 */
#define SEL_UCODE64 0x30 /* SYSRET: STAR[63:48] + 16 */
#define SEL_TSS 0x38     /* 16-byte TSS descriptor, filled in by checks/compat.c */
#define GDT_ENTRIES 9

/* Value passed to guest_main() to tell the boot paths apart. */
#define BOOT_PVH 1
#define BOOT_LINUX64 2

/* Interrupt vectors. */
#define VEC_LAPIC_TIMER 0x20
#define VEC_PIT 0x21
#define VEC_PIT_PROBE 0x22 /* pin 2 probe on HW-reduced ACPI without IRQ0 override */
#define VEC_UART 0x24
#define VEC_VIRTIO_BASE 0x30 /* 0x30..0x37: virtio-mmio slot n on vector base + n */
#define VEC_PIC_BASE 0xE0 /* legacy 8259 remapped out of the exception range */
#define VEC_LAPIC_ERROR 0xFE
#define VEC_SPURIOUS 0xFF

#define MAX_CPUS 64
#define AP_STACK_SIZE 8192

#endif
