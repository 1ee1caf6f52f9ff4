// SPDX-License-Identifier: GPL-2.0
/*
 * ksh_probe: the kernel's own answers for the kallsyms test harness.
 *
 * Loaded by the guest /init (finit_module) and used through debugfs,
 * /sys/kernel/debug/ksh_probe/:
 *
 *   lookup   write hex addresses (whitespace separated, optional 0x), then
 *            read one line per address, in order:
 *              ADDR FOUND SIZE OFFSET NAME MODULE\t%pS
 *            FOUND is 1 or 0; SIZE and OFFSET are hex without 0x; NAME and
 *            MODULE are "-" when absent. FOUND/SIZE/OFFSET/NAME are parsed
 *            from sprint_symbol(), which goes through kallsyms_lookup(), the
 *            same get_symbol_pos() as kallsyms_lookup_size_offset() (not
 *            exported in 6.12). The last field is snprintf("%pS").
 *            Every open file is one session: write the whole batch, then
 *            read; a write after reading starts a new batch.
 *   lookup-nops  the same without the %pS field ("-"): half the cost, for
 *            the probes that only need name, size and offset.
 *   check    the batch check: write a header (the magic "KSHCHK01" and a
 *            u64 added to every address: the KASLR offset for link-time
 *            addresses), then binary records (struct ksh_check_rec below,
 *            the layout of ksh_proto::check), each an address and the
 *            answer expected for it; the first read runs every lookup
 *            in the kernel and returns only the answers that differ, one
 *            line each, "ID ADDR FOUND SIZE OFFSET NAME MODULE" (fields as
 *            in lookup), then "end checked=N mismatched=M ns=T". One round
 *            trip per batch instead of a line per address.
 *            With the magic "KSHTIM01" and a third u64, the number of
 *            rounds, the records' addresses are looked up that many times
 *            instead (sprint_symbol, nothing compared) and the reply is
 *            "end checked=N mismatched=0 ns=T round_ns=R1,R2,...": the
 *            bench's cost of looking up every sized symbol.
 *   bench    write "N LO HI" (decimal N, hex LO/HI: a text range, runtime
 *            addresses), read back
 *              n=N lookup_ns=X ps_ns=Y
 *            ns per sprint_symbol() and per "%pS" of N pseudo-random
 *            addresses in [LO, HI).
 *   kprobe   (CONFIG_KPROBES only) write hex addresses, read one line per
 *            address: "ADDR RC", RC being register_kprobe()'s result (the
 *            probe is unregistered at once).
 *   features "kprobes=0|1", the module's own function addresses, and
 *            anchor_printk=ADDR: _printk's address as the module loader
 *            relocated it (an address anchor that does not come from
 *            kallsyms).
 *   backtrace  open: runs the backtrace fixture in a kthread; read: one
 *            line per saved stack entry, "ADDR\t%pB\t%pBb". The kthread's
 *            function ksh_bt_caller() ends with a call to a noreturn
 *            function, so one return address is exactly its end; that
 *            function also prints the trace with stack_trace_print() and
 *            dump_stack() between "ksh_probe: <what> begin/end" lines.
 *
 * Parameter fault= (test only: the harness's fault suite): panic or hang
 * make the module panic or never return from its init; warn makes its init
 * WARN(), warn-in-window makes the backtrace kthread WARN() inside its
 * dump_stack window (both must fail boot/no-kernel-warnings).
 *
 * It depends on nothing but exported 6.12 APIs, so it builds against both
 * the baseline and the patched kernel.
 */

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/completion.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/stacktrace.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/kprobes.h>

#define KSH_MAX_ADDRS (1UL << 22)

enum ksh_mode { KSH_LOOKUP, KSH_LOOKUP_NOPS, KSH_KPROBE };

struct ksh_session {
	struct mutex lock;
	enum ksh_mode mode;
	unsigned long *addrs;
	size_t n, cap;
	/* Partial token carried over between write() chunks. */
	char tok[24];
	size_t toklen;
	bool reading;
	size_t next;
	/* The line being copied out, and how much of it was. */
	char line[2 * KSYM_SYMBOL_LEN + 96];
	size_t line_len, line_off;
	char sym[KSYM_SYMBOL_LEN];
	char ps[KSYM_SYMBOL_LEN];
};

