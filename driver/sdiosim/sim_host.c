// SPDX-License-Identifier: GPL-2.0
/*
 * besser-sdio-sim: a test-only MMC host controller with one SDIO card in
 * it, for QEMU, which has no SDIO. The real MMC core enumerates the card
 * (CMD0, CMD5, CMD3, CMD7, CCCR and CIS over CMD52) exactly as it does a
 * PineTab2's BES2600 behind dw-mshc, so the bes2600 driver is probed through
 * sdio_register_driver() and its id table, with no private seam.
 *
 * Function 0 (CCCR, FBR, CIS) is emulated here; function 1 is the chip
 * model of driver/sim (sim_chip.rs), called with this host's mutex held.
 * The card advertises vendor 0xbe57, device 0x2002 (bes2600's sdio ids,
 * cringeops/bes2600 bes2600_sdio.c, SDIO_VENDOR_ID_BES2600/SDIO_DEVICE_ID_BES2600).
 *
 * The AP's wired side is a network device, besserap0: what the bridge
 * (or anyone) sends on it goes on the simulated air to the station, and
 * the station's data frames come out of it as Ethernet, so a bridge with
 * the VM's data NIC carries host traffic to the driver's wlan0.
 *
 * Layouts follow the SDIO Simplified Specification as the MMC core reads
 * them: drivers/mmc/core/sdio.c (sdio_read_cccr), sdio_cis.c (tuples,
 * cistpl_funce_common/func), sdio_ops.c (CMD5, CMD52, CMD53 arguments).
 */

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/etherdevice.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/mmc/card.h>
#include <linux/mmc/host.h>
#include <linux/mmc/mmc.h>
#include <linux/mmc/sd.h>
#include <linux/mmc/sdio.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/platform_device.h>
#include <linux/scatterlist.h>
#include <linux/seq_file.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

/* sim_chip.rs */
void *besser_chip_new(void);
void besser_chip_free(void *chip);
int besser_chip_readb(void *chip, u32 addr, u8 *out);
int besser_chip_writeb(void *chip, u32 addr, u8 val);
int besser_chip_cmd53(void *chip, u32 arg, u8 *buf, size_t len);
void besser_chip_tick(void *chip, u64 now_ms);
bool besser_chip_take_irq(void *chip);
size_t besser_chip_stats(void *chip, u8 *buf, size_t cap);
void besser_chip_set_ap_privacy(void *chip, bool on);
bool besser_chip_offer_eth(void *chip, const u8 *buf, size_t len);
size_t besser_chip_take_eth(void *chip, u8 *buf, size_t cap);
int besser_chip_fault(void *chip, const u8 *buf, size_t len);

#define SIM_VENDOR 0xbe57
#define SIM_DEVICE 0x2002
#define SIM_RCA 0x0001
#define SIM_OCR (MMC_VDD_32_33 | MMC_VDD_33_34)
#define SIM_FUNCS 1
#define SIM_BLKSZ_MAX 512
#define SIM_COUNT_MAX 511 /* CMD53's 9-bit block count */
#define SIM_XFER_MAX (SIM_BLKSZ_MAX * SIM_COUNT_MAX)
#define SIM_TICK_MS 20
#define SIM_ETH_MAX 1518 /* chip.rs WIRED_LEN */
#define SIM_WIRE_QLEN 128 /* frames waiting for the air before besserap0 stops */
/* CIS tuple codes (SDIO spec; the MMC core's private drivers/mmc/core/sdio_cis.c). */
#define CISTPL_MANFID 0x20
#define CISTPL_FUNCE 0x22
#define COMMON_CIS 0x1000
#define FUNC1_CIS 0x1100

static unsigned int tick_ms = SIM_TICK_MS;
module_param(tick_ms, uint, 0444);
MODULE_PARM_DESC(tick_ms, "chip model clock period in ms (beacons, timed faults)");

struct sim_host {
	struct mmc_host *mmc;
	struct platform_device *pdev;
	struct mutex lock; /* the chip and the CCCR state below */
	void *chip;
	unsigned long t0;
	u8 ioe, ien, bus_if;
	u16 blksz[SIM_FUNCS + 1];
	u8 *bounce;
	struct dentry *debugfs;
	struct delayed_work tick;
	spinlock_t irq_lock; /* the two flags below: enable_sdio_irq may not sleep */
	bool irq_enabled;
	bool irq_latched;
	struct net_device *ap_dev; /* besserap0, the AP's wired side */
	struct sk_buff_head wire_q; /* from besserap0, waiting for room on air */
	struct work_struct air_work;
	u8 *eth_buf; /* one Ethernet frame off the air, under lock */
};

