/* Shared declarations of the freestanding test guest (no libc). */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "port_io.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- CPU primitives ---------------------------------------------------- */
static inline void cpu_pause(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void cpu_cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void cpu_sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
static inline uint64_t read_cr2(void)
{
	uint64_t v;
	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

/*
 * Physical memory is identity mapped (0..4 GiB). Laundering the address
 * through an empty asm hides the constant from GCC, so accesses to low
 * addresses (0x6000, even 0) are neither treated as NULL-deref UB nor
 * flagged by -Warray-bounds.
 */
static inline void *phys(uint64_t pa)
{
	void *p = (void *)(uintptr_t)pa;
	__asm__("" : "+r"(p));
	return p;
}
static inline bool phys_ok(uint64_t pa, uint64_t len) { return pa < IDENTITY_MAP_END && len <= IDENTITY_MAP_END - pa; }
static inline uint32_t mmio_read32(uint64_t pa) { return *(volatile uint32_t *)phys(pa); }
static inline void mmio_write32(uint64_t pa, uint32_t v) { *(volatile uint32_t *)phys(pa) = v; }

/* ---- lib.c ------------------------------------------------------------- */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
/* Parses a decimal number; returns false on junk or overflow. */
bool parse_u32(const char *s, size_t len, uint32_t *out);
/* n bytes as 2n lowercase hex digits and a NUL (out holds 2n + 1). */
void hex_encode(char *out, const void *bytes, size_t n);
/* Little-endian fields (ACPI tables, the TCG event log), at any alignment. */
static inline uint16_t le16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }
static inline uint32_t le32(const uint8_t *b) { return (uint32_t)le16(b) | (uint32_t)le16(b + 2) << 16; }
static inline uint64_t le64(const uint8_t *b) { return le32(b) | (uint64_t)le32(b + 4) << 32; }

/* ---- console.c: COM1, polled ------------------------------------------- */
void console_init(void);
void console_set_fifo(bool on); /* uart check toggles the FIFO */
void console_flush(void);
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- time.c: TSC based delays ------------------------------------------ */
extern uint64_t tsc_khz;
extern const char *tsc_source;
void tsc_calibrate(void);
uint64_t deadline_us(uint64_t us);
bool deadline_passed(uint64_t deadline);
void udelay(uint64_t us);

/* ---- idt.c ------------------------------------------------------------- */
struct isr_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rdi, rsi, rbp, rbx, rdx, rcx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};
typedef void (*irq_handler_t)(struct isr_frame *f);
void idt_init(void);
void idt_load(void); /* APs share the BSP's table */
void irq_set_handler(uint8_t vector, irq_handler_t h);
/* Arms a one-shot "expected exception" on the BSP; the handler records RIP
 * and error code and resumes at resume_rip (0: at the reported RIP, for traps). */
void exc_expect(uint8_t vector, uint64_t resume_rip);
bool exc_was_caught(uint64_t *rip, uint64_t *error);

#endif
