/*
 * Linux x86 boot protocol constants used by the host tools
 * (Documentation/arch/x86/boot.rst). Offsets are from the start of the
 * bzImage file, which is also the start of struct boot_params.
 */
#ifndef TESTGUEST_BZIMAGE_H
#define TESTGUEST_BZIMAGE_H

#define BZ_SECTOR 512
#define BZ_SETUP_SECTS 4            /* explicit, so no loader needs the "0 means 4" rule */
#define BZ_LOAD_ADDR 0x100000u      /* pref_address = code32_start = link address */
#define BZ_ENTRY64_OFFSET 0x200u    /* 64-bit entry relative to the load address */
#define BZ_PROTOCOL 0x020C          /* 2.12: xloadflags, ext_cmd_line_ptr */
#define BZ_CMDLINE_SIZE 4095u       /* guest copies up to 4095 bytes + NUL */
#define BZ_KERNEL_ALIGN 0x100000u   /* informational; relocatable_kernel is 0 */
#define BZ_MIN_ALIGN 12             /* log2 */

#define OFF_SETUP_SECTS 0x1F1 /* u8 */
#define OFF_SYSSIZE 0x1F4     /* u32, 16-byte paragraphs */
#define OFF_VID_MODE 0x1FA    /* u16 */
#define OFF_BOOT_FLAG 0x1FE   /* u16 0xAA55 */
#define OFF_JUMP 0x200        /* u16 short jmp over the header */
#define OFF_HEADER 0x202      /* "HdrS" */
#define OFF_VERSION 0x206     /* u16 */
#define OFF_TYPE_OF_LOADER 0x210
#define OFF_LOADFLAGS 0x211   /* u8, bit0 LOADED_HIGH */
#define OFF_CODE32_START 0x214
#define OFF_CMD_LINE_PTR 0x228
#define OFF_INITRD_ADDR_MAX 0x22C
#define OFF_KERNEL_ALIGN 0x230
#define OFF_RELOCATABLE 0x234 /* u8 */
#define OFF_MIN_ALIGNMENT 0x235
#define OFF_XLOADFLAGS 0x236  /* u16, bit0 XLF_KERNEL_64 */
#define OFF_CMDLINE_SIZE 0x238
#define OFF_PREF_ADDRESS 0x258 /* u64 */
#define OFF_INIT_SIZE 0x260    /* u32 */
#define OFF_HANDOVER 0x264     /* u32, last 2.12 field */
#define HEADER_END 0x268

#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x0001

#endif
