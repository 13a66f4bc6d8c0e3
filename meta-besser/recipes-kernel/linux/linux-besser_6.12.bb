SUMMARY = "Linux 6.12 with Rust on and the besser series (SDIO, mac80211, kthread abstractions)"
DESCRIPTION = "The kernel bes2600-rs needs: linux-yocto's 6.12 branch with \
the repository's kernel-patches/series applied and its Kconfig fragments \
merged (common, the machine's board, the flavour's), as cargo xtask image \
builds it."

# openembedded-core dropped linux-yocto_6.12.bb (8107ecdeea, before the Rust
# kernel classes landed); the branch and revisions below are the ones its last
# version pinned (8107ecdeea^:meta/recipes-kernel/linux/linux-yocto_6.12.bb).
KBRANCH ?= "v6.12/standard/base"

# openembedded-core's; oelint cannot see that layer.
# nooelint: oelint.file.requirenotfound
require recipes-kernel/linux/linux-yocto.inc

SRC_URI = "\
    git://git.yoctoproject.org/linux-yocto.git;name=machine;branch=${KBRANCH};protocol=https \
    git://git.yoctoproject.org/yocto-kernel-cache;type=kmeta;name=meta;branch=yocto-6.12;destsuffix=${KMETA};protocol=https \
"
# The series and fragments (generated from kernel-patches/, in order).
require linux-besser-series.inc

SRCREV_machine ?= "2ef0e43d135dd1105527bd541b5f51f3b7c090d7"
SRCREV_meta ?= "a1aa7c4442863bf6c0f93059e7d7f26673b36aec"

HOMEPAGE = "https://www.kernel.org/"
LICENSE = "GPL-2.0-only"
LIC_FILES_CHKSUM = "file://COPYING;md5=6bc538ed5bd9a7fc9398086aedcd7e46"
LINUX_VERSION ?= "6.12.67"
LINUX_VERSION_EXTENSION = "-besser"
PV = "${LINUX_VERSION}+git"

KMETA = "kernel-meta"
KCONF_BSP_AUDIT_LEVEL = "1"
