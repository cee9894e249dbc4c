/*
 * compat=exercise (checks/compat.c): the pieces that need exact register control.
 *
 *   compat_call(struct compat_regs *r, uint64_t target)
 *       loads rax, rbx, rcx, rdx, rsi, rdi, r8 from *r, calls target, stores them back
 *       with RFLAGS. The target is an instruction at the end of the VMM's emulation
 *       window followed by a ret on the next page.
 *
 *   compat_user_run(struct compat_syscalls *s)
 *       drops to ring 3 (IF=0), does COMPAT_ROUNDS real SYSCALL/SYSRET round trips and
 *       COMPAT_ROUNDS simulated kvm_pvm landings (RCX/R11 set as SYSCALL sets them, then
 *       a jump at CPL 3 to where the vCPU's LSTAR really points, the VMM's redirect,
 *       which only the VMM's fix-up turns into CPL 0 at the guest's LSTAR), and
 *       returns to ring 0 through one last SYSCALL. Both sides record what they saw.
 */
#include "layout.h"

#define COMPAT_ROUNDS 4
#define COMPAT_EXIT 0xE0
#define COMPAT_REDIRECT 0xD0000	/* the VMM's kSyscallRedirect: the window's first page */
#define USER_FLAGS 0x40483	/* AC | DF | SF | CF | bit 1: all settable at CPL 3 */
/* struct compat_side: cs, ss, rflags, rcx, r11 (5 quads) */
#define SIDE 40

	.text
	.code64

	.globl compat_call
compat_call:
	push	%rbx
	push	%rbp
	push	%r12
	push	%rdi
	mov	%rsi, %r11
	mov	0(%rdi), %rax
	mov	8(%rdi), %rbx
	mov	16(%rdi), %rcx
	mov	24(%rdi), %rdx
	mov	32(%rdi), %rsi
	mov	48(%rdi), %r8
	mov	40(%rdi), %rdi
	call	*%r11
	mov	%rdi, %r12
	mov	(%rsp), %rdi
	mov	%rax, 0(%rdi)
	mov	%rbx, 8(%rdi)
	mov	%rcx, 16(%rdi)
	mov	%rdx, 24(%rdi)
	mov	%rsi, 32(%rdi)
	mov	%r12, 40(%rdi)
	mov	%r8, 48(%rdi)
	pushfq
	popq	56(%rdi)
	pop	%rdi
	pop	%r12
	pop	%rbp
	pop	%rbx
	ret

	.globl compat_user_run
compat_user_run:
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, compat_kernel_rsp(%rip)
	mov	%rdi, compat_results(%rip)
	pushq	$(SEL_UDATA | 3)
	lea	compat_user_stack_top(%rip), %rax
	push	%rax
	pushq	$0x2			/* RFLAGS: IF=0, nothing else */
	pushq	$(SEL_UCODE64 | 3)
	lea	compat_user_main(%rip), %rax
	push	%rax
	iretq

compat_user_return:			/* from the entry point, at CPL 0 */
	mov	compat_kernel_rsp(%rip), %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	ret

/* LSTAR. SYSCALL does not switch stacks: the user stack is in use here. */
	.globl compat_syscall_entry
compat_syscall_entry:
	pushfq				/* first: nothing below may change RFLAGS unseen */
	cmp	$COMPAT_EXIT, %rax
	je	compat_user_return
	mov	compat_results(%rip), %r8
	imul	$SIDE, %rax, %r9
	lea	(%r8, %r9), %r8		/* &results->kernel[round] */
	mov	%cs, %r9
	mov	%r9, 0(%r8)
	mov	%ss, %r9
	mov	%r9, 8(%r8)
	popq	16(%r8)
	mov	%rcx, 24(%r8)
	mov	%r11, 32(%r8)
	testq	$3, 0(%r8)
	jnz	1f
	sysretq
1:	/* still CPL 3: nobody completed the SYSCALL; go back without SYSRET */
	push	%r11
	popfq
	jmp	*%rcx

/* Ring 3. r12 = round, r13 = &results->user[round]. */
compat_user_main:
	xor	%r12d, %r12d
2:	mov	%r12, %rax
	cmp	$COMPAT_ROUNDS, %r12
	jb	5f
	/* kvm_pvm's landing: SYSCALL's register part only, then CPL 3 at the real LSTAR,
	 * which is the VMM's redirect (the window's first page) for this guest */
	pushq	$USER_FLAGS
	popfq
	lea	compat_after_syscall(%rip), %rcx
	pushfq
	pop	%r11
	mov	$COMPAT_REDIRECT, %r10d
	jmp	*%r10
5:	pushq	$USER_FLAGS
	popfq
	syscall				/* a real SYSCALL: returns to the next instruction */
	.globl compat_after_syscall
compat_after_syscall:
	pushfq
	pop	%r10
	mov	compat_results(%rip), %r13
	imul	$SIDE, %r12, %r9
	lea	(2 * COMPAT_ROUNDS * SIDE)(%r13, %r9), %r13	/* &results->user[round] */
	mov	%cs, %r9
	mov	%r9, 0(%r13)
	mov	%ss, %r9
	mov	%r9, 8(%r13)
	mov	%r10, 16(%r13)
	mov	%rcx, 24(%r13)
	mov	%r11, 32(%r13)
	cld
	inc	%r12
	cmp	$(2 * COMPAT_ROUNDS), %r12
	jb	2b
	pushq	$0x2
	popfq
	mov	$COMPAT_EXIT, %eax
	syscall
	ud2				/* not reached */

	.section .bss
	.balign 16
compat_kernel_rsp:
	.quad	0
compat_results:
	.quad	0
	.balign 16
compat_user_stack:
	.fill	4096, 1, 0
compat_user_stack_top:

	.section .note.GNU-stack, "", @progbits