/*
 * Functions of the module itself, for the module-symbols check. The aligned
 * one leaves a gap after ksh_probe_small in the same section, so a
 * size-blind lookup reports a size larger than st_size.
 */
static noinline int __section(".text.ksh_probe_fns") ksh_probe_small(int x)
{
	return x * 3 + 1;
}

static noinline __aligned(256) int __section(".text.ksh_probe_fns")
ksh_probe_aligned(int x)
{
	int i, s = 0;

	for (i = 0; i < x; i++)
		s += i ^ x;
	return s;
}

static noinline int ksh_probe_target(int x)
{
	return ksh_probe_small(x) + ksh_probe_aligned(x & 7);
}

/*
 * Two functions in the module's .kprobes.text, each aligned to 64 bytes and
 * much smaller, so an alignment gap follows the first whichever order the
 * compiler emits them in: the kprobes blacklist walk over a module's area
 * must step over the gap and blacklist both. They are called through
 * pointers only (see ksh_probe_init()), so no constant-propagated clone
 * replaces them.
 */
static noinline __kprobes __aligned(64) int ksh_probe_kp_small(int x)
{
	return x * 5 + 3;
}

static noinline __kprobes __aligned(64) int ksh_probe_kp_aligned(int x)
{
	int i, s = 1;

	for (i = 0; i < x; i++)
		s = s * 3 + i;
	return s;
}

/*
 * The backtrace fixture. ksh_bt_caller() is a kthread function whose last
 * instruction is the call to the noreturn ksh_bt_capture(), so the return
 * address saved for its frame is exactly its end; the aligned function
 * after it in the same section (emitted in source order, see Kbuild)
 * leaves padding there, where a size-aware lookup finds no symbol and a
 * size-blind one still names ksh_bt_caller. Stack printers must name
 * ksh_bt_caller, and name ksh_bt_after for a pointer to it found on the
 * stack (the byte before it is padding).
 */
#define KSH_BT_MAX 32
static struct {
	unsigned long entries[KSH_BT_MAX];
	unsigned int nr;
	struct completion done;
} ksh_bt;
static DEFINE_MUTEX(ksh_bt_lock);

static char *fault = "";
module_param(fault, charp, 0444);
MODULE_PARM_DESC(fault,
		 "test only (the harness's fault suite): panic or hang in init, warn in init, warn-in-window in the dump_stack window");

static bool ksh_fault_is(const char *what)
{
	return !strcmp(fault, what);
}

static int ksh_bt_after(int x);

static noinline __noreturn void ksh_bt_capture(void)
{
	/*
	 * A function pointer on the stack, as kthread() leaves its thread
	 * function there: x86's dump_stack() prints it as an unreliable
	 * "? " entry with %pBb. ksh_bt_after() follows padding, so the byte
	 * before it has no symbol; the entry must still name ksh_bt_after.
	 */
	void *volatile fn_on_stack = ksh_bt_after;

	ksh_bt.nr = stack_trace_save(ksh_bt.entries, KSH_BT_MAX, 0);
	pr_warn("ksh_probe: stack_trace_print begin\n");
	stack_trace_print(ksh_bt.entries, ksh_bt.nr, 0);
	pr_warn("ksh_probe: stack_trace_print end\n");
	pr_warn("ksh_probe: dump_stack begin\n");
	dump_stack();
	/* The fault suite: a warning inside the window must still count. */
	WARN(ksh_fault_is("warn-in-window"), "ksh_probe: fault=warn-in-window requested\n");
	pr_warn("ksh_probe: dump_stack end\n");
	/* Keeps the slot (and its value) until the traces are printed. */
	(void)fn_on_stack;
	kthread_complete_and_exit(&ksh_bt.done, 0);
}

static noinline __section(".text.ksh_probe_bt") int ksh_bt_caller(void *arg)
{
	ksh_bt_capture();
}

