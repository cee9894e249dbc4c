/*
 * 256-entry IDT. Exceptions are fatal unless a check armed exc_expect();
 * external interrupts go to registered handlers (unknown ones are counted and
 * acknowledged, never fatal: a stray edge must not kill the run).
 */
#include "platform.h"

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, reserved;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static irq_handler_t handlers[256];
extern const char isr_stubs[]; /* isr.S: 256 stubs, 16 bytes apart */

static volatile int expect_vector = -1;
static volatile uint64_t expect_resume;
static volatile bool caught;
static volatile uint64_t caught_rip, caught_error;
volatile unsigned stray_irqs;

void idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) desc = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(desc));
}

void idt_init(void)
{
	for (unsigned v = 0; v < 256; v++) {
		uint64_t a = (uint64_t)(uintptr_t)isr_stubs + 16 * v;
		idt[v] = (struct idt_entry){
			.off0 = (uint16_t)a,
			.sel = SEL_CODE64,
			.type = 0x8E, /* present, DPL0, 64-bit interrupt gate (IF cleared) */
			.off1 = (uint16_t)(a >> 16),
			.off2 = (uint32_t)(a >> 32),
		};
	}
	idt_load();
}

void irq_set_handler(uint8_t vector, irq_handler_t h) { handlers[vector] = h; }

void exc_expect(uint8_t vector, uint64_t resume_rip)
{
	caught = false;
	expect_resume = resume_rip;
	__atomic_store_n(&expect_vector, vector, __ATOMIC_SEQ_CST);
}

bool exc_was_caught(uint64_t *rip, uint64_t *error)
{
	expect_vector = -1;
	*rip = caught_rip;
	*error = caught_error;
	return caught;
}

void isr_dispatch(struct isr_frame *f);
void isr_dispatch(struct isr_frame *f)
{
	uint64_t v = f->vector;
	if (v < 32) {
		if ((int)v == expect_vector) {
			expect_vector = -1;
			caught = true;
			caught_rip = f->rip;
			caught_error = f->error;
			if (expect_resume) /* faults: continue after the instruction */
				f->rip = expect_resume;
			return;
		}
		guest_fatal_exception(f);
		return;
	}
	if (handlers[v])
		handlers[v](f);
	else
		stray_irqs++;
	/* The spurious vector and the (masked, remapped) 8259 need no LAPIC EOI. */
	if (v != VEC_SPURIOUS && (v < VEC_PIC_BASE || v >= VEC_PIC_BASE + 16))
		lapic_eoi();
}
