#!/usr/bin/env bash
# The system packages `make test` needs (Debian names), installed when we can, named when not.
#   bash tools/sysdeps.sh        (run by `make test` first, and so by CI's .ci/run)
# As root (or with password-less sudo) and with apt-get, installs what is missing; otherwise
# prints the one command to run and exits 1. Cheap when everything is there: it only looks.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
PYTHON="${PYTHON:-python3}"
missing=()

# Broker + CLI clients (mosquitto_pub/sub/passwd are independent observers in the tests).
# The Debian package may start a system broker on 1883; the tests never use 1883.
if ! have mosquitto || ! have mosquitto_sub || ! have mosquitto_pub || ! have mosquitto_passwd; then
    missing+=(mosquitto mosquitto-clients)
fi
# The dashboard's browser test (tests/test_dashboard.py): headless Chromium driven by selenium.
if ! have chromium || ! have chromedriver; then
    missing+=(chromium chromium-driver)
fi
# The firmware images the tests run (tools/firmware.py): the host board's 32-bit unix port
# (i686 cross compiler and its static libc) and the Pico W UF2 (Arm compiler, newlib,
# libstdc++, cmake; g++ for picotool); xz unpacks the MicroPython source.
if ! have i686-linux-gnu-gcc || ! have arm-none-eabi-gcc || ! have cmake || ! have g++ \
        || ! have make || ! have xz || [ ! -e /usr/i686-linux-gnu/lib/libc.a ] \
        || [ ! -e /usr/lib/arm-none-eabi/include/stdio.h ] \
        || [ ! -e /usr/lib/arm-none-eabi/include/c++ ]; then
    missing+=(make gcc g++ xz-utils gcc-i686-linux-gnu libc6-dev-i386-cross
              gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib cmake)
fi
# Node.js + npm run the RP2040 emulator (rp2040js); iproute2 (`ip netns`) gives its network
# test a namespace of its own.
if ! have node || ! have npm || ! have ip; then
    missing+=(nodejs npm iproute2)
fi
# `python3 -m venv` needs ensurepip, which Debian ships separately.
probe="$(mktemp -d)"
if ! "$PYTHON" -m venv "$probe/v" >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
rm -rf "$probe"

[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
fi
if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "sysdeps: the tests need these system packages; install them, then run make test again:" >&2
    echo "    sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "sysdeps: installing ${missing[*]}"
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