/* Common CIS: MANFID, FUNCE (function 0: max block size, 25 MHz), END. */
static const u8 common_cis[] = {
	CISTPL_MANFID, 4, SIM_VENDOR & 0xff, SIM_VENDOR >> 8, SIM_DEVICE & 0xff, SIM_DEVICE >> 8,
	CISTPL_FUNCE, 4, 0x00, SIM_BLKSZ_MAX & 0xff, SIM_BLKSZ_MAX >> 8, 0x32,
	0xff,
};

/*
 * Function 1 CIS: MANFID and a 42-byte function FUNCE (SDIO >= 1.10):
 * byte 0 = 1 (function), 12-13 max block size, 28-29 enable timeout in
 * 10 ms units (cistpl_funce_func()).
 */
static const u8 func1_cis[] = {
	CISTPL_MANFID, 4, SIM_VENDOR & 0xff, SIM_VENDOR >> 8, SIM_DEVICE & 0xff, SIM_DEVICE >> 8,
	CISTPL_FUNCE, 42,
	0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, SIM_BLKSZ_MAX & 0xff, SIM_BLKSZ_MAX >> 8,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0xff,
};

static void sim_check_irq(struct sim_host *h);

/* Station frames the AP bridged off the air go out of besserap0. */
static void sim_wire_up(struct sim_host *h)
{
	struct net_device *dev = h->ap_dev;
	struct sk_buff_head q;
	struct sk_buff *skb;
	size_t n;

	__skb_queue_head_init(&q);
	mutex_lock(&h->lock);
	while ((n = besser_chip_take_eth(h->chip, h->eth_buf, SIM_ETH_MAX))) {
		skb = netdev_alloc_skb(dev, n + NET_IP_ALIGN);
		if (!skb) {
			DEV_STATS_INC(dev, rx_dropped);
			continue;
		}
		skb_reserve(skb, NET_IP_ALIGN);
		skb_put_data(skb, h->eth_buf, n);
		__skb_queue_tail(&q, skb);
	}
	mutex_unlock(&h->lock);
	while ((skb = __skb_dequeue(&q))) {
		if (!netif_running(dev)) {
			DEV_STATS_INC(dev, rx_dropped);
			kfree_skb(skb);
			continue;
		}
		DEV_STATS_INC(dev, rx_packets);
		DEV_STATS_ADD(dev, rx_bytes, skb->len);
		skb->protocol = eth_type_trans(skb, dev);
		netif_rx(skb);
	}
}

/* Frames sent on besserap0 go on air while the chip has room. */
static void sim_air(struct work_struct *work)
{
	struct sim_host *h = container_of(work, struct sim_host, air_work);
	struct net_device *dev = h->ap_dev;
	struct sk_buff *skb;
	bool sent = false;
	bool ok;

	while ((skb = skb_dequeue(&h->wire_q))) {
		if (skb->len > SIM_ETH_MAX || skb_linearize(skb)) {
			DEV_STATS_INC(dev, tx_dropped);
			kfree_skb(skb);
			continue;
		}
		mutex_lock(&h->lock);
		ok = besser_chip_offer_eth(h->chip, skb->data, skb->len);
		mutex_unlock(&h->lock);
		if (!ok) {
			/* Outbox full: again after the host's next read. */
			skb_queue_head(&h->wire_q, skb);
			break;
		}
		DEV_STATS_INC(dev, tx_packets);
		DEV_STATS_ADD(dev, tx_bytes, skb->len);
		consume_skb(skb);
		sent = true;
	}
	if (netif_queue_stopped(dev) && skb_queue_len(&h->wire_q) < SIM_WIRE_QLEN / 2)
		netif_wake_queue(dev);
	if (sent)
		sim_check_irq(h);
}

static netdev_tx_t sim_ap_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct sim_host *h = *(struct sim_host **)netdev_priv(dev);

	skb_queue_tail(&h->wire_q, skb);
	if (skb_queue_len(&h->wire_q) >= SIM_WIRE_QLEN)
		netif_stop_queue(dev);
	queue_work(system_wq, &h->air_work);
	return NETDEV_TX_OK;
}

