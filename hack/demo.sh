#!/usr/bin/env bash
# Builds a small sample image with umoci and mounts it with ocifs.
#   layer 1: busybox (static) with its applet links, /etc/os-release, a user
#   layer 2: replaces /etc/motd, deletes /etc/old.conf (a whiteout)
# Usage: hack/demo.sh DIR   (the image goes to DIR/layout, the mount to DIR/mnt)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-demo}
ocifs=$PWD/bin/ocifs
layout=$dir/layout
mnt=$dir/mnt

if mountpoint -q "$mnt" 2>/dev/null; then "$ocifs" umount "$mnt"; fi
rm -rf "$dir"
mkdir -p "$dir/src/bin" "$dir/src/etc" "$dir/src2/etc" "$mnt"

cp /bin/busybox "$dir/src/bin/busybox"
for applet in sh ls cat echo id env ps; do ln -s busybox "$dir/src/bin/$applet"; done
cat > "$dir/src/etc/os-release" <<'OS'
NAME="ocifs demo"
ID=ocifs-demo
PRETTY_NAME="ocifs demo image (busybox)"
OS
echo "root:x:0:0:root:/root:/bin/sh" > "$dir/src/etc/passwd"
echo "demo:x:1000:1000:demo:/home/demo:/bin/sh" >> "$dir/src/etc/passwd"
printf 'root:x:0:\ndemo:x:1000:\n' > "$dir/src/etc/group"
echo "layer 1 says hello" > "$dir/src/etc/motd"
echo "deleted by layer 2" > "$dir/src/etc/old.conf"
echo "layer 2 says hello" > "$dir/src2/etc/motd"

umoci init --layout "$layout"
umoci new --image "$layout:demo"
umoci insert --image "$layout:demo" "$dir/src" /
umoci insert --image "$layout:demo" "$dir/src2/etc/motd" /etc/motd
umoci insert --image "$layout:demo" --whiteout /etc/old.conf
umoci config --image "$layout:demo" --config.cmd /bin/sh --config.env PATH=/bin \
	--config.workingdir / --author "ocifs demo"
rm -rf "$dir/src" "$dir/src2"

"$ocifs" images "$layout"
"$ocifs" mount "$layout:demo" "$mnt"
echo
echo "mounted $layout:demo at $mnt (read-only, served lazily from the blobs):"
ls -l "$mnt" "$mnt/etc"
echo
cat "$mnt/etc/os-release"
echo "etc/motd comes from layer 2: $(cat "$mnt/etc/motd")"
[ -e "$mnt/etc/old.conf" ] || echo "etc/old.conf was deleted by layer 2's whiteout"
"$mnt/bin/busybox" echo "busybox runs straight from the mount"
echo
echo "unmount with: $ocifs umount $mnt"
