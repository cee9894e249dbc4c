/*
 * Test guest main: both boot paths arrive here with a normalized boot info.
 * Output contract (parsed by the VMM's tests and benchmark, keep exact):
 *   testguest: hello (boot=pvh|linux64)
 *   check <name>: ok|FAIL <detail>
 *   testguest: result PASS (<n> checks) | testguest: result FAIL (<k> of <n> failed)
 * followed by an ACPI power-off.
 */
#include "platform.h"
#include "port_io.h"

struct guest g;

/* Every check, in run order. New modules (e.g. the event log)
 * add one line here and one file under checks/. */
static const struct check checks[] = {
	{ "bootinfo", check_bootinfo },
	{ "memmap", check_memmap },
	{ "acpi", check_acpi },
	{ "exceptions", check_exceptions },
	{ "uart", check_uart },
	{ "timer", check_timer },
	{ "smp", check_smp },
	{ "virtio", check_virtio },
	{ "virtio-hostile", check_virtio_hostile },
	{ "tpm", check_tpm },
	{ "measured-boot", check_measured_boot },
	{ "attest", check_attest },
	{ "compat", check_compat },
};

static int current_check = -1;
static unsigned passed;

void detail_add(struct detail *d, const char *fmt, ...)
{
	if (d->len + 1 >= sizeof(d->buf))
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = kvsnprintf(d->buf + d->len, sizeof(d->buf) - d->len, fmt, ap);
	va_end(ap);
	d->len += (size_t)n;
	if (d->len >= sizeof(d->buf))
		d->len = sizeof(d->buf) - 1;
}

/* Splits the first comma-separated item (maybe empty) off the list [*s, *s + *len): returns
 * its length and steps *s and *len past it and its comma. */
static size_t take_item(const char **s, size_t *len)
{
	size_t n = 0;
	while (n < *len && (*s)[n] != ',')
		n++;
	size_t step = n < *len ? n + 1 : n;
	*s += step;
	*len -= step;
	return n;
}

/* expect_virtio=blk,rng,vsock: a bit per virtio device ID (§5: blk 2, rng 4, vsock 19);
 * an unknown name sets bit 31, which no device can satisfy. */
static uint32_t parse_virtio_list(const char *s, size_t len)
{
	uint32_t mask = 0;
	while (len) {
		const char *item = s;
		size_t n = take_item(&s, &len);
		if (n == 3 && !strncmp(item, "blk", 3))
			mask |= 1u << 2;
		else if (n == 3 && !strncmp(item, "rng", 3))
			mask |= 1u << 4;
		else if (n == 5 && !strncmp(item, "vsock", 5))
			mask |= 1u << 19;
		else if (n)
			mask |= 1u << 31;
	}
	return mask;
}

/* hostile=virtio: unknown names are ignored. */
static uint32_t parse_hostile_list(const char *s, size_t len)
{
	uint32_t mask = 0;
	while (len) {
		const char *item = s;
		if (take_item(&s, &len) == 6 && !strncmp(item, "virtio", 6))
			mask |= HOSTILE_VIRTIO;
	}
	return mask;
}

/* attest_nonce=<hex>: 1 to 32 bytes, either case; anything else marks it bad. */
static void parse_nonce(const char *s, size_t len, struct options *o)
{
	o->attest_nonce_len = 0;
	o->attest_nonce_bad = len == 0 || len % 2 || len > 2 * sizeof(o->attest_nonce);
	for (size_t i = 0; !o->attest_nonce_bad && i < len; i++) {
		char ch = s[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0'
		        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
		                                 : -1;
		if (v < 0)
			o->attest_nonce_bad = true;
		else if (i % 2)
			o->attest_nonce[i / 2] = (uint8_t)(o->attest_nonce[i / 2] << 4 | v);
		else
			o->attest_nonce[i / 2] = (uint8_t)v;
	}
	if (!o->attest_nonce_bad)
		o->attest_nonce_len = (uint32_t)(len / 2);
}

/* Space separated key=value options; unknown ones are ignored. */
static void parse_options(const struct boot_info *bi, struct options *o)
{
	const char *s = bi->cmdline;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		const char *w = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n')
			s++;
		size_t len = (size_t)(s - w);
		if (len > 12 && !strncmp(w, "expect_cpus=", 12)) {
			if (!parse_u32(w + 12, len - 12, &o->expect_cpus))
				o->expect_cpus = 0xffffffffu; /* garbage can never be met */
		} else if (len > 7 && !strncmp(w, "linger=", 7)) {
			if (!parse_u32(w + 7, len - 7, &o->linger_s) || o->linger_s > 3600)
				o->linger_s = 0;
		} else if (len > 14 && !strncmp(w, "expect_virtio=", 14)) {
			o->expect_virtio = parse_virtio_list(w + 14, len - 14);
		} else if (len > 17 && !strncmp(w, "expect_vsock_cid=", 17)) {
			uint32_t cid;
			/* garbage (or a reserved CID) can never be met: no device reports 1 */
			o->expect_vsock_cid = parse_u32(w + 17, len - 17, &cid) && cid ? cid : 1;
		} else if (len > 11 && !strncmp(w, "expect_tpm=", 11)) {
			o->expect_tpm = len == 14 && !strncmp(w + 11, "crb", 3) ? TPM_EXPECT_CRB : TPM_EXPECT_UNKNOWN;
		} else if (len >= 13 && !strncmp(w, "attest_nonce=", 13)) {
			parse_nonce(w + 13, len - 13, o);
		} else if (len == 17 && !strncmp(w, "tpm_startup=guest", 17)) {
			o->tpm_startup_guest = true;
		} else if (len > 8 && !strncmp(w, "hostile=", 8)) {
			o->hostile = parse_hostile_list(w + 8, len - 8);
		} else if (len == 15 && !strncmp(w, "compat=exercise", 15)) {
			o->compat_exercise = true;
		} else if (len == 18 && !strncmp(w, "compat=unsupported", 18)) {
			o->compat_unsupported = true;
		} else if (len == 18 && !strncmp(w, "exceptions=no-int3", 18)) {
			o->exceptions_no_int3 = true;
		} else if (len == 19 && !strncmp(w, "power_button=ignore", 19)) {
			o->power_button_ignore = true;
		} else if (len == 8 && !strncmp(w, "crash=ud", 8)) {
			o->crash = "ud";
		} else if (len == 11 && !strncmp(w, "crash=fetch", 11)) {
			o->crash = "fetch";
		} else if (len == 16 && !strncmp(w, "selftest=linux64", 16)) {
			o->selftest_linux64 = true;
		}
	}
}

