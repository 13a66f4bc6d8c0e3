#!/bin/sh
# besser lab appliance: made by besser_lab::appliance::build_initramfs. Do not copy.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || mount -t debugfs debugfs /sys/kernel/debug
# debugfs too: the simulated SDIO host's counters and fault file live there.
grep -q " /sys/kernel/debug " /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname besser-lab
for m in $(cat /etc/besser/modules.order); do
  insmod "/lib/modules/besser/$m.ko" || echo "besser-appliance: insmod $m failed" > /dev/kmsg
done
ip link set lo up
# besser.wired=MAC,ADDR/PREFIX[,GATEWAY]  besser.data=MAC,ADDR/PREFIX
setup_if() {
  want=$1; spec=$2
  mac=${spec%%,*}; rest=${spec#*,}; addr=${rest%%,*}; gw=
  [ "$rest" != "$addr" ] && gw=${rest#*,}
  for d in /sys/class/net/*; do
    [ "$(cat $d/address)" = "$mac" ] || continue
    n=${d##*/}
    ip link set "$n" down
    # A Wi-Fi interface (bes2600 on besser images) may have taken the name
    # first: the lab's link keeps it, the Wi-Fi one moves to wlan1.
    if [ "$n" != "$want" ] && [ -e "/sys/class/net/$want/phy80211" ]; then
      ip link set "$want" down; ip link set "$want" name wlan1
    fi
    [ "$n" = "$want" ] || ip link set "$n" name "$want"
    ip addr add "$addr" dev "$want"
    ip link set "$want" up
    [ -n "$gw" ] && ip route add default via "$gw" dev "$want"
  done
}
# besser.air=SSID: the data NIC is the simulated AP's wired side (see
# besser_lab::appliance), the Wi-Fi interface is the data link.
setup_air() {
  spec=$1; mac=${spec%%,*}; rest=${spec#*,}; addr=${rest%%,*}
  wire=; wifi=; i=0
  for d in /sys/class/net/*; do [ "$(cat $d/address)" = "$mac" ] && wire=${d##*/}; done
  # bes2600 registers its radio from its bh thread, after the firmware is up.
  while [ $i -lt 150 ]; do
    for d in /sys/class/net/*; do [ -e $d/phy80211 ] && wifi=${d##*/}; done
    [ -n "$wifi" ] && break
    i=$((i+1)); sleep 0.1
  done
  if [ -z "$wire" ] || [ -z "$wifi" ] || [ ! -e /sys/class/net/besserap0 ] || ! command -v iw >/dev/null; then
    echo "besser-appliance: no simulated air (data NIC '$wire', Wi-Fi '$wifi', besserap0 or iw missing)" > /dev/kmsg
    return
  fi
  ip link set "$wire" down
  [ "$wire" = apwire0 ] || ip link set "$wire" name apwire0
  brctl addbr apbr0
  brctl addif apbr0 apwire0
  brctl addif apbr0 besserap0
  for n in apwire0 besserap0 apbr0; do ip link set $n up; done
  ip link set "$wifi" down
  [ "$wifi" = @DATA_IFACE@ ] || ip link set "$wifi" name @DATA_IFACE@
  ip link set @DATA_IFACE@ up
  i=0
  until iw dev @DATA_IFACE@ link | grep -q Connected; do
    [ $((i % 30)) = 0 ] && iw dev @DATA_IFACE@ connect "$air"
    i=$((i+1)); [ $i -gt 150 ] && break
    sleep 0.1
  done
  ip addr add "$addr" dev @DATA_IFACE@
  echo "@AIR_MARKER@ $(iw dev @DATA_IFACE@ link | head -1) after $i polls" > /dev/kmsg
}
air=
for kv in $(cat /proc/cmdline); do
  case "$kv" in besser.air=*) air=${kv#besser.air=} ;; esac
done
for kv in $(cat /proc/cmdline); do
  case "$kv" in
    besser.wired=*) setup_if @WIRED_IFACE@ "${kv#besser.wired=}" ;;
    besser.data=*)
      if [ -n "$air" ]; then setup_air "${kv#besser.data=}"
      else setup_if @DATA_IFACE@ "${kv#besser.data=}"; fi ;;
  esac
done
echo "@READY_MARKER@" > /dev/kmsg
echo "@READY_MARKER@" > /dev/console