static noinline __aligned(64) __section(".text.ksh_probe_bt") int
ksh_bt_after(int x)
{
	return x ^ 0x5a;
}

static int ksh_open(struct inode *inode, struct file *file, enum ksh_mode mode)
{
	struct ksh_session *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return -ENOMEM;
	mutex_init(&s->lock);
	s->mode = mode;
	file->private_data = s;
	return nonseekable_open(inode, file);
}

static int ksh_lookup_open(struct inode *inode, struct file *file)
{
	return ksh_open(inode, file, KSH_LOOKUP);
}

static int ksh_lookup_nops_open(struct inode *inode, struct file *file)
{
	return ksh_open(inode, file, KSH_LOOKUP_NOPS);
}

static int ksh_kprobe_open(struct inode *inode, struct file *file)
{
	return ksh_open(inode, file, KSH_KPROBE);
}

static int ksh_release(struct inode *inode, struct file *file)
{
	struct ksh_session *s = file->private_data;

	kvfree(s->addrs);
	kfree(s);
	return 0;
}

static int ksh_push(struct ksh_session *s, unsigned long a)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		unsigned long *na;

		if (cap > KSH_MAX_ADDRS)
			return -E2BIG;
		na = kvmalloc_array(cap, sizeof(*na), GFP_KERNEL);
		if (!na)
			return -ENOMEM;
		if (s->n)
			memcpy(na, s->addrs, s->n * sizeof(*na));
		kvfree(s->addrs);
		s->addrs = na;
		s->cap = cap;
	}
	s->addrs[s->n++] = a;
	return 0;
}

static int ksh_flush_token(struct ksh_session *s)
{
	unsigned long a;
	int ret;

	if (!s->toklen)
		return 0;
	s->tok[s->toklen] = 0;
	s->toklen = 0;
	ret = kstrtoul(s->tok, 16, &a);
	if (ret)
		return ret;
	return ksh_push(s, a);
}

static ssize_t ksh_addr_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	struct ksh_session *s = file->private_data;
	char chunk[256];
	size_t done = 0;
	int ret = 0;

	mutex_lock(&s->lock);
	if (s->reading) {
		/* A new batch. */
		s->reading = false;
		s->n = 0;
		s->next = 0;
		s->toklen = 0;
		s->line_len = s->line_off = 0;
	}
	while (done < count && !ret) {
		size_t len = min(count - done, sizeof(chunk)), i;

		if (copy_from_user(chunk, ubuf + done, len)) {
			ret = -EFAULT;
			break;
		}
		for (i = 0; i < len && !ret; i++) {
			char c = chunk[i];

			if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ',') {
				ret = ksh_flush_token(s);
			} else if (s->toklen + 1 < sizeof(s->tok)) {
				s->tok[s->toklen++] = c;
			} else {
				ret = -EINVAL;
			}
		}
		done += len;
		cond_resched();
	}
	mutex_unlock(&s->lock);
	return ret ? ret : count;
}

/* Splits sprint_symbol()'s "name+0xoff/0xsize [mod]" into s->line fields. */
static void ksh_format_lookup(struct ksh_session *s, unsigned long a, bool ps)
{
	char *sym = s->sym, *mod = "-", *plus, *slash, *sp;
	unsigned long off = 0, size = 0;
	bool found = false;

	sprint_symbol(sym, a);
	if (ps)
		snprintf(s->ps, sizeof(s->ps), "%pS", (void *)a);
	else
		strscpy(s->ps, "-", sizeof(s->ps));
	sp = strchr(sym, ' ');
	if (sp) {
		*sp = 0;
		mod = sp + 1;
		if (*mod == '[')
			mod++;
		sp = strchr(mod, ']');
		if (sp)
			*sp = 0;
		sp = strchr(mod, ' ');	/* build id, if any */
		if (sp)
			*sp = 0;
	}
	slash = strrchr(sym, '/');
	plus = strrchr(sym, '+');
	if (slash && plus && plus < slash) {
		*slash = 0;
		*plus = 0;
		found = !kstrtoul(plus + 1, 0, &off) && !kstrtoul(slash + 1, 0, &size);
	}
	if (found)
		s->line_len = scnprintf(s->line, sizeof(s->line),
					"%lx 1 %lx %lx %s %s\t%s\n", a, size, off,
					sym, mod, s->ps);
	else
		s->line_len = scnprintf(s->line, sizeof(s->line),
					"%lx 0 - - - -\t%s\n", a, s->ps);
}

