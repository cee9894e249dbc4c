/* Legacy PIC, local APIC and IOAPIC helpers. */
#include "platform.h"

#define MSR_APIC_BASE 0x1B
#define APIC_BASE_ENABLE (1u << 11)

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xB0
#define LAPIC_SVR 0xF0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_ERROR 0x370
#define LVT_MASKED 0x10000u

static uint64_t lapic_base = 0xFEE00000;
uint8_t bsp_apic_id;

/*
 * Firmware (SeaBIOS) leaves the 8259 programmed with IRQ0 at vector 8 and
 * unmasked. Remap it out of the exception range and mask every line; all
 * our interrupts go through the IOAPIC.
 */
void pic_disable(void)
{
	outb(0x20, 0x11); /* ICW1: init, ICW4 follows */
	outb(0xA0, 0x11);
	outb(0x21, VEC_PIC_BASE); /* ICW2: vector base */
	outb(0xA1, VEC_PIC_BASE + 8);
	outb(0x21, 0x04); /* ICW3: slave on IR2 */
	outb(0xA1, 0x02);
	outb(0x21, 0x01); /* ICW4: 8086 mode */
	outb(0xA1, 0x01);
	outb(0x21, 0xFF); /* mask all */
	outb(0xA1, 0xFF);
}

uint32_t lapic_read(uint32_t reg) { return mmio_read32(lapic_base + reg); }
void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(lapic_base + reg, v); }
uint8_t lapic_id(void) { return (uint8_t)(lapic_read(LAPIC_ID) >> 24); }
void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

/* BSP only. The MSR, not the MADT, says where this CPU's APIC decodes. */
void lapic_init(void)
{
	uint64_t msr = rdmsr(MSR_APIC_BASE);
	if (!(msr & APIC_BASE_ENABLE))
		wrmsr(MSR_APIC_BASE, msr | APIC_BASE_ENABLE);
	lapic_base = msr & 0xFFFFFF000ull;
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS); /* software enable */
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_LINT0, LVT_MASKED); /* no ExtINT path from the 8259 */
	lapic_write(LAPIC_LVT_ERROR, VEC_LAPIC_ERROR);
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	bsp_apic_id = lapic_id();
}

/* ISA IRQ -> GSI via the MADT overrides; identity (edge, high) otherwise. */
uint32_t isa_irq_to_gsi(const struct platform *p, uint8_t irq, uint16_t *flags)
{
	for (unsigned i = 0; i < p->niso; i++) {
		if (p->iso[i].bus == 0 && p->iso[i].irq == irq) {
			*flags = p->iso[i].flags;
			return p->iso[i].gsi;
		}
	}
	*flags = 0;
	return irq;
}

static uint32_t ioapic_read(uint64_t base, uint32_t reg)
{
	mmio_write32(base, reg);
	return mmio_read32(base + 0x10);
}

static void ioapic_write(uint64_t base, uint32_t reg, uint32_t v)
{
	mmio_write32(base, reg);
	mmio_write32(base + 0x10, v);
}

static const struct ioapic_info *ioapic_for(const struct platform *p, uint32_t gsi, uint32_t *pin)
{
	for (unsigned i = 0; i < p->nioapic; i++) {
		const struct ioapic_info *io = &p->ioapic[i];
		uint32_t max = (ioapic_read(io->addr, 1) >> 16) & 0xff; /* IOAPICVER.MRE */
		if (gsi >= io->gsi_base && gsi <= io->gsi_base + max) {
			*pin = gsi - io->gsi_base;
			return io;
		}
	}
	return NULL;
}

bool ioapic_route(const struct platform *p, uint32_t gsi, uint8_t vector, uint8_t dest, uint16_t flags)
{
	uint32_t pin;
	const struct ioapic_info *io = ioapic_for(p, gsi, &pin);
	if (!io)
		return false;
	uint32_t low = vector; /* fixed delivery, physical destination */
	if ((flags & 3) == 3)
		low |= 1u << 13; /* active low */
	if (((flags >> 2) & 3) == 3)
		low |= 1u << 15; /* level triggered */
	ioapic_write(io->addr, 0x11 + 2 * pin, (uint32_t)dest << 24);
	ioapic_write(io->addr, 0x10 + 2 * pin, low);
	return true;
}

void ioapic_mask(const struct platform *p, uint32_t gsi)
{
	uint32_t pin;
	const struct ioapic_info *io = ioapic_for(p, gsi, &pin);
	if (io)
		ioapic_write(io->addr, 0x10 + 2 * pin, LVT_MASKED);
}
