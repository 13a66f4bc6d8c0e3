# besser A/B boot script (U-Boot hush), RAUC's U-Boot convention: BOOT_ORDER
# lists the slots to try, BOOT_<slot>_LEFT the tries each has left. The first
# slot of the order with tries left is booted, its count decremented and the
# environment saved first; userspace resets the count of a slot that proved
# good (besser's flash, RAUC's mark-good). A slot whose last try failed is
# skipped on the next boot, so a kernel that does not come back falls back
# by itself. The host side is lab/src/flash/slots.rs.
#
# Slot layout on ${besser_boot_dev}: /A/ and /B/, each with Image (the
# kernel), initramfs.cpio, bootargs.env (`besser_bootargs=...`, imported)
# and, where ${besser_fdt} names one, the device tree. The running kernel
# learns its slot from `rauc.slot=` on its command line.

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3
test -n "${besser_boot_dev}" || setenv besser_boot_dev "virtio 0:1"

setenv besser_slot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${besser_slot}" != "x"; then
    # a slot is chosen: skip the rest
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv besser_slot A
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv besser_slot B
    fi
  fi
done

if test -z "${besser_slot}"; then
  echo "besser-ab: no slot has tries left; both reset to 3"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  reset
fi

echo "besser-ab: slot ${besser_slot} (A ${BOOT_A_LEFT} and B ${BOOT_B_LEFT} tries left, order ${BOOT_ORDER})"
setenv besser_bootargs
saveenv

if load ${besser_boot_dev} ${loadaddr} /${besser_slot}/bootargs.env; then
  env import -t ${loadaddr} ${filesize} besser_bootargs
fi
setenv bootargs "${besser_bootargs} rauc.slot=${besser_slot}"
load ${besser_boot_dev} ${kernel_addr_r} /${besser_slot}/Image || reset
load ${besser_boot_dev} ${ramdisk_addr_r} /${besser_slot}/initramfs.cpio || reset
setenv besser_rd_size ${filesize}
if test -n "${besser_fdt}"; then
  load ${besser_boot_dev} ${fdt_addr_r} /${besser_slot}/${besser_fdt} || reset
  booti ${kernel_addr_r} ${ramdisk_addr_r}:${besser_rd_size} ${fdt_addr_r}
else
  booti ${kernel_addr_r} ${ramdisk_addr_r}:${besser_rd_size} ${fdtcontroladdr}
fi
echo "besser-ab: slot ${besser_slot} did not boot"
reset