static void ksh_format_kprobe(struct ksh_session *s, unsigned long a)
{
	int rc = -EOPNOTSUPP;
#ifdef CONFIG_KPROBES
	/*
	 * Disabled: register_kprobe() makes every check that can refuse the
	 * address before it would arm the probe, and nothing is written into
	 * kernel text (arming one at a past-the-end address of a size-blind
	 * kernel is what the refusal is about).
	 */
	struct kprobe kp = {
		.addr = (kprobe_opcode_t *)a,
		.flags = KPROBE_FLAG_DISABLED,
	};

	rc = register_kprobe(&kp);
	if (!rc)
		unregister_kprobe(&kp);
#endif
	s->line_len = scnprintf(s->line, sizeof(s->line), "%lx %d\n", a, rc);
}

static ssize_t ksh_addr_read(struct file *file, char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	struct ksh_session *s = file->private_data;
	size_t done = 0;
	int ret = 0;

	mutex_lock(&s->lock);
	if (!s->reading) {
		ret = ksh_flush_token(s);
		s->reading = true;
	}
	while (!ret && done < count) {
		size_t len;

		if (s->line_off == s->line_len) {
			if (s->next == s->n)
				break;
			s->line_off = 0;
			if (s->mode != KSH_KPROBE)
				ksh_format_lookup(s, s->addrs[s->next],
						  s->mode == KSH_LOOKUP);
			else
				ksh_format_kprobe(s, s->addrs[s->next]);
			s->next++;
			if (!(s->next & 63))
				cond_resched();
		}
		len = min(count - done, s->line_len - s->line_off);
		if (copy_to_user(ubuf + done, s->line + s->line_off, len)) {
			ret = -EFAULT;
			break;
		}
		s->line_off += len;
		done += len;
	}
	mutex_unlock(&s->lock);
	if (ret && !done)
		return ret;
	*ppos += done;
	return done;
}

/*
 * The files that answer one address per line (lookup, lookup_nops,
 * kprobe): they differ only in how an open sets up the answer.
 */
#define KSH_ADDR_FOPS(name, open_fn)				\
	static const struct file_operations name = {		\
		.owner = THIS_MODULE,				\
		.open = open_fn,				\
		.release = ksh_release,				\
		.write = ksh_addr_write,			\
		.read = ksh_addr_read,				\
	}

KSH_ADDR_FOPS(ksh_lookup_fops, ksh_lookup_open);
KSH_ADDR_FOPS(ksh_lookup_nops_fops, ksh_lookup_nops_open);
KSH_ADDR_FOPS(ksh_kprobe_fops, ksh_kprobe_open);

/*
 * check: the record layout of ksh_proto::check (native endianness, 8-byte
 * aligned): the fixed part, then names_len bytes of NUL-terminated names
 * (any of them is accepted; none = any name), padded to 8 bytes.
 */
struct ksh_check_rec {
	u64 addr;
	u64 want_offset;	/* KSH_CHECK_ANY: any */
	u64 want_size;		/* KSH_CHECK_ANY: any */
	u32 id;
	u16 flags;
	u16 names_len;
};

#define KSH_CHECK_MAGIC		"KSHCHK01"
#define KSH_CHECK_HEADER	16	/* magic, u64 address offset */
#define KSH_TIME_MAGIC		"KSHTIM01"
#define KSH_TIME_HEADER		24	/* magic, u64 offset, u64 rounds */
#define KSH_TIME_MAX_ROUNDS	64
#define KSH_CHECK_ANY		(~0ULL)
#define KSH_CHECK_FOUND		1	/* want a symbol (else: want none) */
#define KSH_CHECK_MAX_IN	(256UL << 20)

