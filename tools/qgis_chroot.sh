#!/usr/bin/env bash
# Run make targets of this checkout inside a Debian 13 chroot with a newer QGIS from Debian's packages.
#
#   tools/qgis_chroot.sh qgis340 lint test     # QGIS 3.40 LTR (trixie)
#   tools/qgis_chroot.sh qgis344 test          # QGIS 3.44 (trixie-backports)
#
# The chroot is built on first use under ${XDG_CACHE_HOME:-~/.cache}/geoclip-qgis/chroot/<variant> and
# reused while it exists (delete the folder to rebuild). Everything runs in a private mount namespace,
# so /proc, /sys, /dev and the checkout are mounted for this run only and vanish with it. The host's
# apt sources are never touched: debootstrap writes only into the chroot folder.
set -euo pipefail

variant=${1:-}
shift || true
die() { echo "make test-$variant: $*" >&2; exit 1; }

case "$variant" in
  qgis340) suite=trixie; backports=0 ;;
  qgis344) suite=trixie; backports=1 ;;
  *) echo "usage: $0 qgis340|qgis344 <make targets and variables>" >&2; exit 2 ;;
esac

REPO=$(cd "$(dirname "$0")/.." && pwd)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${GEOCLIP_CHROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/geoclip-qgis/chroot}
ROOTFS=$CACHE/$variant
INNER_REPO=/src/geoclip-qgis
INNER_VENV=/opt/geoclip-venv
# QGIS and what make install expects from apt, plus OpenBLAS: without it Debian's torch falls back
# to the reference BLAS, which is ~50x slower (measured: a 100K-point gallery encode never finished).
PKGS="ca-certificates make qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-pyproj proj-data
      python3-venv python3-pip python3-torch libopenblas0-openmp xvfb pyqt5-dev-tools qttools5-dev-tools"

if [ -z "${GEOCLIP_CHROOT_NS:-}" ]; then
  # Prerequisites, each a one-line failure within seconds.
  [ "$(id -u)" = 0 ] || die "needs root (debootstrap, mount and chroot); run it with sudo"
  command -v debootstrap >/dev/null || die "debootstrap is missing: sudo apt-get install debootstrap"
  command -v unshare >/dev/null || die "unshare is missing (package util-linux)"
  /usr/bin/python3 - "$MIRROR/dists/$suite/Release" 2>/dev/null <<'PY' || die "Debian mirror $MIRROR is unreachable (set DEBIAN_MIRROR to one that is)"
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=10)
PY
  exec unshare --mount --propagation private env GEOCLIP_CHROOT_NS=1 "$0" "$variant" "$@"
fi

# ---- from here on: inside a private mount namespace ----
mount_system() {  # $1 = root folder
  mount -t proc proc "$1/proc"
  mount --rbind /sys "$1/sys"
  mount --rbind /dev "$1/dev"
}

carry_host_config() {  # DNS, extra CA certificates (TLS-inspecting proxies) and pip's configuration
  local root=$1
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  mkdir -p "$root/usr/local/share/ca-certificates"
  if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
    cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  fi
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
  if [ -d /etc/xdg/pip ]; then mkdir -p "$root/etc/xdg"; rm -rf "$root/etc/xdg/pip"; cp -r /etc/xdg/pip "$root/etc/xdg/pip"; fi
  return 0
}

in_root() { chroot "$ROOTFS" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

sources() {
  echo "deb $MIRROR $suite main"
  echo "deb $MIRROR $suite-updates main"
  [ "$backports" = 1 ] && echo "deb $MIRROR $suite-backports main"
  return 0
}

apt_install() {  # PKGS from the stable suite; then QGIS itself from backports where the variant asks for it
  in_root apt-get update -q >/dev/null || die "apt-get update failed inside the chroot"
  # shellcheck disable=SC2086
  in_root apt-get install -y -q --no-install-recommends $PKGS >/dev/null \
    || die "apt-get install failed inside the chroot ($ROOTFS)"
  if [ "$backports" = 1 ]; then
    in_root apt-get install -y -q --no-install-recommends -t "$suite-backports" qgis python3-qgis qgis-providers \
      >/dev/null || die "apt-get install of QGIS from $suite-backports failed inside the chroot"
  fi
  echo "$PKGS" | tr -s ' \n' ' ' > "$ROOTFS/.geoclip-packages"
}

finish_build() {  # $1 = the partial root folder, $2 = build start (SECONDS)
  sources > "$1/etc/apt/sources.list"
  rm -rf "$ROOTFS"
  mv "$1" "$ROOTFS"
  carry_host_config "$ROOTFS"
  mount_system "$ROOTFS"
  apt_install
  in_root update-ca-certificates >/dev/null
  touch "$ROOTFS/.geoclip-ready"
  echo ">> chroot ready in $((SECONDS - $2)) s"
}

# The 3.44 chroot is the 3.40 one plus QGIS from trixie-backports: when the 3.40 chroot is ready it is copied
# (its Debian base, its packages and its venv with every pinned Python package), and only QGIS is upgraded.
BASE_ROOTFS=$CACHE/qgis340
mkdir -p "$CACHE"
if [ ! -f "$ROOTFS/.geoclip-ready" ]; then
  partial=$ROOTFS.partial
  rm -rf "$partial"
  start=$SECONDS
  if [ "$variant" != qgis340 ] && [ -f "$BASE_ROOTFS/.geoclip-ready" ]; then
    echo ">> building the $variant chroot from a copy of $BASE_ROOTFS (QGIS from $suite-backports); reused on later runs"
    cp -a "$BASE_ROOTFS" "$partial" || die "could not copy $BASE_ROOTFS to $partial (disk full?)"
    rm -f "$partial/.geoclip-ready" "$partial/.geoclip-packages"
  else
    echo ">> building the $variant chroot (Debian $suite from $MIRROR) in $ROOTFS; reused on later runs"
    debootstrap --variant=minbase "$suite" "$partial" "$MIRROR" > "$CACHE/$variant-debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $CACHE/$variant-debootstrap.log"
  fi
  finish_build "$partial" "$start"
else
  carry_host_config "$ROOTFS"
  mount_system "$ROOTFS"
  if [ "$(cat "$ROOTFS/.geoclip-packages" 2>/dev/null)" != "$(echo "$PKGS" | tr -s ' \n' ' ')" ]; then
    echo ">> the chroot's package list changed: installing"
    apt_install
  fi
  in_root update-ca-certificates >/dev/null
fi

mkdir -p "$ROOTFS$INNER_REPO"
mount --bind "$REPO" "$ROOTFS$INNER_REPO"
qgis_version=$(in_root dpkg-query -W -f '${Version}' qgis)
echo ">> QGIS $qgis_version, $(in_root python3 --version) in $ROOTFS: make $*"
# GEOCLIP_PYQT6_OPTIONAL: if pip cannot install PyQt6 here, lint's PyQt6 resolution says so and skips (never on the host)
in_root env GEOCLIP_PYQT6_OPTIONAL=1 ${CI:+CI="$CI"} make -C "$INNER_REPO" VENV="$INNER_VENV" "$@"