static int sim_ap_open(struct net_device *dev)
{
	netif_start_queue(dev);
	return 0;
}

static int sim_ap_stop(struct net_device *dev)
{
	netif_stop_queue(dev);
	return 0;
}

static const struct net_device_ops sim_ap_ops = {
	.ndo_open = sim_ap_open,
	.ndo_stop = sim_ap_stop,
	.ndo_start_xmit = sim_ap_xmit,
	.ndo_set_mac_address = eth_mac_addr,
	.ndo_validate_addr = eth_validate_addr,
};

static u64 sim_now_ms(struct sim_host *h)
{
	return jiffies_to_msecs(jiffies - h->t0);
}

/* Function 0 register read: CCCR, FBR, CIS. Out of range reads 0. */
static u8 f0_read(struct sim_host *h, u32 addr)
{
	u32 fbr = addr >> 8;

	if (addr >= COMMON_CIS && addr < COMMON_CIS + sizeof(common_cis))
		return common_cis[addr - COMMON_CIS];
	if (addr >= FUNC1_CIS && addr < FUNC1_CIS + sizeof(func1_cis))
		return func1_cis[addr - FUNC1_CIS];
	if (fbr >= 1 && fbr <= SIM_FUNCS) {
		switch (addr & 0xff) {
		case SDIO_FBR_STD_IF:
			return 0; /* no standard interface */
		case SDIO_FBR_CIS + 0:
			return FUNC1_CIS & 0xff;
		case SDIO_FBR_CIS + 1:
			return (FUNC1_CIS >> 8) & 0xff;
		case SDIO_FBR_CIS + 2:
			return FUNC1_CIS >> 16;
		case SDIO_FBR_BLKSIZE:
			return h->blksz[fbr] & 0xff;
		case SDIO_FBR_BLKSIZE + 1:
			return h->blksz[fbr] >> 8;
		}
		return 0;
	}
	switch (addr) {
	case SDIO_CCCR_CCCR:
		return SDIO_CCCR_REV_1_20 | (SDIO_SDIO_REV_2_00 << 4);
	case SDIO_CCCR_IOEx:
		return h->ioe;
	case SDIO_CCCR_IORx:
		return h->ioe; /* ready as soon as enabled */
	case SDIO_CCCR_IENx:
		return h->ien;
	case SDIO_CCCR_INTx: {
		unsigned long flags;
		bool p;

		spin_lock_irqsave(&h->irq_lock, flags);
		p = h->irq_latched;
		spin_unlock_irqrestore(&h->irq_lock, flags);
		return p ? 0x02 : 0;
	}
	case SDIO_CCCR_IF:
		return h->bus_if;
	case SDIO_CCCR_CAPS:
		return SDIO_CCCR_CAP_SMB;
	case SDIO_CCCR_CIS + 0:
		return COMMON_CIS & 0xff;
	case SDIO_CCCR_CIS + 1:
		return (COMMON_CIS >> 8) & 0xff;
	case SDIO_CCCR_CIS + 2:
		return COMMON_CIS >> 16;
	case SDIO_CCCR_BLKSIZE:
		return h->blksz[0] & 0xff;
	case SDIO_CCCR_BLKSIZE + 1:
		return h->blksz[0] >> 8;
	}
	return 0;
}

static void f0_write(struct sim_host *h, u32 addr, u8 val)
{
	u32 fbr = addr >> 8;

	if (fbr >= 1 && fbr <= SIM_FUNCS) {
		if ((addr & 0xff) == SDIO_FBR_BLKSIZE)
			h->blksz[fbr] = (h->blksz[fbr] & 0xff00) | val;
		else if ((addr & 0xff) == SDIO_FBR_BLKSIZE + 1)
			h->blksz[fbr] = (h->blksz[fbr] & 0xff) | (val << 8);
		return;
	}
	switch (addr) {
	case SDIO_CCCR_IOEx:
		h->ioe = val & (((1 << SIM_FUNCS) - 1) << 1);
		break;
	case SDIO_CCCR_IENx:
		h->ien = val;
		break;
	case SDIO_CCCR_IF:
		h->bus_if = val;
		break;
	case SDIO_CCCR_BLKSIZE:
		h->blksz[0] = (h->blksz[0] & 0xff00) | val;
		break;
	case SDIO_CCCR_BLKSIZE + 1:
		h->blksz[0] = (h->blksz[0] & 0xff) | (val << 8);
		break;
	}
}