struct ksh_check_session {
	struct mutex lock;
	char *in, *out;
	size_t in_len, in_cap, out_len, out_cap;
	bool ran;
	int err;	/* of the run, returned by every read */
	char sym[KSYM_SYMBOL_LEN];
};

static int ksh_check_open(struct inode *inode, struct file *file)
{
	struct ksh_check_session *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return -ENOMEM;
	mutex_init(&s->lock);
	file->private_data = s;
	return nonseekable_open(inode, file);
}

static int ksh_check_release(struct inode *inode, struct file *file)
{
	struct ksh_check_session *s = file->private_data;

	kvfree(s->in);
	kvfree(s->out);
	kfree(s);
	return 0;
}

/* Grows *buf (kvmalloc'd, *cap bytes) to hold at least @need bytes. */
static int ksh_grow(char **buf, size_t *cap, size_t used, size_t need)
{
	size_t ncap = *cap ? *cap : 65536;
	char *nb;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	if (ncap > KSH_CHECK_MAX_IN)
		return -E2BIG;
	nb = kvmalloc(ncap, GFP_KERNEL);
	if (!nb)
		return -ENOMEM;
	if (used)
		memcpy(nb, *buf, used);
	kvfree(*buf);
	*buf = nb;
	*cap = ncap;
	return 0;
}

static ssize_t ksh_check_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct ksh_check_session *s = file->private_data;
	int ret;

	mutex_lock(&s->lock);
	ret = s->ran ? -EBUSY : ksh_grow(&s->in, &s->in_cap, s->in_len,
					 s->in_len + count);
	if (!ret && copy_from_user(s->in + s->in_len, ubuf, count))
		ret = -EFAULT;
	if (!ret)
		s->in_len += count;
	mutex_unlock(&s->lock);
	return ret ? ret : count;
}

/*
 * Splits sprint_symbol()'s "name+0xoff/0xsize [mod buildid]" in place.
 * Returns whether a symbol was found; *name and *mod point into @sym.
 */
static bool ksh_parse_sym(char *sym, char **name, char **mod,
			  unsigned long *off, unsigned long *size)
{
	char *plus, *slash, *sp;

	*name = sym;
	*mod = "-";
	*off = *size = 0;
	sp = strchr(sym, ' ');
	if (sp) {
		*sp = 0;
		*mod = sp + 1;
		if (**mod == '[')
			(*mod)++;
		sp = strchr(*mod, ']');
		if (sp)
			*sp = 0;
		sp = strchr(*mod, ' ');	/* build id, if any */
		if (sp)
			*sp = 0;
	}
	slash = strrchr(sym, '/');
	plus = strrchr(sym, '+');
	if (!slash || !plus || plus > slash)
		return false;
	*slash = 0;
	*plus = 0;
	return !kstrtoul(plus + 1, 0, off) && !kstrtoul(slash + 1, 0, size);
}

static bool ksh_name_accepted(const char *name, const char *names, size_t len)
{
	size_t i = 0;

	if (!len)
		return true;
	while (i < len && names[i]) {
		if (!strcmp(name, names + i))
			return true;
		i += strnlen(names + i, len - i) + 1;
	}
	return false;
}

