# besser A/B boot script (U-Boot hush), RAUC's U-Boot convention: BOOT_ORDER
# lists the slots to try, BOOT_<slot>_LEFT the tries each has left. The first
# slot of the order with tries left is booted, its count decremented and
# stored first; userspace resets the count of a slot that proved good
# (besser's flash, RAUC's mark-good). A slot whose last try failed is
# skipped on the next boot, so a kernel that does not come back falls back
# by itself. The host side is lab/src/flash/slots.rs.
#
# The A/B variables live in a U-Boot environment image of their own,
# ${besser_env_file} on the boot partition (FAT, as CONFIG_ENV_IS_IN_FAT
# keeps `uboot.env`; `env export -c` / `env import -c`, CRC-checked), so they
# need no `saveenv` to flash: fw_setenv with an fw_env.config naming the
# file reads and writes them too.
#
# Slot layout on ${besser_boot_dev}: /A/ and /B/, each with Image (the
# kernel), initramfs.cpio, bootargs.env (`besser_bootargs=...`, imported)
# and, where ${besser_fdt} names one, the device tree. The running kernel
# learns its slot from `rauc.slot=` on its command line.

# Where the slots are: as given, or the partition distro boot found this
# script on.
test -n "${besser_boot_dev}" || setenv besser_boot_dev "${devtype} ${devnum}:${distro_bootpart}"
test -n "${besser_env_file}" || setenv besser_env_file /uboot.env
if load ${besser_boot_dev} ${loadaddr} ${besser_env_file}; then
  env import -c ${loadaddr} ${filesize} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

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
  env export -c ${loadaddr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
  fatwrite ${besser_boot_dev} ${loadaddr} ${besser_env_file} ${filesize}
  reset
fi

echo "besser-ab: slot ${besser_slot} (A ${BOOT_A_LEFT} and B ${BOOT_B_LEFT} tries left, order ${BOOT_ORDER})"
env export -c ${loadaddr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
if fatwrite ${besser_boot_dev} ${loadaddr} ${besser_env_file} ${filesize}; then
  echo "besser-ab: A/B variables stored in ${besser_env_file}"
else
  echo "besser-ab: cannot store the A/B variables: not booting without them"
  reset
fi

setenv besser_bootargs
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
