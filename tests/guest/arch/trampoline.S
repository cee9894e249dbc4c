/*
 * AP startup trampoline. smp.c copies [ap_trampoline_start, ap_trampoline_end)
 * to a free page below 1 MiB and sends SIPIs with that page number; the AP
 * starts here in real mode with CS = page << 8, IP = 0. The code only uses
 * CS-relative offsets and absolute 32-bit link-time addresses, so it needs no
 * patching wherever it is copied.
 */
#include "layout.h"

	.section .rodata.trampoline, "a"
	.code16
	.globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
	cli
	cld
	mov	%cs, %ax
	mov	%ax, %ds
	lgdtl	(tr_gdt_desc - ap_trampoline_start)
	mov	%cr0, %eax
	or	$1, %eax		/* PE; head.S enables paging and long mode */
	mov	%eax, %cr0
	ljmpl	$SEL_CODE32, $ap_start32
	.balign	8
tr_gdt_desc:
	.word	GDT_ENTRIES * 8 - 1
	.long	gdt			/* head.S's GDT, below 4 GiB */
ap_trampoline_end:

	.section .note.GNU-stack, "", @progbits
