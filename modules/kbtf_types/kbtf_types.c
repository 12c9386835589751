// SPDX-License-Identifier: GPL-2.0
/*
 * kbtf_types: a module whose own types point at many vmlinux types.
 *
 * Exercises: BTF relocation. Its split BTF refers to task_struct, sk_buff,
 * list_head, file, inode, mm_struct, ... by vmlinux BTF id. Built against
 * kernel A and loaded into kernel A' (more vmlinux types, shifted ids), the
 * distilled variant (.BTF.base) must be relocated so that, in A', the member
 * `task` still names `struct task_struct`; the split-only variant cannot be.
 */
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/workqueue.h>

struct kbtf_types_state {
	struct task_struct *task;
	struct sk_buff *skb;
	struct list_head node;
	struct file *file;
	struct inode *inode;
	struct mm_struct *mm;
	struct work_struct work;
	struct module *owner;
	u64 counter;
};

static struct kbtf_types_state kbtf_types_state;

/* Uses the struct in a function so pahole keeps it in the module's BTF. */
noinline u64 kbtf_types_touch(struct kbtf_types_state *state)
{
	state->task = current;
	state->owner = THIS_MODULE;
	return ++state->counter;
}

static int __init kbtf_types_init(void)
{
	INIT_LIST_HEAD(&kbtf_types_state.node);
	kbtf_types_touch(&kbtf_types_state);
	return 0;
}

static void __exit kbtf_types_exit(void)
{
}

module_init(kbtf_types_init);
module_exit(kbtf_types_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kbtf: module types that refer to vmlinux types");
