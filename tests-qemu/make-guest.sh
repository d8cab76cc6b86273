#!/usr/bin/env bash
# Builds the QEMU test guest: a Debian kernel and a busybox initramfs whose init brings up
# virtio-net, takes a DHCP lease, pings the gateway, resolves a name through the DNS alias,
# downloads a file and prints its hash, then serves HTTP on port 80 until it is powered off. What
# it does is told on the kernel command line (see init below); every result is a console line
# starting "SLIRP-".
#
# Usage: tests-qemu/make-guest.sh OUTDIR        (writes OUTDIR/vmlinuz and OUTDIR/initrd.gz)
# Needs: apt-get (downloads linux-image-*-cloud-amd64 and busybox-static from Debian: only
# files are unpacked, nothing is installed), dpkg-deb, gzip.
set -euo pipefail
out=$(realpath -m "${1:?usage: make-guest.sh OUTDIR}")
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ]; then
    echo "guest already built in $out"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
kpkg=${kpkg:-$(apt-cache search --names-only '^linux-image-[0-9].*-cloud-amd64$' | awk '{print $1}' | sort -V | tail -1)}
[ -n "$kpkg" ] || { echo "no linux-image-*-cloud-amd64 package known to apt (apt-get update?)" >&2; exit 1; }
# apt-get download writes as _apt when it can: give it a directory it may write.
chmod 0777 "$work"
apt-get download -q "$kpkg" busybox-static >/dev/null
mkdir k bb root
dpkg-deb -x linux-image-*.deb k
dpkg-deb -x busybox-static_*.deb bb
kver=$(ls k/lib/modules)
mkdir -p root/bin root/lib/modules root/proc root/sys root/dev root/tmp root/www root/etc
cp bb/bin/busybox root/bin/busybox
for a in $(root/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "root/bin/$a"; done
# In dependency order (each module's "depends=" comes before it).
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
for m in $mods; do
    f=$(find "k/lib/modules/$kver" -name "$m.ko*" | head -1)
    [ -n "$f" ] || { echo "module $m not in $kpkg" >&2; exit 1; }
    case "$f" in
        *.ko.xz) xz -dc "$f" > "root/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" > "root/lib/modules/$m.ko" ;;
        *) cp "$f" "root/lib/modules/$m.ko" ;;
    esac
done
echo "guest-http-ok" > root/www/index.html
cat > root/udhcpc.sh <<'SCRIPT'
#!/bin/sh
case "$1" in
bound|renew)
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface"; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "SLIRP-DHCP ip=$ip router=$router dns=$dns mtu=${mtu:-none}" > /tmp/dhcp.line
    ;;
esac
SCRIPT
chmod +x root/udhcpc.sh
cat > root/init <<'INIT'
#!/bin/sh
# Kernel command line: slirp.fetch=URL (download, print sha256), slirp.name=NAME (resolve),
# slirp.ping=ADDR, slirp.serve=1 (busybox httpd on port 80 after the checks).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in MODULES; do insmod /lib/modules/$m.ko 2>/tmp/insmod.err || echo "SLIRP-INSMOD $m: $(cat /tmp/insmod.err)"; done
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^slirp\.$1=//p"; }
ip link set lo up
i=0
while ! ip link show eth0 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 50 ] && break; sleep 0.1; done
ip link set eth0 up
echo "SLIRP-BOOT $(uname -r)"
udhcpc -i eth0 -s /udhcpc.sh -q -n -t 10 -T 1 -O mtu >/dev/null 2>&1 && cat /tmp/dhcp.line || echo "SLIRP-DHCP failed"
p=$(arg ping); [ -n "$p" ] && { ping -c 1 -W 5 "$p" >/dev/null 2>&1 && echo "SLIRP-PING ok $p" || echo "SLIRP-PING failed $p"; }
n=$(arg name); [ -n "$n" ] && echo "SLIRP-DNS $(nslookup "$n" 2>/dev/null | sed -n 's/^Address: *\([0-9.]*\)$/\1/p' | tail -1)"
u=$(arg fetch); [ -n "$u" ] && echo "SLIRP-HTTP $(wget -q -O - "$u" | sha256sum | cut -d' ' -f1)"
if [ "$(arg serve)" = 1 ]; then
    httpd -p 80 -h /www
    echo "SLIRP-SERVING"
fi
echo "SLIRP-DONE"
# Stays up (serving) until the host powers it off; never returns (init must not exit).
while true; do sleep 3600; done
INIT
sed -i "s/MODULES/$mods/" root/init
chmod +x root/init
(cd root && find . | ../bb/bin/busybox cpio -o -H newc 2>/dev/null) | gzip -9 > initrd.gz
mkdir -p "$out"
cp "k/boot/vmlinuz-$kver" "$out/vmlinuz"
cp initrd.gz "$out/initrd.gz"
echo "$kpkg $kver" > "$out/VERSION"
echo "guest built in $out ($kpkg, $(du -h "$out/initrd.gz" | cut -f1) initramfs)"