/* CMD52 (IO_RW_DIRECT): R/W 31, fn 30-28, RAW 27, address 25-9, data 7-0. */
static void sim_cmd52(struct sim_host *h, struct mmc_command *cmd)
{
	bool write = cmd->arg >> 31;
	u32 fn = (cmd->arg >> 28) & 7;
	bool raw = (cmd->arg >> 27) & 1;
	u32 addr = (cmd->arg >> 9) & 0x1ffff;
	u8 val = cmd->arg & 0xff;
	int err = 0;

	if (fn > SIM_FUNCS) {
		cmd->resp[0] = R5_FUNCTION_NUMBER;
		return;
	}
	mutex_lock(&h->lock);
	if (fn == 0) {
		if (write)
			f0_write(h, addr, val);
		if (!write || raw)
			val = f0_read(h, addr);
	} else {
		if (write)
			err = besser_chip_writeb(h->chip, addr, val);
		if (!err && (!write || raw))
			err = besser_chip_readb(h->chip, addr, &val);
	}
	mutex_unlock(&h->lock);
	if (err == -EILSEQ || err == -ETIMEDOUT)
		cmd->error = err;
	else if (err)
		cmd->resp[0] = R5_ERROR;
	else
		cmd->resp[0] = val;
}

/* CMD53 (IO_RW_EXTENDED) on function 1: the raw argument goes to the chip. */
static void sim_cmd53(struct sim_host *h, struct mmc_request *mrq)
{
	struct mmc_command *cmd = mrq->cmd;
	struct mmc_data *data = mrq->data;
	bool write = cmd->arg >> 31;
	u32 fn = (cmd->arg >> 28) & 7;
	size_t len;
	int err;

	if (!data) {
		cmd->error = -EINVAL;
		return;
	}
	len = data->blksz * data->blocks;
	if (fn != 1 || len == 0 || len > SIM_XFER_MAX) {
		data->error = -EINVAL;
		return;
	}
	if (write && sg_copy_to_buffer(data->sg, data->sg_len, h->bounce, len) != len) {
		data->error = -EINVAL;
		return;
	}
	mutex_lock(&h->lock);
	err = besser_chip_cmd53(h->chip, cmd->arg, h->bounce, len);
	mutex_unlock(&h->lock);
	if (write)
		sim_wire_up(h);
	else if (!skb_queue_empty(&h->wire_q))
		queue_work(system_wq, &h->air_work); /* the read made room on air */
	if (err == -ETIMEDOUT) {
		cmd->error = err;
		return;
	}
	if (err) {
		data->error = err;
		return;
	}
	if (!write && sg_copy_from_buffer(data->sg, data->sg_len, h->bounce, len) != len) {
		data->error = -EINVAL;
		return;
	}
	data->bytes_xfered = len;
}

static void sim_request(struct mmc_host *mmc, struct mmc_request *mrq)
{
	struct sim_host *h = mmc_priv(mmc);
	struct mmc_command *cmd = mrq->cmd;

	cmd->error = 0;
	memset(cmd->resp, 0, sizeof(cmd->resp));
	switch (cmd->opcode) {
	case MMC_GO_IDLE_STATE:
		break;
	case SD_IO_SEND_OP_COND:
		/* R4: ready, number of functions, no memory, the OCR. */
		cmd->resp[0] = MMC_CARD_BUSY | (SIM_FUNCS << 28) | SIM_OCR;
		break;
	case SD_SEND_RELATIVE_ADDR:
		cmd->resp[0] = SIM_RCA << 16;
		break;
	case MMC_SELECT_CARD:
		break;
	case SD_IO_RW_DIRECT:
		sim_cmd52(h, cmd);
		break;
	case SD_IO_RW_EXTENDED:
		sim_cmd53(h, mrq);
		break;
	default:
		/* SD and MMC commands: an SDIO-only card does not answer them. */
		cmd->error = -ETIMEDOUT;
		break;
	}
	mmc_request_done(mmc, mrq);
	sim_check_irq(h);
}

/* Raises the card interrupt when the chip asked for one and it is enabled. */
static void sim_check_irq(struct sim_host *h)
{
	unsigned long flags;
	bool fire;
	bool chip_irq;

	mutex_lock(&h->lock);
	chip_irq = besser_chip_take_irq(h->chip);
	/* Master enable (bit 0) and function 1's enable (bit 1). */
	fire = (h->ien & 0x03) == 0x03;
	mutex_unlock(&h->lock);

	spin_lock_irqsave(&h->irq_lock, flags);
	if (chip_irq)
		h->irq_latched = true;
	fire = fire && h->irq_enabled && h->irq_latched;
	if (fire)
		h->irq_latched = false;
	spin_unlock_irqrestore(&h->irq_lock, flags);
	if (fire)
		sdio_signal_irq(h->mmc);
}

