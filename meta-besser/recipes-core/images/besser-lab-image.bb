SUMMARY = "The besser lab appliance: a device the lab can flash, ramp and capture"
DESCRIPTION = "linux-besser, bes2600-rs, the firmware hook, the lab agent and \
an SSH server: what cargo xtask image puts into the appliance, built the \
Yocto way."
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_INSTALL = "\
    packagegroup-core-boot \
    kernel-modules \
    bes2600-rs \
    bes2600-firmware \
    besser-lab-agent \
    iw \
    wpa-supplicant \
"
IMAGE_LINGUAS = ""
