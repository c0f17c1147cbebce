#!/bin/bash
# run-avx512.sh BINARY [ARGS...]
#
# Runs an x86-64 Linux user-space binary (static or dynamic glibc) on an emulated
# AVX-512 CPU: a Debian 6.1 kernel + busybox initramfs booted in Bochs 2.7
# (default CPU model "tigerlake": AVX512 F/CD/BW/DQ/VL/IFMA/VBMI/VBMI2/VNNI/BITALG/
# VPOPCNTDQ/VP2INTERSECT). The guest serial console is streamed to stdout; a
# timing summary goes to stderr.
#
# Exit status: 0 if the binary exited 0; the binary's exit code (1..255) otherwise
# (128+N if it died from signal N); 124 on timeout; 125 if the guest never printed
# the "EXIT CODE:" marker (boot failure etc.); 2 on usage/setup errors.
#
# Environment overrides:
#   EMU_TIMEOUT=1200   seconds before bochs is killed
#   EMU_CPU=tigerlake  bochs cpu model; corei7_skylake_x and corei7_icelake_u also work
#   EMU_MEM=1024       guest RAM in MB
#   EMU_IPS=20000000   bochs "ips" (only affects guest timer/clock emulation, not speed)
#   EMU_STRIP=1        strip debug info from the copied binary (0 = copy as is)
#   EMU_COMPRESS=none  initramfs compression: none (fastest in the emulator) or gzip
#   EMU_FILES="src[:dst] ..."  extra files/dirs for the guest (dst absolute, default =
#                      host absolute path of src); ELF files get their ldd libs too
#   EMU_ENV="VAR=value ..."    environment for the binary (e.g. RUST_BACKTRACE=1)
#   EMU_CWD=/          working directory inside the guest
#   EMU_CMDLINE="..."  extra kernel command line words
#   EMU_QUIET=1        don't print kernel boot messages (0 = full boot log)
#   EMU_KEEP=1         keep the work directory (bochs.log, bochsrc, serial.out)
#   EMU_KERNEL=path    a different x86-64 bzImage (needs initramfs+8250 console built in)
set -u

EMU_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then
    echo "usage: $0 BINARY [ARGS...]" >&2
    exit 2
fi
BIN="$1"; shift
if [ ! -f "$BIN" ]; then echo "run-avx512: no such file: $BIN" >&2; exit 2; fi
BIN="$(readlink -f "$BIN")"

TIMEOUT="${EMU_TIMEOUT:-1200}"
CPU="${EMU_CPU:-tigerlake}"
IPS="${EMU_IPS:-20000000}"
MEM="${EMU_MEM:-1024}"
# The newest kernel setup.sh fetched (the mirror keeps only recent ABI numbers).
KERNEL="${EMU_KERNEL:-$(ls "$EMU_DIR"/kernel/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)}"
CWD="${EMU_CWD:-/}"
COMPRESS="${EMU_COMPRESS:-none}"

for t in bochs-bin xorriso cpio /usr/lib/ISOLINUX/isolinux.bin /bin/busybox "$KERNEL"; do
    if ! command -v "$t" >/dev/null 2>&1 && [ ! -e "$t" ]; then
        echo "run-avx512: missing $t (apt-get install bochs bochsbios vgabios bochs-sdl busybox-static isolinux syslinux-common xorriso cpio)" >&2
        exit 2
    fi
done

WORK="$(mktemp -d /tmp/run-avx512.XXXXXX)"
BPID=
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null
    if [ "${EMU_KEEP:-0}" = 1 ]; then echo "run-avx512: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,proc,sys,dev,tmp,run,etc,root,prog} "$WORK/iso/isolinux"

# --- 1. initramfs -----------------------------------------------------------
cp /bin/busybox "$ROOT/bin/busybox"
for app in sh mount poweroff grep cat cut echo sync sleep; do ln -s busybox "$ROOT/bin/$app"; done

copy_in() {   # copy_in SRC DST  (DST = absolute path inside the guest; follows symlinks)
    mkdir -p "$ROOT$(dirname "$2")"
    cp -aL "$1" "$ROOT$2"
}
copy_libs() { # copy what ldd lists (incl. the loader at its absolute path)
    ldd "$1" >/dev/null 2>&1 || return 0     # static binary or not an ELF
    ldd "$1" | while read -r a b c _; do
        # "libx.so => /path (addr)" | "/lib64/ld-linux-x86-64.so.2 (addr)" | "linux-vdso.so.1 (addr)"
        if [ "$b" = "=>" ] && [ "${c:0:1}" = "/" ]; then echo "$c"
        elif [ "${a:0:1}" = "/" ]; then echo "$a"; fi
    done | sort -u | while read -r lib; do
        [ -e "$ROOT$lib" ] || copy_in "$lib" "$lib"
    done
}