static void finish(void)
{
	unsigned n = ARRAY_SIZE(checks);
	if (passed == n)
		kprintf("testguest: result PASS (%u checks)\n", n);
	else
		kprintf("testguest: result FAIL (%u of %u failed)\n", n - passed, n);
	if (g.opt.linger_s) {
		/* Up, idle, for the host to look at (vmm attest quotes the vTPM meanwhile). */
		kprintf("testguest: lingering %u s before power-off\n", g.opt.linger_s);
		console_flush();
		/* The ACPI fixed-feature power button (PM1 PWRBTN_EN/STS, bit 8) ends the wait:
		 * `vmm ctl shutdown` presses it. Polled, since interrupts stay off. */
		const uint16_t pwrbtn = 1u << 8;
		const uint16_t evt = g.opt.power_button_ignore ? 0 : (uint16_t)g.plat.pm1a_evt;
		if (evt)
			outw((uint16_t)(evt + 2), pwrbtn);
		for (uint32_t i = 0; i < g.opt.linger_s * 10u; i++) {
			if (evt && (inw(evt) & pwrbtn)) {
				outw(evt, pwrbtn);
				kprintf("testguest: power button pressed, powering off\n");
				break;
			}
			udelay(100000);
		}
	}
	console_flush();
	acpi_poweroff(&g.plat);
}

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF9", "#TS",
	"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

/* Called from isr_dispatch() for any exception no check asked for. Checks
 * not yet run count as failed, so the result line still adds up. */
void guest_fatal_exception(const struct isr_frame *f)
{
	const char *name = exc_names[f->vector & 31] ? exc_names[f->vector & 31] : "#??";
	uint8_t id = lapic_id();
	if (id != bsp_apic_id) {
		kprintf("testguest: exception %s on cpu apic %u vector=%lu error=%#lx rip=%#lx cr2=%#lx\n",
		        name, id, f->vector, f->error, f->rip, read_cr2());
		for (;;) /* the BSP's smp check times out on this CPU */
			__asm__ volatile("cli; hlt");
	}
	kprintf("testguest: exception %s vector=%lu error=%#lx rip=%#lx cr2=%#lx\n", name, f->vector,
	        f->error, f->rip, read_cr2());
	if (current_check >= 0)
		kprintf("check %s: FAIL unexpected exception %s at rip %#lx\n", checks[current_check].name,
		        name, f->rip);
	finish();
}

void guest_main(uint64_t boot_data, uint32_t path);
void guest_main(uint64_t boot_data, uint32_t path)
{
	console_init();
	kprintf("testguest: hello (boot=%s)\n", path == BOOT_PVH ? "pvh" : "linux64");
	/* Copy everything out of the loader's low-memory structures first. */
	bootinfo_collect(&g.boot, boot_data, path);
	parse_options(&g.boot, &g.opt);
	if (g.opt.selftest_linux64 && path == BOOT_PVH)
		selftest_linux64(&g.boot); /* does not return */
	pic_disable();
	idt_init();
	lapic_init();
	acpi_scan(&g.boot, &g.plat);
	tsc_calibrate();

	for (unsigned i = 0; i < ARRAY_SIZE(checks); i++) {
		struct detail d = { .len = 0 };
		d.buf[0] = '\0';
		current_check = (int)i;
		bool ok = checks[i].run(&g, &d);
		cpu_cli(); /* a check must not leave interrupts on for the next one */
		current_check = -1;
		kprintf("check %s: %s %s\n", checks[i].name, ok ? "ok" : "FAIL", d.buf);
		passed += ok;
	}
	finish();
}