/* Times @rounds lookups of every record's address (KSHTIM01 sessions). */
static int ksh_time_run(struct ksh_check_session *s)
{
	size_t pos, n = 0, len;
	u64 offset, rounds, r, t0, total = 0;
	int ret;

	if (s->in_len < KSH_TIME_HEADER)
		return -EINVAL;
	memcpy(&offset, s->in + 8, sizeof(offset));
	memcpy(&rounds, s->in + 16, sizeof(rounds));
	if (!rounds || rounds > KSH_TIME_MAX_ROUNDS)
		return -EINVAL;
	ret = ksh_grow(&s->out, &s->out_cap, 0, 128 + rounds * 24);
	if (ret)
		return ret;
	len = scnprintf(s->out, s->out_cap, "round_ns=");
	for (r = 0; r < rounds; r++) {
		t0 = ktime_get_ns();
		n = 0;
		for (pos = KSH_TIME_HEADER; pos < s->in_len;) {
			const struct ksh_check_rec *rec = (const void *)(s->in + pos);

			if (s->in_len - pos < sizeof(*rec) ||
			    s->in_len - pos - sizeof(*rec) < rec->names_len)
				return -EINVAL;
			pos += ALIGN(sizeof(*rec) + rec->names_len, 8);
			sprint_symbol(s->sym, rec->addr + offset);
			if (!(++n & 255))
				cond_resched();
		}
		t0 = ktime_get_ns() - t0;
		total += t0;
		len += scnprintf(s->out + len, s->out_cap - len, "%s%llu",
				 r ? "," : "", t0);
	}
	s->out_len = len + scnprintf(s->out + len, s->out_cap - len,
				     "\nend checked=%zu mismatched=0 ns=%llu\n",
				     n, total);
	return 0;
}

/* Runs every record; s->out gets the mismatches and the end line. */
static int ksh_check_run(struct ksh_check_session *s)
{
	size_t pos = KSH_CHECK_HEADER, checked = 0, mismatched = 0;
	u64 t0 = ktime_get_ns(), offset;
	int ret;

	if (s->in_len >= 8 && !memcmp(s->in, KSH_TIME_MAGIC, 8))
		return ksh_time_run(s);
	if (s->in_len < KSH_CHECK_HEADER ||
	    memcmp(s->in, KSH_CHECK_MAGIC, 8))
		return -EINVAL;
	memcpy(&offset, s->in + 8, sizeof(offset));
	while (pos < s->in_len) {
		const struct ksh_check_rec *r = (const void *)(s->in + pos);
		const char *names = s->in + pos + sizeof(*r);
		unsigned long off, size;
		char *name, *mod;
		bool found, ok;
		u64 addr;

		if (s->in_len - pos < sizeof(*r) ||
		    s->in_len - pos - sizeof(*r) < r->names_len)
			return -EINVAL;
		pos += ALIGN(sizeof(*r) + r->names_len, 8);
		addr = r->addr + offset;
		sprint_symbol(s->sym, addr);
		found = ksh_parse_sym(s->sym, &name, &mod, &off, &size);
		if (r->flags & KSH_CHECK_FOUND)
			ok = found &&
			     (r->want_offset == KSH_CHECK_ANY || off == r->want_offset) &&
			     (r->want_size == KSH_CHECK_ANY || size == r->want_size) &&
			     ksh_name_accepted(name, names, r->names_len);
		else
			ok = !found;
		checked++;
		if (!ok) {
			mismatched++;
			ret = ksh_grow(&s->out, &s->out_cap, s->out_len,
				       s->out_len + KSYM_SYMBOL_LEN + 96);
			if (ret)
				return ret;
			if (found)
				s->out_len += scnprintf(s->out + s->out_len,
					KSYM_SYMBOL_LEN + 96,
					"%u %llx 1 %lx %lx %s %s\n", r->id,
					addr, size, off, name, mod);
			else
				s->out_len += scnprintf(s->out + s->out_len,
					KSYM_SYMBOL_LEN + 96,
					"%u %llx 0 - - - -\n", r->id, addr);
		}
		if (!(checked & 255))
			cond_resched();
	}
	ret = ksh_grow(&s->out, &s->out_cap, s->out_len, s->out_len + 96);
	if (ret)
		return ret;
	s->out_len += scnprintf(s->out + s->out_len, 96,
				"end checked=%zu mismatched=%zu ns=%llu\n",
				checked, mismatched, ktime_get_ns() - t0);
	return 0;
}

static ssize_t ksh_check_read(struct file *file, char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	struct ksh_check_session *s = file->private_data;
	ssize_t ret = 0;

	mutex_lock(&s->lock);
	if (!s->ran) {
		s->ran = true;
		s->err = ksh_check_run(s);
	}
	ret = s->err;
	if (!ret)
		ret = simple_read_from_buffer(ubuf, count, ppos, s->out,
					      s->out_len);
	mutex_unlock(&s->lock);
	return ret;
}