GUEST_BIN="/prog/$(basename "$BIN")"
copy_in "$BIN" "$GUEST_BIN"
if [ "${EMU_STRIP:-1}" = 1 ] && objdump -h "$BIN" 2>/dev/null | grep -q ' \.debug_'; then
    objcopy --strip-debug "$ROOT$GUEST_BIN" 2>/dev/null || copy_in "$BIN" "$GUEST_BIN"
fi
copy_libs "$BIN"
# glibc dlopen()s libgcc_s for unwinding (Rust panics, pthread_cancel)
if [ -e /lib/x86_64-linux-gnu/libgcc_s.so.1 ] && [ -e "$ROOT/lib/x86_64-linux-gnu/libc.so.6" ]; then
    [ -e "$ROOT/lib/x86_64-linux-gnu/libgcc_s.so.1" ] || copy_in /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/libgcc_s.so.1
fi
for spec in ${EMU_FILES:-}; do
    src="${spec%%:*}"; dst="${spec#*:}"; [ "$dst" = "$spec" ] && dst="$(readlink -f "$src")"
    copy_in "$src" "$dst"
    [ -f "$src" ] && copy_libs "$src"
done

q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }   # quote for the guest sh
ARGSTR=""
for a in "$@"; do ARGSTR="$ARGSTR $(q "$a")"; done
ENVSTR=""
for e in ${EMU_ENV:-}; do ENVSTR="$ENVSTR export $(q "$e");"; done

cat > "$ROOT/init" <<EOF
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/prog HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "=== run-avx512 guest: kernel \$(cat /proc/sys/kernel/osrelease), cpu:\$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2)"
grep -m1 '^flags' /proc/cpuinfo
$ENVSTR
cd $(q "$CWD") || echo "=== run-avx512: cannot cd to $(q "$CWD")"
echo "=== run-avx512: starting $(basename "$BIN")"
$(q "$GUEST_BIN")$ARGSTR </dev/null
rc=\$?
echo "EXIT CODE: \$rc"
# the UART drains its tx buffer by interrupts; wait until the tx counter stops moving
p=; while :; do c=\$(grep '^0:' /proc/tty/driver/serial); [ "\$c" = "\$p" ] && break; p=\$c; sleep 0.2; done
sync
poweroff -f
EOF
chmod +x "$ROOT/init"

case "$COMPRESS" in
    gzip) (cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$WORK/iso/initrd.img" ;;
    *)    (cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet) > "$WORK/iso/initrd.img" ;;
esac

# --- 2. bootable ISO (ISOLINUX) ---------------------------------------------
# Kernel parameters: clearcpuid works around Bochs 2.7 CPUID bugs:
#   321,323 = xsavec,xsaves: Bochs reports the wrong compacted XSAVE size -> the
#             kernel would disable XSAVE (and with it AVX/AVX-512) entirely;
#   515,516 = pku,ospke: Bochs tigerlake lists PKRU in XCR0 but reports size 0;
#   580     = fsrm: Bochs reports FSRM while MISC_ENABLE.fast-strings=0 (kernel then
#             clears ERMS), and FSRM-without-ERMS breaks the kernel's memmove.
# The rest just shortens boot (no ACPI/PCI needed; console is the legacy UART).
LOGLEVEL=1; [ "${EMU_QUIET:-1}" = 0 ] && LOGLEVEL=7
CMDLINE="console=ttyS0,115200 rdinit=/init loglevel=$LOGLEVEL clearcpuid=321,323,515,516,580 \
nosmp nokaslr mitigations=off acpi=off pci=off tsc=reliable no_timer_check lpj=$((IPS / 250)) \
initcall_blacklist=trace_eval_init cryptomgr.notests random.trust_cpu=on panic=0 \
i8042.noaux i8042.nokbd audit=0 nowatchdog ${EMU_CMDLINE:-}"
cp "$KERNEL" "$WORK/iso/vmlinuz"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$WORK/iso/isolinux/"
cat > "$WORK/iso/isolinux/isolinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $CMDLINE
EOF
xorriso -as mkisofs -quiet -o "$WORK/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table "$WORK/iso" 2>"$WORK/xorriso.log" \
    || { cat "$WORK/xorriso.log" >&2; exit 2; }

