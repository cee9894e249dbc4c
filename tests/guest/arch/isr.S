/*
 * One 16-byte stub per IDT vector (0..255). Each stub pushes a dummy error
 * code where the CPU does not push one, then the vector number, so the C
 * dispatcher sees a uniform struct isr_frame (include/guest.h).
 */
	.text
	.code64
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set	vec, 0
	.rept	256
	.balign	16
	/* Vectors with a CPU-pushed error code: #DF #TS #NP #SS #GP #PF #AC #CP #VC #SX */
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq	$0
	.endif
	pushq	$vec
	jmp	isr_common
	.set	vec, vec + 1
	.endr

isr_common:
	/* Frame is 16-byte aligned here: CPU aligns before its 5 words,
	 * + error + vector + 15 registers = 22 words. */
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rbx
	pushq	%rbp
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	mov	%rsp, %rdi
	cld
	call	isr_dispatch
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rbp
	popq	%rbx
	popq	%rdx
	popq	%rcx
	popq	%rax
	add	$16, %rsp		/* vector + error code */
	iretq

	/* Probes for the exceptions check: the handler resumes at *_resume. */
	.globl probe_int3, probe_int3_resume, probe_ud, probe_ud_resume, probe_pf, probe_pf_resume
probe_int3:
	int3
probe_int3_resume:			/* trap: the reported RIP is already here */
	ret
probe_ud:
	ud2
probe_ud_resume:
	ret
probe_pf:
	movabs	0x200000000, %rax	/* 8 GiB: outside the 4 GiB identity map */
probe_pf_resume:
	ret

	.section .note.GNU-stack, "", @progbits