static const struct file_operations ksh_check_fops = {
	.owner = THIS_MODULE,
	.open = ksh_check_open,
	.release = ksh_check_release,
	.write = ksh_check_write,
	.read = ksh_check_read,
};

/* bench: one result per module instance is enough. */
static DEFINE_MUTEX(ksh_bench_lock);
static char ksh_bench_result[128];
static char ksh_bench_buf[KSYM_SYMBOL_LEN];

static u64 ksh_xorshift(u64 *st)
{
	u64 x = *st;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*st = x;
	return x;
}

static ssize_t ksh_bench_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	char in[96];
	unsigned long n, lo, hi, i;
	u64 st, t0, t1, t2;
	size_t len = min(count, sizeof(in) - 1);

	if (copy_from_user(in, ubuf, len))
		return -EFAULT;
	in[len] = 0;
	if (sscanf(in, "%lu %lx %lx", &n, &lo, &hi) != 3 || !n || hi <= lo ||
	    n > 100000000UL)
		return -EINVAL;
	mutex_lock(&ksh_bench_lock);
	st = 0x9e3779b97f4a7c15ULL;
	t0 = ktime_get_ns();
	for (i = 0; i < n; i++) {
		sprint_symbol(ksh_bench_buf, lo + ksh_xorshift(&st) % (hi - lo));
		if (!(i & 1023))
			cond_resched();
	}
	t1 = ktime_get_ns();
	st = 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < n; i++) {
		snprintf(ksh_bench_buf, sizeof(ksh_bench_buf), "%pS",
			 (void *)(lo + ksh_xorshift(&st) % (hi - lo)));
		if (!(i & 1023))
			cond_resched();
	}
	t2 = ktime_get_ns();
	scnprintf(ksh_bench_result, sizeof(ksh_bench_result),
		  "n=%lu lookup_ns=%llu ps_ns=%llu\n", n, div64_u64(t1 - t0, n),
		  div64_u64(t2 - t1, n));
	mutex_unlock(&ksh_bench_lock);
	return count;
}

static ssize_t ksh_bench_read(struct file *file, char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	ssize_t r;

	mutex_lock(&ksh_bench_lock);
	r = simple_read_from_buffer(ubuf, count, ppos, ksh_bench_result,
				    strlen(ksh_bench_result));
	mutex_unlock(&ksh_bench_lock);
	return r;
}

static const struct file_operations ksh_bench_fops = {
	.owner = THIS_MODULE,
	.write = ksh_bench_write,
	.read = ksh_bench_read,
	.llseek = default_llseek,
};

/* The answer of one open of "backtrace": the fixture runs at open. */
struct ksh_bt_text {
	size_t len;
	char buf[];
};