static void sim_enable_sdio_irq(struct mmc_host *mmc, int enable)
{
	struct sim_host *h = mmc_priv(mmc);
	unsigned long flags;

	spin_lock_irqsave(&h->irq_lock, flags);
	h->irq_enabled = enable;
	spin_unlock_irqrestore(&h->irq_lock, flags);
	if (enable)
		mod_delayed_work(system_wq, &h->tick, 0);
}

/* After the function's handler ran: an interrupt that came meanwhile fires again. */
static void sim_ack_sdio_irq(struct mmc_host *mmc)
{
	struct sim_host *h = mmc_priv(mmc);
	unsigned long flags;
	bool fire;

	spin_lock_irqsave(&h->irq_lock, flags);
	fire = h->irq_enabled && h->irq_latched;
	if (fire)
		h->irq_latched = false;
	spin_unlock_irqrestore(&h->irq_lock, flags);
	if (fire)
		sdio_signal_irq(mmc);
}

static void sim_tick(struct work_struct *work)
{
	struct sim_host *h = container_of(to_delayed_work(work), struct sim_host, tick);

	mutex_lock(&h->lock);
	besser_chip_tick(h->chip, sim_now_ms(h));
	mutex_unlock(&h->lock);
	if (!skb_queue_empty(&h->wire_q))
		queue_work(system_wq, &h->air_work);
	sim_check_irq(h);
	schedule_delayed_work(&h->tick, msecs_to_jiffies(tick_ms));
}

static void sim_set_ios(struct mmc_host *mmc, struct mmc_ios *ios)
{
}

static int sim_get_cd(struct mmc_host *mmc)
{
	return 1;
}

static int sim_get_ro(struct mmc_host *mmc)
{
	return 0;
}

static const struct mmc_host_ops sim_ops = {
	.request = sim_request,
	.set_ios = sim_set_ios,
	.get_cd = sim_get_cd,
	.get_ro = sim_get_ro,
	.enable_sdio_irq = sim_enable_sdio_irq,
	.ack_sdio_irq = sim_ack_sdio_irq,
};

static struct sim_host *the_host;

/* debugfs besser_sdio_sim/chip: the chip model's counters, for tests. */
static int sim_chip_show(struct seq_file *m, void *v)
{
	struct sim_host *h = m->private;
	size_t n;
	u8 *buf = kmalloc(1024, GFP_KERNEL);

	if (!buf)
		return -ENOMEM;
	mutex_lock(&h->lock);
	n = besser_chip_stats(h->chip, buf, 1024);
	mutex_unlock(&h->lock);
	seq_write(m, buf, n);
	kfree(buf);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(sim_chip);

/* debugfs besser_sdio_sim/ap_privacy: write 1 to make the AP a WEP network. */
static int sim_privacy_set(void *data, u64 val)
{
	struct sim_host *h = data;

	mutex_lock(&h->lock);
	besser_chip_set_ap_privacy(h->chip, val != 0);
	mutex_unlock(&h->lock);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sim_privacy_fops, NULL, sim_privacy_set, "%llu\n");

/*
 * debugfs besser_sdio_sim/fault: write one "NAME VALUE" line (sim_chip.rs,
 * chip::FAULT_NAMES) to inject a fault into the running chip model; a spec
 * the model refuses fails the write with -EINVAL.
 */
static ssize_t sim_fault_write(struct file *file, const char __user *ubuf, size_t len,
			       loff_t *ppos)
{
	struct sim_host *h = file->private_data;
	char buf[64];
	size_t n;
	int err;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	mutex_lock(&h->lock);
	err = besser_chip_fault(h->chip, buf, len);
	mutex_unlock(&h->lock);
	if (err)
		return err;
	for (n = len; n && (buf[n - 1] == '\n' || buf[n - 1] == ' '); n--)
		;
	dev_info(&h->pdev->dev, "chip model fault: %.*s\n", (int)n, buf);
	return len;
}

static const struct file_operations sim_fault_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = sim_fault_write,
};

