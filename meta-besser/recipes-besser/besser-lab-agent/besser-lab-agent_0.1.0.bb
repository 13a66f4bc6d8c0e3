SUMMARY = "What besser's lab needs on a device: tracefs, the wired interface, the listener's tools"
DESCRIPTION = "Installs the repository's lab/agent/besser-lab-agent as a boot \
service: it mounts tracefs and debugfs, brings up the wired (control) \
interface, creates /run/besser and loads bes2600. The lab reaches the device \
by SSH and starts its listener with busybox nc."
HOMEPAGE = "https://wiki.pine64.org/wiki/PineTab2"
LICENSE = "GPL-2.0-only"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/GPL-2.0-only;md5=801f80980d171dd6425610833a22dbe6"

FILESEXTRAPATHS:prepend := "${THISDIR}/../../../lab/agent:"
SRC_URI = "\
    file://besser-lab-agent \
    file://besser-lab-agent.service \
    file://besser-lab-agent.default \
"
S = "${UNPACKDIR}"

inherit update-rc.d systemd

INITSCRIPT_NAME = "besser-lab-agent"
INITSCRIPT_PARAMS = "defaults 90"
SYSTEMD_SERVICE:${PN} = "besser-lab-agent.service"

do_install() {
    install -D -m 0755 ${S}/besser-lab-agent ${D}${sbindir}/besser-lab-agent
    install -D -m 0644 ${S}/besser-lab-agent.default ${D}${sysconfdir}/default/besser-lab-agent
    install -d ${D}${sysconfdir}/init.d
    ln -sf ${sbindir}/besser-lab-agent ${D}${sysconfdir}/init.d/besser-lab-agent
    install -D -m 0644 ${S}/besser-lab-agent.service ${D}${systemd_system_unitdir}/besser-lab-agent.service
}

CONFFILES:${PN} = "${sysconfdir}/default/besser-lab-agent"
RDEPENDS:${PN} = "busybox iproute2 iw"