static int ksh_backtrace_open(struct inode *inode, struct file *file)
{
	size_t cap = KSH_BT_MAX * (2 * KSYM_SYMBOL_LEN + 24);
	struct ksh_bt_text *t;
	struct task_struct *task;
	unsigned int i;
	int ret = 0;

	t = kvmalloc(sizeof(*t) + cap, GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	t->len = 0;
	mutex_lock(&ksh_bt_lock);
	init_completion(&ksh_bt.done);
	ksh_bt.nr = 0;
	task = kthread_run(ksh_bt_caller, NULL, "ksh_bt");
	if (IS_ERR(task))
		ret = PTR_ERR(task);
	else if (!wait_for_completion_timeout(&ksh_bt.done, 30 * HZ))
		ret = -ETIMEDOUT;
	for (i = 0; !ret && i < ksh_bt.nr; i++) {
		void *a = (void *)ksh_bt.entries[i];

		t->len += scnprintf(t->buf + t->len, cap - t->len,
				    "%lx\t%pB\t%pBb\n", ksh_bt.entries[i], a, a);
	}
	mutex_unlock(&ksh_bt_lock);
	if (ret) {
		kvfree(t);
		return ret;
	}
	file->private_data = t;
	return 0;
}

static ssize_t ksh_backtrace_read(struct file *file, char __user *ubuf,
				  size_t count, loff_t *ppos)
{
	struct ksh_bt_text *t = file->private_data;

	return simple_read_from_buffer(ubuf, count, ppos, t->buf, t->len);
}

static int ksh_backtrace_release(struct inode *inode, struct file *file)
{
	kvfree(file->private_data);
	return 0;
}

static const struct file_operations ksh_backtrace_fops = {
	.owner = THIS_MODULE,
	.open = ksh_backtrace_open,
	.read = ksh_backtrace_read,
	.release = ksh_backtrace_release,
	.llseek = default_llseek,
};

static ssize_t ksh_features_read(struct file *file, char __user *ubuf,
				 size_t count, loff_t *ppos)
{
	char buf[640];
	int len;

	/*
	 * Addresses the linker resolved, not kallsyms: the probes check the
	 * module's kallsyms entries and lookups against them.
	 */
	len = scnprintf(buf, sizeof(buf),
			"kprobes=%d\nksh_probe_small=%lx\nksh_probe_aligned=%lx\nksh_probe_target=%lx\nksh_probe_kp_small=%lx\nksh_probe_kp_aligned=%lx\nksh_bt_caller=%lx\nksh_bt_after=%lx\nanchor_printk=%lx\n",
			IS_ENABLED(CONFIG_KPROBES),
			(unsigned long)ksh_probe_small,
			(unsigned long)ksh_probe_aligned,
			(unsigned long)ksh_probe_target,
			(unsigned long)ksh_probe_kp_small,
			(unsigned long)ksh_probe_kp_aligned,
			(unsigned long)ksh_bt_caller,
			(unsigned long)ksh_bt_after,
			(unsigned long)_printk);
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static const struct file_operations ksh_features_fops = {
	.owner = THIS_MODULE,
	.read = ksh_features_read,
	.llseek = default_llseek,
};

static struct dentry *ksh_dir;


/* Calls @fn through a pointer the compiler cannot see through. */
static int ksh_call(int (*fn)(int), int x)
{
	int (*volatile p)(int) = fn;

	return p(x);
}

static int __init ksh_probe_init(void)
{
	if (ksh_fault_is("panic"))
		panic("ksh_probe: fault=panic requested");
	WARN(ksh_fault_is("warn"), "ksh_probe: fault=warn requested\n");
	if (ksh_fault_is("hang")) {
		pr_warn("ksh_probe: fault=hang requested: init never returns\n");
		for (;;)
			msleep_interruptible(1000);
	}
	ksh_dir = debugfs_create_dir("ksh_probe", NULL);
	if (IS_ERR(ksh_dir))
		return PTR_ERR(ksh_dir);
	debugfs_create_file("lookup", 0600, ksh_dir, NULL, &ksh_lookup_fops);
	debugfs_create_file("lookup-nops", 0600, ksh_dir, NULL,
			    &ksh_lookup_nops_fops);
	debugfs_create_file("check", 0600, ksh_dir, NULL, &ksh_check_fops);
	debugfs_create_file("bench", 0600, ksh_dir, NULL, &ksh_bench_fops);
	debugfs_create_file("features", 0400, ksh_dir, NULL, &ksh_features_fops);
	debugfs_create_file("backtrace", 0400, ksh_dir, NULL,
			    &ksh_backtrace_fops);
	if (IS_ENABLED(CONFIG_KPROBES))
		debugfs_create_file("kprobe", 0600, ksh_dir, NULL, &ksh_kprobe_fops);
	/* Keep the functions referenced (and callable). */
	pr_info("ksh_probe: loaded (%d)\n", ksh_probe_target(0) - 1 +
		ksh_call(ksh_probe_kp_small, 1) +
		ksh_call(ksh_probe_kp_aligned, 2) + ksh_call(ksh_bt_after, 3));
	return 0;
}

static void __exit ksh_probe_exit(void)
{
	debugfs_remove_recursive(ksh_dir);
}

module_init(ksh_probe_init);
module_exit(ksh_probe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kallsyms lookups through debugfs for the ksh test harness");
