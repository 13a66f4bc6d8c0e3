SUMMARY = "bes2600-rs: the Rust driver for the BES2600 Wi-Fi chip (SDIO) of the PineTab2"
DESCRIPTION = "bes2600.ko built from the repository's driver/kmod and \
driver/core/src against linux-besser (it needs the besser series' Rust \
abstractions for SDIO and mac80211)."
HOMEPAGE = "https://pine64.org/devices/pinetab2/"
LICENSE = "GPL-2.0-only"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/GPL-2.0-only;md5=801f80980d171dd6425610833a22dbe6"

inherit module-rust

require bes2600-rs-sources.inc

EXTRA_OEMAKE += "KDIR=${STAGING_KERNEL_DIR}"

# module.bbclass names the package kernel-module-bes2600; the firmware is not
# redistributable and comes from bes2600-firmware (BESSER_FIRMWARE_DIR).
RPROVIDES:${PN} += "kernel-module-bes2600"
RRECOMMENDS:${PN} += "bes2600-firmware"
RCONFLICTS:${PN} += "bes2600-module"
