#!/bin/bash
# One-time setup for run-avx512.sh (Debian bookworm, as root).
set -e
cd "$(dirname "$0")"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    bochs bochsbios vgabios bochs-sdl busybox-static isolinux syslinux-common xorriso cpio binutils
mkdir -p kernel
if ! ls kernel/vmlinuz-*-cloud-amd64 >/dev/null 2>&1; then
    tmp=$(mktemp -d); (cd "$tmp" && apt-get download linux-image-6.1.0-50-cloud-amd64-unsigned \
        && dpkg-deb -x linux-image-*.deb x)
    cp "$tmp"/x/boot/vmlinuz-* "$tmp"/x/boot/config-* kernel/
    rm -rf "$tmp"
fi
ls -la kernel
