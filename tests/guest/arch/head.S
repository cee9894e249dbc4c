/*
 * Entry points of the test guest, linked at 1 MiB (IMAGE_BASE):
 *   +0x000  pvh_start32  PVH entry (32-bit protected mode, paging off, EBX = hvm_start_info)
 *   +0x200  startup_64   Linux boot protocol 64-bit entry (long mode, RSI = boot_params)
 *   ap_start32           reached from the real-mode AP trampoline
 * All paths switch to the guest's own GDT and page tables before touching C,
 * so the VMM's (or firmware's) low-memory structures can be reused later.
 */
#include "layout.h"

#define CR0_PE 0x00000001
#define CR0_NW_CD 0x60000000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

/* 32-bit, flat: loads the data segments, then PAE, boot_pml4 and EFER.LME (rdmsr clobbers
 * eax/edx), so that setting CR0.PG enters long mode. */
.macro enter_pae_lme
	mov	$SEL_DATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	mov	%cr4, %eax
	or	$CR4_PAE, %eax
	mov	%eax, %cr4
	mov	$boot_pml4, %eax
	mov	%eax, %cr3
	mov	$MSR_EFER, %ecx
	rdmsr
	or	$EFER_LME, %eax
	wrmsr
.endm

	.section .head.text, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	mov	%ebx, %esi		/* keep hvm_start_info; rdmsr below clobbers edx only */
	lgdt	gdt_desc		/* 32-bit mode uses the low 4 bytes of the 8-byte base */
	enter_pae_lme
	mov	%cr0, %eax
	or	$(CR0_PG | CR0_PE), %eax
	mov	%eax, %cr0
	ljmp	$SEL_CODE64, $pvh_start64

	.code64
pvh_start64:
	mov	%esi, %edi		/* arg0: start_info (zero-extended) */
	mov	$BOOT_PVH, %esi		/* arg1: boot path */
	jmp	common64

	/* The Linux boot protocol fixes the 64-bit entry at load address + 0x200. */
	.org	LINUX64_ENTRY_OFFSET, 0xcc
	.globl startup_64
startup_64:
	cli
	cld
	mov	%rsi, %rdi		/* arg0: boot_params ("zero page") */
	mov	$BOOT_LINUX64, %esi	/* arg1: boot path */
	/* The VMM's stack is not guaranteed; bss is not cleared yet but the lretq
	 * below only needs the stack for two words. */
	lea	boot_stack_top(%rip), %rsp
	lgdt	gdt_desc(%rip)
	lea	boot_pml4(%rip), %rax	/* our tables map the same identity range */
	mov	%rax, %cr3
	pushq	$SEL_CODE64
	lea	common64(%rip), %rax
	pushq	%rax
	lretq				/* reload CS from our GDT */

common64:
	mov	$SEL_DATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	xor	%eax, %eax
	mov	%eax, %fs
	mov	%eax, %gs
	/* Neither loader promises a zeroed bss (boot protocol never does). */
	mov	%rdi, %r12
	mov	%rsi, %r13
	lea	__bss_start(%rip), %rdi
	lea	__bss_end(%rip), %rcx
	sub	%rdi, %rcx
	shr	$3, %rcx
	xor	%eax, %eax
	rep stosq
	lea	boot_stack_top(%rip), %rsp
	mov	%r12, %rdi
	mov	%r13, %rsi
	call	guest_main
1:	cli
	hlt
	jmp	1b

	/* Application processors: the trampoline lands here in flat 32-bit mode. */
	.text
	.code32
	.globl ap_start32
ap_start32:
	enter_pae_lme
	mov	%cr0, %eax
	and	$~CR0_NW_CD, %eax	/* INIT leaves caches disabled */
	or	$(CR0_PG | CR0_PE), %eax
	mov	%eax, %cr0
	ljmp	$SEL_CODE64, $ap_start64

	.code64
ap_start64:
	mov	$SEL_DATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	/* Stacks are handed out by APIC ID so a late AP can never share one. */
	mov	$1, %eax
	cpuid
	shr	$24, %ebx
	mov	ap_stack_table(, %rbx, 8), %rsp
	test	%rsp, %rsp
	jz	2f
	mov	%ebx, %edi
	call	ap_main
2:	cli
	hlt
	jmp	2b

	/* ---- data ---------------------------------------------------------- */
	.section .data.gdt, "aw"
	.balign 16
	.globl gdt
gdt:
	.quad	0
	.quad	0x00af9b000000ffff	/* 0x08 code64 (accessed bit preset: no GDT writes) */
	.quad	0x00cf93000000ffff	/* 0x10 data, flat 4 GiB */
	.quad	0x00cf9b000000ffff	/* 0x18 code32, flat 4 GiB (AP trampoline) */
	.quad	0x00cffb000000ffff	/* 0x20 user code32, DPL 3 (compat=exercise; unused) */
	.quad	0x00cff3000000ffff	/* 0x28 user data, DPL 3 */
	.quad	0x00affb000000ffff	/* 0x30 user code64, DPL 3 */
	.quad	0, 0			/* 0x38 TSS (RSP0 for interrupts taken in ring 3) */
gdt_end:
	.if (gdt_end - gdt) != GDT_ENTRIES * 8
	.error "GDT_ENTRIES out of sync"
	.endif
	.balign 8
gdt_desc:
	.word	gdt_end - gdt - 1
	.quad	gdt

	/* Identity map 0..4 GiB with 2 MiB pages, fully built at link time so
	 * no entry path needs page-table code. 3..4 GiB holds MMIO (LAPIC,
	 * IOAPIC, ...) and is mapped uncached. */
	.section .data.pagetables, "aw"
	.balign 4096
	.globl boot_pml4
boot_pml4:
	.quad	boot_pdpt + 0x3
	.fill	511, 8, 0
boot_pdpt:
	.quad	boot_pd + 0x0003
	.quad	boot_pd + 0x1003
	.quad	boot_pd + 0x2003
	.quad	boot_pd + 0x3003
	.fill	508, 8, 0
boot_pd:
	.set	pde, 0
	.rept	1536
	.quad	(pde << 21) | 0x83	/* P | RW | PS */
	.set	pde, pde + 1
	.endr
	.rept	512
	.quad	(pde << 21) | 0x9b	/* P | RW | PWT | PCD | PS */
	.set	pde, pde + 1
	.endr

	/* PVH: XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen". The descriptor is
	 * 8 bytes like Linux's (_ASM_PTR); QEMU 7.2 reads 8 bytes from a
	 * 64-bit ELF, a VMM reading 4 gets the same value. */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4			/* namesz */
	.long	8			/* descsz */
	.long	18			/* type */
	.asciz	"Xen"
	.balign 4
	.quad	pvh_start32

	.section .bss
	.balign 16
boot_stack:
	.skip	16384
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
