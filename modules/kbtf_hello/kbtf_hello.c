// SPDX-License-Identifier: GPL-2.0
/*
 * kbtf_hello: the smallest module with something to trace.
 *
 * Exercises: module BTF (.BTF / .BTF.base) for a module-local struct and a
 * noinline function, and a userspace trigger for kprobes and fentry:
 * writing a decimal number to /proc/kbtf_hello calls kbtf_hello_poke(value)
 * once. Reading the file prints how many times it was called.
 */
#include <linux/kernel.h>
#include <linux/kstrtox.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

/* A module-local type whose members point at vmlinux types. */
struct kbtf_hello_state {
	struct task_struct *last_caller;
	int last_value;
	unsigned long calls;
};

static struct kbtf_hello_state kbtf_hello_state;

/* The probe target: noinline so it stays a real, traceable function. */
int kbtf_hello_poke(int value); /* exported: declared for -Wmissing-prototypes */
noinline int kbtf_hello_poke(int value)
{
	kbtf_hello_state.last_caller = current;
	kbtf_hello_state.last_value = value;
	kbtf_hello_state.calls++;
	return value + 1;
}
EXPORT_SYMBOL_GPL(kbtf_hello_poke);

static ssize_t kbtf_hello_write(struct file *file, const char __user *buf,
				size_t len, loff_t *ppos)
{
	int value, err;

	err = kstrtoint_from_user(buf, len, 10, &value);
	if (err)
		return err;
	kbtf_hello_poke(value);
	return len;
}

static int kbtf_hello_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%lu\n", kbtf_hello_state.calls);
	return 0;
}

static int kbtf_hello_open(struct inode *inode, struct file *file)
{
	return single_open(file, kbtf_hello_show, NULL);
}

static const struct proc_ops kbtf_hello_ops = {
	.proc_open = kbtf_hello_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = kbtf_hello_write,
};

static int __init kbtf_hello_init(void)
{
	if (!proc_create("kbtf_hello", 0600, NULL, &kbtf_hello_ops))
		return -ENOMEM;
	return 0;
}

static void __exit kbtf_hello_exit(void)
{
	remove_proc_entry("kbtf_hello", NULL);
}

module_init(kbtf_hello_init);
module_exit(kbtf_hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kbtf: module BTF and probe target");