# --- 3. bochs ---------------------------------------------------------------
SERIAL="$WORK/serial.out"
cat > "$WORK/bochsrc" <<EOF
# Debian's bochs has no 'nogui' plugin (and rfb crashes); SDL2 with
# SDL_VIDEODRIVER=dummy is headless. The sound mixer thread crashes -> disabled.
display_library: sdl2
plugin_ctrl: speaker=0, gameport=0, parallel=0
sound: driver=dummy
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
cpu: model=$CPU, count=1, ips=$IPS, reset_on_triple_fault=0, ignore_bad_msrs=1
memory: guest=$MEM, host=$MEM
pci: enabled=1, chipset=i440fx
ata0-master: type=cdrom, path="$WORK/boot.iso", status=inserted
boot: cdrom
clock: sync=none, time0=local
com1: enabled=1, mode=file, dev="$SERIAL"
mouse: enabled=0
private_colormap: enabled=0
log: $WORK/bochs.log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
EOF
: > "$SERIAL"
# Debian's bochs-bin is built with the internal debugger: it starts at a debugger
# prompt, so feed it "continue" from a command file (stdin is /dev/null).
printf 'c\nquit\n' > "$WORK/debugger.rc"

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "") print "?"; else printf "%.1f", (b - a) / 1e9 }'; }
START=$(now)
SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy \
    timeout -k 10 "$TIMEOUT" bochs-bin -q -f "$WORK/bochsrc" -rc "$WORK/debugger.rc" \
    </dev/null >"$WORK/bochs.stdout" 2>&1 &
BPID=$!

# Stream the serial output and note milestones. Once the marker line is there,
# give the guest a moment to halt and stop bochs ourselves (acpi=off -> no poweroff).
pos=0; T_INIT=; T_PROG=; T_END=; T_DEAD=
while :; do
    alive=1; kill -0 $BPID 2>/dev/null || alive=0
    size=$(stat -c %s "$SERIAL")
    if [ "$size" -gt "$pos" ]; then
        tail -c +$((pos + 1)) "$SERIAL" | head -c $((size - pos)) | tr -d '\r'
        pos=$size
        [ -z "$T_INIT" ] && grep -aq '^=== run-avx512 guest' "$SERIAL" && T_INIT=$(now)
        [ -z "$T_PROG" ] && grep -aq '^=== run-avx512: starting' "$SERIAL" && T_PROG=$(now)
        [ -z "$T_END" ] && grep -aq '^EXIT CODE: ' "$SERIAL" && T_END=$(now)
    fi
    [ $alive = 0 ] && break
    # stop bochs: 2 s after the marker, or 5 s after the guest halted/panicked without it
    if [ -n "$T_END" ] && { grep -aq 'System halted\|Power down' "$SERIAL" || [ $(( $(now) - T_END )) -ge 2000000000 ]; }; then
        kill $BPID 2>/dev/null; wait $BPID 2>/dev/null; BPID=; break
    fi
    if [ -z "$T_END" ] && [ -z "${T_DEAD:-}" ] && grep -aq 'System halted\|Power down\|Kernel panic - not syncing' "$SERIAL"; then T_DEAD=$(now); fi
    if [ -n "${T_DEAD:-}" ] && [ $(( $(now) - T_DEAD )) -ge 5000000000 ]; then
        kill $BPID 2>/dev/null; wait $BPID 2>/dev/null; BPID=; break
    fi
    sleep 0.2
done
BRC=0
if [ -n "$BPID" ]; then wait $BPID 2>/dev/null; BRC=$?; BPID=; fi
END=$(now)

echo "=== run-avx512: cpu=$CPU; wall: total $(secs "$START" "$END")s = boot $(secs "$START" "$T_PROG")s" \
     "+ program $(secs "$T_PROG" "$T_END")s + shutdown $(secs "$T_END" "$END")s" >&2
if [ $BRC -eq 124 ] || [ $BRC -eq 137 ]; then
    echo "run-avx512: TIMEOUT after ${TIMEOUT}s" >&2
fi
grep -a '>>PANIC<<' "$WORK/bochs.log" 2>/dev/null | grep -v 'soft power off\|User requested shutdown' | head -5 >&2

RC_LINE="$(tr -d '\r' < "$SERIAL" | grep -a '^EXIT CODE: ' | tail -1)"
if [ -z "$RC_LINE" ]; then
    echo "run-avx512: marker 'EXIT CODE:' not found in guest output (bochs rc=$BRC)" >&2
    [ $BRC -eq 124 ] || [ $BRC -eq 137 ] && exit 124
    exit 125
fi
CODE="${RC_LINE#EXIT CODE: }"
if [ "$CODE" != 0 ]; then
    [ "$CODE" -ge 1 ] 2>/dev/null && [ "$CODE" -le 255 ] && exit "$CODE"
    exit 1
fi
exit 0
