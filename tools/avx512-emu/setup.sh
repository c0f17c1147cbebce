#!/bin/bash
# One-time setup for run-avx512.sh (Debian bookworm, as root).
set -e
cd "$(dirname "$0")"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    bochs bochsbios vgabios bochs-sdl busybox-static isolinux syslinux-common xorriso cpio binutils
mkdir -p kernel
if ! ls kernel/vmlinuz-*-cloud-amd64 >/dev/null 2>&1; then
    # The newest 6.1 cloud kernel the mirror has (a pinned ABI number disappears from it).
    pkg=$(apt-cache search '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' | cut -d' ' -f1 |
        sort -V | tail -1)
    [ -n "$pkg" ] || { echo "setup.sh: no linux-image-6.1.0-*-cloud-amd64-unsigned in apt" >&2; exit 2; }
    tmp=$(mktemp -d); (cd "$tmp" && apt-get download "$pkg" && dpkg-deb -x linux-image-*.deb x)
    cp "$tmp"/x/boot/vmlinuz-* "$tmp"/x/boot/config-* kernel/
    rm -rf "$tmp"
fi
ls -la kernel
