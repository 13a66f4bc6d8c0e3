// SPDX-License-Identifier: GPL-2.0
/*
 * besser-lock-plant: a test-only module that plants the lock-order bug the
 * maintainers found in the C driver (DOMAIN.md: pending_record_lock), so
 * the lab can show that its report catches one. Never loaded at boot; the
 * lab loads it during a ramp rep on a prove-locking image.
 *
 * The shape: lock S is taken in softirq context (a timer), which makes it
 * SOFTIRQ-safe; lock U is taken with softirqs enabled, which makes it
 * SOFTIRQ-unsafe; then U is taken while S is held. Lockdep reports
 * "SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected" (kernel/locking/
 * lockdep.c, check_irq_usage()): a softirq that takes S can interrupt a
 * holder of U on the same CPU while S's holder waits for U.
 */

#include <linux/completion.h>
#include <linux/module.h>
#include <linux/spinlock.h>
#include <linux/timer.h>

static DEFINE_SPINLOCK(plant_pending_record_lock); /* S: SOFTIRQ-safe */
static DEFINE_SPINLOCK(plant_queue_lock); /* U: SOFTIRQ-unsafe */
static struct timer_list plant_timer;
static DECLARE_COMPLETION(plant_fired);

static void plant_timer_fn(struct timer_list *t)
{
	spin_lock(&plant_pending_record_lock);
	spin_unlock(&plant_pending_record_lock);
	complete(&plant_fired);
}

static int __init plant_init(void)
{
	timer_setup(&plant_timer, plant_timer_fn, 0);
	mod_timer(&plant_timer, jiffies + 1);
	wait_for_completion(&plant_fired);
	del_timer_sync(&plant_timer);

	spin_lock(&plant_queue_lock);
	spin_unlock(&plant_queue_lock);

	spin_lock_bh(&plant_pending_record_lock);
	spin_lock(&plant_queue_lock);
	spin_unlock(&plant_queue_lock);
	spin_unlock_bh(&plant_pending_record_lock);
	pr_info("besser-lock-plant: SOFTIRQ-safe -> SOFTIRQ-unsafe order planted\n");
	return 0;
}

static void __exit plant_exit(void)
{
}

module_init(plant_init);
module_exit(plant_exit);
MODULE_DESCRIPTION("besser: plants a SOFTIRQ-safe -> SOFTIRQ-unsafe lock inversion (test only)");
MODULE_LICENSE("GPL");
