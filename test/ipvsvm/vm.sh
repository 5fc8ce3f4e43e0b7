#!/bin/sh
# vm.sh TESTBIN [ARGS...] — boots Debian's 6.1 kernel under qemu (software
# emulation: this kind of machine's /dev/kvm cannot run guests) with the
# ip_vs modules loaded, runs the static binary TESTBIN inside with ARGS,
# prints its output and exits with its status. See ../../../shared/IPVS-VM.md.
#
# The kernel package is fetched with apt-get download and unpacked with
# dpkg-deb -x (never installed) into $IPVSVM_CACHE, once.
set -eu
CACHE=${IPVSVM_CACHE:-/var/tmp/vigil-ipvsvm}
TESTBIN=$1
shift
mkdir -p "$CACHE"

need=""
for p in qemu-system-x86 busybox-static xz-utils iproute2; do
	dpkg -s $p >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
	echo "ipvsvm: installing$need" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ ! -s "$CACHE/vmlinux" ]; then
	kernels() { apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V; }
	[ -n "$(kernels)" ] || apt-get update -qq # a fresh machine may have no package lists yet
	pkg=$(kernels | tail -1)
	echo "ipvsvm: fetching $pkg" >&2
	rm -rf "$CACHE/root" && mkdir -p "$CACHE/root"
	(cd "$CACHE" && apt-get download -q "$pkg" >/dev/null 2>&1 && dpkg-deb -x "$pkg"_*.deb root && rm -f "$pkg"_*.deb)
	vmlinuz=$(ls "$CACHE"/root/boot/vmlinuz-*)
	# The uncompressed kernel boots through PVH in ~4 s (bzImage: 7-9 s).
	off=$(grep -abo "$(printf '\3757zXZ')" "$vmlinuz" | head -1 | cut -d: -f1)
	tail -c +$((off + 1)) "$vmlinuz" | xz -dc >"$CACHE/vmlinux.tmp" 2>/dev/null || true
	mv "$CACHE/vmlinux.tmp" "$CACHE/vmlinux"
fi
KVER=$(ls "$CACHE/root/lib/modules")
MODDIR="$CACHE/root/lib/modules/$KVER/kernel"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
R="$WORK/root"
mkdir -p "$R/bin" "$R/sbin" "$R/usr/sbin" "$R/proc" "$R/sys" "$R/dev" "$R/run" "$R/tmp" "$R/mod" "$R/lib64" "$R/lib/x86_64-linux-gnu" "$R/etc"
cp /bin/busybox "$R/bin/busybox"
for a in sh mount insmod poweroff stty cat echo mkdir sleep; do ln -s busybox "$R/bin/$a"; done
# iproute2's ip (busybox's has no netns/veth), with its libraries.
cp /usr/sbin/ip "$R/usr/sbin/ip"
for lib in $(ldd /usr/sbin/ip | grep -o '/[^ ]*'); do cp "$lib" "$R$lib"; done
# ipvsadm, when installed, for the reconcile benchmark's comparison.
if [ -x /usr/sbin/ipvsadm ]; then
	cp /usr/sbin/ipvsadm "$R/usr/sbin/ipvsadm"
	for lib in $(ldd /usr/sbin/ipvsadm | grep -o '/[^ ]*'); do mkdir -p "$R$(dirname $lib)"; cp "$lib" "$R$lib"; done
fi
# Modules in dependency order (the package ships no modules.dep); the
# bridge is the connection-survival lab's switch; nf_tables holds
# stateless mode's drops of un-NATed replies.
MODS="crypto/crc32c_generic lib/libcrc32c net/ipv4/netfilter/nf_defrag_ipv4 net/ipv6/netfilter/nf_defrag_ipv6
net/netfilter/nf_conntrack net/netfilter/ipvs/ip_vs drivers/net/veth
net/netfilter/nfnetlink net/netfilter/nf_tables
net/llc/llc net/802/stp net/bridge/bridge"
for s in rr wrr lc wlc lblc lblcr dh sh sed nq mh; do MODS="$MODS net/netfilter/ipvs/ip_vs_$s"; done
list=""
for m in $MODS; do
	cp "$MODDIR/$m.ko" "$R/mod/"
	list="$list $(basename $m)"
done
cp "$TESTBIN" "$R/test"
{
	echo '#!/bin/sh'
	echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /run; mount -t tmpfs tmp /tmp'
	echo "for m in$list; do insmod /mod/\$m.ko || echo \"insmod \$m failed\" >/dev/ttyS1; done"
	echo 'stty raw -echo </dev/ttyS1 2>/dev/null'
	echo 'echo 1 >/proc/sys/net/ipv4/ip_forward'
	# A director routes to its real servers: IPVS refuses an IPv4 real
	# whose address has no unicast route (EINVAL).
	echo '/usr/sbin/ip link set lo up; /usr/sbin/ip link add vmnet0 type veth peer name vmnet1'
	echo '/usr/sbin/ip link set vmnet0 up; /usr/sbin/ip link set vmnet1 up; /usr/sbin/ip addr add 192.168.255.1/24 dev vmnet0'
	echo '/usr/sbin/ip route add default via 192.168.255.2'
	# The survival benchmark's settings reach the test inside.
	env | grep -E '^VIGIL_SURVIVAL_[A-Z_]*=[0-9A-Za-z_.]*$' | sed 's/^/export /' || true
	printf 'cd / && PATH=/usr/sbin:/bin /test'
	for a in "$@"; do printf " '%s'" "$a"; done
	echo ' >/dev/ttyS1 2>&1'
	echo 'echo "IPVSVM-EXIT $?" >/dev/ttyS1'
	echo 'poweroff -f'
} >"$R/init"
chmod +x "$R/init"
(cd "$R" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$WORK/initramfs.gz")

qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot \
	-kernel "$CACHE/vmlinux" -initrd "$WORK/initramfs.gz" \
	-append "console=ttyS0 quiet panic=-1 rdinit=/init" \
	-serial file:"$WORK/console.log" -serial file:"$WORK/out.log" </dev/null >/dev/null 2>&1 || true
out="$WORK/out.log"
if ! grep -q '^IPVSVM-EXIT ' "$out" 2>/dev/null; then
	echo "ipvsvm: the VM ended without the test's exit status; console:" >&2
	tail -n 40 "$WORK/console.log" >&2
	cat "$out" 2>/dev/null >&2
	exit 3
fi
grep -v '^IPVSVM-EXIT ' "$out" | tr -d '\r'
exit "$(grep '^IPVSVM-EXIT ' "$out" | tail -1 | cut -d' ' -f2 | tr -d '\r')"
