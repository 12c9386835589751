// SPDX-License-Identifier: GPL-2.0
/*
 * kbtf_kheaders: built inside the guest against the running kernel's own headers
 * (/sys/kernel/kheaders.tar.xz), like the kheaders selftest's test module.
 *
 * Exercises: the archive's headers build a module that loads (its vermagic comes from
 * the archive's utsrelease.h and autoconf.h), and they describe the running kernel's
 * struct task_struct: init reads current->pid and current->comm through the archive's
 * layout and logs them, so the suite can compare them with the real insmod process.
 * Its struct points at vmlinux types, so the module's BTF has something to resolve.
 */
#include <linux/list.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/sched.h>

struct kbtf_kheaders_state {
	struct task_struct *loader;
	struct list_head node;
	pid_t pid;
};

static struct kbtf_kheaders_state kbtf_kheaders_state;

static int __init kbtf_kheaders_init(void)
{
	kbtf_kheaders_state.loader = current;
	kbtf_kheaders_state.pid = current->pid;
	INIT_LIST_HEAD(&kbtf_kheaders_state.node);
	pr_info("kbtf_kheaders: loaded by %s[%d]\n", current->comm, kbtf_kheaders_state.pid);
	return 0;
}

static void __exit kbtf_kheaders_exit(void)
{
}

module_init(kbtf_kheaders_init);
module_exit(kbtf_kheaders_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kbtf: a module built against /sys/kernel/kheaders.tar.xz");
