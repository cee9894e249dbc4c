/* Boot info, ACPI-derived platform description and the check interface. */
#ifndef GUEST_PLATFORM_H
#define GUEST_PLATFORM_H

#include "guest.h"

#define MAX_MEM 128
#define CMDLINE_MAX 4096
#define MAX_BUSY 8
#define E820_RAM 1

struct mem_region {
	uint64_t addr, size;
	uint32_t type; /* e820 / hvm_memmap type: 1 = usable RAM */
};

/* Low-memory ranges the loader put boot data in (never reused for the
 * AP trampoline even though we copied what we need). */
struct busy_range {
	uint64_t addr, size;
	const char *what;
};

/* Normalized view of either boot path; filled before low memory is reused. */
struct boot_info {
	unsigned path;         /* BOOT_PVH or BOOT_LINUX64 */
	const char *path_name; /* "pvh" / "linux64" */
	uint64_t data_addr;    /* hvm_start_info or boot_params */
	uint32_t magic;        /* PVH magic, or the "HdrS" word of the setup header */
	uint32_t version;      /* start_info version, or boot protocol version */
	uint32_t raw_entries;  /* memory map entries the loader announced */
	struct mem_region mem[MAX_MEM];
	unsigned nmem;
	uint64_t cmdline_addr;
	char cmdline[CMDLINE_MAX];
	uint32_t cmdline_len;
	bool cmdline_truncated;
	uint64_t rsdp; /* 0 if the loader gave none */
	uint64_t initrd_addr, initrd_size; /* PVH module 0 / boot_params ramdisk; size 0: none */
	struct busy_range busy[MAX_BUSY];
	unsigned nbusy;
};

struct gas { /* ACPI Generic Address Structure */
	uint8_t space, width, offset, access;
	uint64_t addr;
};

struct ioapic_info {
	uint8_t id;
	uint32_t addr, gsi_base;
};

struct iso_info { /* MADT interrupt source override */
	uint8_t bus, irq;
	uint16_t flags; /* MPS INTI flags: polarity bits 1:0, trigger bits 3:2 */
	uint32_t gsi;
};

struct platform {
	char err[128]; /* first problem acpi_scan() met; "" when the tables are sane */
	uint64_t rsdp;
	bool rsdp_scanned; /* found by scanning the BIOS area, not from boot info */
	uint8_t rsdp_rev;
	bool xsdt; /* false: RSDT (ACPI 1.0 RSDP, as QEMU's pc/q35 build) */
	uint64_t sdt;
	unsigned ntables;
	bool fadt, hw_reduced;
	uint8_t fadt_rev;
	uint32_t fadt_flags;
	uint16_t boot_arch; /* IAPC_BOOT_ARCH */
	uint32_t pm1a_evt, pm1a_cnt, pm1b_cnt, pm_tmr;
	uint16_t sci;
	struct gas sleep_ctl; /* HW-reduced ACPI (microvm) */
	uint64_t dsdt;
	bool s5;
	uint8_t slp_typa, slp_typb;
	bool madt;
	uint64_t lapic_addr;
	uint32_t madt_flags;
	unsigned ncpus;     /* enabled LAPIC (xAPIC) entries, all of them */
	unsigned nx2apic;   /* enabled x2APIC-only entries (cannot be started) */
	uint8_t cpu_apic[MAX_CPUS];
	unsigned nioapic;
	struct ioapic_info ioapic[8];
	unsigned niso;
	struct iso_info iso[16];
	uint64_t tpm2; /* the TPM2 table (first one listed), 0 if none */
};

struct options {
	uint32_t expect_cpus; /* expect_cpus=N; 0 = not given */
	uint32_t linger_s;    /* linger=N: seconds to stay up after the result line (1..3600) */
	const char *crash;    /* crash=ud: unexpected #UD in the exceptions check; crash=fetch: code from MMIO */
	bool selftest_linux64; /* selftest=linux64: PVH boot re-enters via startup_64 */
	uint32_t expect_virtio; /* expect_virtio=blk,rng: bit = virtio device ID; bit 31 = unknown name */
	uint32_t hostile;       /* hostile=virtio[,ringaddr]: HOSTILE_* bits */
	uint64_t expect_vsock_cid; /* expect_vsock_cid=N: the vsock config's guest_cid; 0 = not given */
	uint32_t expect_tpm;    /* expect_tpm=crb: TPM_EXPECT_* */
	bool tpm_startup_guest; /* tpm_startup=guest: the guest sends TPM2_Startup if needed */
	bool compat_exercise;   /* compat=exercise: check compat drives the kvm_pvm module */
	bool power_button_ignore; /* power_button=ignore: linger= does not watch the ACPI power button */
	bool compat_unsupported; /* compat=unsupported: cpuid from the module's window */
	bool exceptions_no_int3; /* exceptions=no-int3: skip the #BP probe (kvm_pvm cannot run int3) */
	uint8_t attest_nonce[32];  /* attest_nonce=<hex>: the qualifyingData of check attest's quote */
	uint32_t attest_nonce_len; /* 0 = not given */
	bool attest_nonce_bad;     /* given, but not 1..32 bytes of hex */
};
#define TPM_EXPECT_CRB 1u     /* check tpm drives a CRB TPM 2.0 */
#define TPM_EXPECT_UNKNOWN 2u /* an unknown interface name: never met */
#define HOSTILE_VIRTIO 1u   /* check virtio-hostile runs */

struct guest {
	struct boot_info boot;
	struct platform plat;
	struct options opt;
};
extern struct guest g;

void bootinfo_collect(struct boot_info *bi, uint64_t data, unsigned path);
bool mem_usable(const struct boot_info *bi, uint64_t start, uint64_t end);
void acpi_scan(const struct boot_info *bi, struct platform *p);
void acpi_poweroff(const struct platform *p);
void guest_fatal_exception(const struct isr_frame *f);
void selftest_linux64(const struct boot_info *bi) __attribute__((noreturn));
extern uint8_t _image_start[], _image_end[];

/* ---- apic.c ------------------------------------------------------------ */
extern uint8_t bsp_apic_id;
void pic_disable(void);
void lapic_init(void);
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);
uint8_t lapic_id(void);
void lapic_eoi(void);
uint32_t isa_irq_to_gsi(const struct platform *p, uint8_t irq, uint16_t *flags);
bool ioapic_route(const struct platform *p, uint32_t gsi, uint8_t vector, uint8_t dest, uint16_t flags);
void ioapic_mask(const struct platform *p, uint32_t gsi);

/* ---- checks ------------------------------------------------------------ */
struct detail {
	char buf[320];
	size_t len;
};
void detail_add(struct detail *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A check returns true for "ok"; the detail text follows ok/FAIL. */
typedef bool check_body(struct guest *g, struct detail *d);
typedef check_body *check_fn;
struct check {
	const char *name;
	check_fn run;
};

/* The checks, one per checks/<name>.c. */
check_body check_bootinfo, check_memmap, check_acpi, check_exceptions, check_uart, check_timer,
	check_smp, check_virtio, check_virtio_hostile, check_tpm, check_measured_boot, check_attest,
	check_compat;

#endif
