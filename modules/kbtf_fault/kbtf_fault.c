// SPDX-License-Identifier: GPL-2.0
/*
 * kbtf_fault: a module that misbehaves on purpose, to see kbtf blame the kernel.
 *
 * Used only by `--sabotage warn-on-load`, `oops-on-load` and `hang-on-load`, which load it
 * after kbtf_hello: mode=warn fires WARN_ON(1) in its init (the kernel goes on, the test
 * during which it happened must fail quoting the WARNING), mode=oops dereferences NULL
 * (the guest panics: oops=panic; the test fails and the guest is booted again), mode=hang
 * sleeps uninterruptibly forever (insmod never returns: the hung-task detector reports it,
 * and the test fails quoting that report).
 */
#include <linux/bug.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/string.h>

static char *mode = "warn";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "warn: WARN_ON(1) at load; oops: NULL dereference at load; "
		 "hang: sleep uninterruptibly forever at load");

static int __init kbtf_fault_init(void)
{
	if (strcmp(mode, "hang") == 0) {
		pr_info("kbtf_fault: sleeping uninterruptibly forever\n");
		for (;;) {
			set_current_state(TASK_UNINTERRUPTIBLE);
			schedule();
		}
	}
	if (strcmp(mode, "oops") == 0) {
		int *volatile nowhere = NULL;

		pr_info("kbtf_fault: dereferencing NULL\n");
		return *nowhere;
	}
	pr_info("kbtf_fault: firing WARN_ON(1)\n");
	WARN_ON(1);
	return 0;
}

static void __exit kbtf_fault_exit(void)
{
}

module_init(kbtf_fault_init);
module_exit(kbtf_fault_exit);
MODULE_DESCRIPTION("kbtf: a module that warns, oopses or hangs when loaded (sabotage only)");
MODULE_LICENSE("GPL");
