/*
 * bench/exits guest entry. PVH enters here in 32-bit protected mode with paging
 * off and %ebx = start_info (PVH boot protocol, xen/arch/x86/include/public/
 * arch-x86/hvm/start_info.h). We identity-map the low 4 GiB with 2 MiB pages
 * (uncached from 3 GiB: the MMIO hole, where the virtio-mmio windows live),
 * switch to long mode and call exits_main(start_info).
 */
	.section .head.text, "ax"
	.code32
	.globl	pvh_start32
pvh_start32:
	cli
	cld
	movl	%ebx, %esi

	movl	$__bss_start, %edi	/* the loaders zero-fill, but do not rely on it */
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	xorl	%eax, %eax
	rep stosb

	movl	$pdpt + 3, pml4		/* present | writable */
	movl	$pdpt, %edi
	movl	$pd + 3, %eax
	movl	$4, %ecx
1:	movl	%eax, (%edi)
	addl	$4096, %eax
	addl	$8, %edi
	loop	1b

	movl	$pd, %edi		/* 2048 x 2 MiB: present | writable | PS */
	xorl	%ecx, %ecx
2:	movl	%ecx, %eax
	shll	$21, %eax
	orl	$0x83, %eax
	cmpl	$1536, %ecx		/* >= 3 GiB: PCD | PWT */
	jb	3f
	orl	$0x18, %eax
3:	movl	%eax, (%edi)
	movl	%ecx, %eax
	shrl	$11, %eax
	movl	%eax, 4(%edi)
	addl	$8, %edi
	incl	%ecx
	cmpl	$2048, %ecx
	jne	2b

	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xC0000080, %ecx	/* EFER.LME */
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax	/* PG | PE */
	movl	%eax, %cr0
	lgdt	gdt_ptr
	ljmp	$0x08, $long_mode

	.code64
long_mode:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	%ax, %fs
	movw	%ax, %gs
	leaq	stack_top(%rip), %rsp
	movl	%esi, %edi
	call	exits_main
4:	cli
	hlt
	jmp	4b

	.section .rodata
	.balign 16
gdt:
	.quad	0
	.quad	0x00AF9A000000FFFF	/* 0x08: 64-bit code */
	.quad	0x00CF92000000FFFF	/* 0x10: data */
gdt_end:
gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt

	/* XEN_ELFNOTE_PHYS32_ENTRY (18): 8-byte descriptor, read by our VMM and QEMU alike. */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4
	.long	8
	.long	18
	.asciz	"Xen"
	.balign 4
	.quad	pvh_start32

	.section .bss
	.balign 4096
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096
	.balign 16
	.skip 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
