SUMMARY = "BES2600 firmware, from a directory the builder supplies"
DESCRIPTION = "The chip's firmware is not redistributable, so no recipe can \
fetch it: set BESSER_FIRMWARE_DIR (local.conf or kas) to a directory holding \
best2002_fw_boot_sdio.bin and best2002_fw_sdio.bin, as the PineTab2's vendor \
image ships them. Without it the package is empty and the driver reports the \
missing files when it probes."
HOMEPAGE = "https://wiki.pine64.org/wiki/PineTab2"
LICENSE = "CLOSED"

# Nothing to fetch: the files come from BESSER_FIRMWARE_DIR.
# nooelint: oelint.var.mandatoryvar.SRC_URI
SRC_URI = ""

BESSER_FIRMWARE_DIR ??= ""
BESSER_FIRMWARE_FILES = "best2002_fw_boot_sdio.bin best2002_fw_sdio.bin"

ALLOW_EMPTY:${PN} = "1"
FILES:${PN} = "${nonarch_base_libdir}/firmware/bes2600"

do_install() {
    if [ -z "${BESSER_FIRMWARE_DIR}" ]; then
        bbwarn "BESSER_FIRMWARE_DIR is not set: bes2600-firmware is empty"
        return
    fi
    install -d ${D}${nonarch_base_libdir}/firmware/bes2600
    for f in ${BESSER_FIRMWARE_FILES}; do
        if [ ! -f "${BESSER_FIRMWARE_DIR}/$f" ]; then
            bbfatal "BESSER_FIRMWARE_DIR=${BESSER_FIRMWARE_DIR}: $f is missing"
        fi
        install -m 0644 "${BESSER_FIRMWARE_DIR}/$f" ${D}${nonarch_base_libdir}/firmware/bes2600/
    done
}
do_install[vardeps] += "BESSER_FIRMWARE_DIR"