static int __init sim_init(void)
{
	struct platform_device *pdev;
	struct net_device *dev;
	struct mmc_host *mmc;
	struct sim_host *h;
	int err;

	pdev = platform_device_register_simple("besser-sdio-sim", -1, NULL, 0);
	if (IS_ERR(pdev))
		return PTR_ERR(pdev);
	mmc = mmc_alloc_host(sizeof(*h), &pdev->dev);
	if (!mmc) {
		err = -ENOMEM;
		goto err_pdev;
	}
	h = mmc_priv(mmc);
	h->mmc = mmc;
	h->pdev = pdev;
	h->t0 = jiffies;
	mutex_init(&h->lock);
	spin_lock_init(&h->irq_lock);
	INIT_DELAYED_WORK(&h->tick, sim_tick);
	INIT_WORK(&h->air_work, sim_air);
	skb_queue_head_init(&h->wire_q);
	h->bounce = kmalloc(SIM_XFER_MAX, GFP_KERNEL);
	h->eth_buf = kmalloc(SIM_ETH_MAX, GFP_KERNEL);
	h->chip = besser_chip_new();
	dev = alloc_netdev(sizeof(h), "besserap%d", NET_NAME_ENUM, ether_setup);
	h->ap_dev = dev;
	if (!h->bounce || !h->eth_buf || !h->chip || !dev) {
		err = -ENOMEM;
		goto err_mem;
	}
	*(struct sim_host **)netdev_priv(dev) = h;
	dev->netdev_ops = &sim_ap_ops;
	eth_hw_addr_random(dev);
	SET_NETDEV_DEV(dev, &pdev->dev);
	err = register_netdev(dev);
	if (err)
		goto err_mem;
	mmc->ops = &sim_ops;
	mmc->f_min = 400000;
	mmc->f_max = 50000000;
	mmc->ocr_avail = SIM_OCR;
	mmc->caps = MMC_CAP_4_BIT_DATA | MMC_CAP_SDIO_IRQ | MMC_CAP_NONREMOVABLE;
	mmc->caps2 = MMC_CAP2_NO_SD | MMC_CAP2_NO_MMC | MMC_CAP2_SDIO_IRQ_NOTHREAD;
	mmc->max_blk_size = SIM_BLKSZ_MAX;
	mmc->max_blk_count = SIM_COUNT_MAX;
	mmc->max_req_size = SIM_XFER_MAX;
	mmc->max_seg_size = SIM_XFER_MAX;
	mmc->max_segs = 128;
	err = mmc_add_host(mmc);
	if (err)
		goto err_netdev;
	the_host = h;
	h->debugfs = debugfs_create_dir("besser_sdio_sim", NULL);
	debugfs_create_file("chip", 0444, h->debugfs, h, &sim_chip_fops);
	debugfs_create_file_unsafe("ap_privacy", 0200, h->debugfs, h, &sim_privacy_fops);
	debugfs_create_file("fault", 0200, h->debugfs, h, &sim_fault_fops);
	schedule_delayed_work(&h->tick, msecs_to_jiffies(tick_ms));
	dev_info(&pdev->dev, "simulated SDIO host: card %04x:%04x (besser chip model)\n",
		 SIM_VENDOR, SIM_DEVICE);
	return 0;

err_netdev:
	unregister_netdev(dev);
err_mem:
	if (dev)
		free_netdev(dev);
	besser_chip_free(h->chip);
	kfree(h->eth_buf);
	kfree(h->bounce);
	mmc_free_host(mmc);
err_pdev:
	platform_device_unregister(pdev);
	return err;
}

static void __exit sim_exit(void)
{
	struct sim_host *h = the_host;
	struct platform_device *pdev = h->pdev;

	debugfs_remove_recursive(h->debugfs);
	unregister_netdev(h->ap_dev);
	mmc_remove_host(h->mmc);
	cancel_delayed_work_sync(&h->tick);
	cancel_work_sync(&h->air_work);
	skb_queue_purge(&h->wire_q);
	free_netdev(h->ap_dev);
	besser_chip_free(h->chip);
	kfree(h->eth_buf);
	kfree(h->bounce);
	mmc_free_host(h->mmc);
	platform_device_unregister(pdev);
}

module_init(sim_init);
module_exit(sim_exit);
MODULE_DESCRIPTION("besser: simulated SDIO host with a BES2600 chip model (test only)");
MODULE_LICENSE("GPL");
