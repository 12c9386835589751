// SPDX-License-Identifier: GPL-2.0
/*
 * kbtf_fault: a module that misbehaves on purpose, to see kbtf blame the kernel.
 *
 * Used only by `--sabotage warn-on-load`, `oops-on-load` and `hang-on-load`, which load it
 * after kbtf_hello: mode=warn fires WARN_ON(1) in its init (the kernel goes on, the test
 * during which it happened must fail quoting the WARNING), mode=oops dereferences NULL
 * (the guest panics: oops=panic; the test fails and the guest is booted again), mode=hang
 * sleeps uninterruptibly forever (insmod never returns: the hung-task detector reports it,
 * and the test fails quoting that report), mode=poweroff fires WARN_ON(1) from a reboot
 * notifier, while the guest powers off (its point's shutdown test fails quoting it).
 */
#include <linux/bug.h>
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/string.h>

static char *mode = "warn";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "warn: WARN_ON(1) at load; oops: NULL dereference at load; "
		 "hang: sleep uninterruptibly forever at load; poweroff: WARN_ON(1) at power-off");

static int kbtf_fault_reboot(struct notifier_block *nb, unsigned long action, void *data)
{
	pr_info("kbtf_fault: firing WARN_ON(1) at power-off\n");
	WARN_ON(1);
	return NOTIFY_DONE;
}

static struct notifier_block kbtf_fault_nb = {
	.notifier_call = kbtf_fault_reboot,
};

static int __init kbtf_fault_init(void)
{
	if (strcmp(mode, "poweroff") == 0)
		return register_reboot_notifier(&kbtf_fault_nb);
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
	if (strcmp(mode, "poweroff") == 0)
		unregister_reboot_notifier(&kbtf_fault_nb);
}

module_init(kbtf_fault_init);
module_exit(kbtf_fault_exit);
MODULE_DESCRIPTION("kbtf: a module that warns, oopses or hangs when loaded (sabotage only)");
MODULE_LICENSE("GPL");
