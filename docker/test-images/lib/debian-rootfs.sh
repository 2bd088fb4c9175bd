# Shared steps of the rootfs scripts that make a Debian base (sourced, not run):
#
#   . "$(dirname "$0")/../lib/debian-rootfs.sh"
#   debian_rootfs_start <dir>          # debootstrap minbase, no docs, apt lists
#   in_target apt-get -q -y install --no-install-recommends <packages>
#   ...image-specific trimming...
#   debian_rootfs_finish <dir>         # caches, docs, logs and /dev emptied
#
# ../build hashes this file into every image with a rootfs script, so a
# change here rebuilds them. Environment: BERTH_DEBIAN_MIRROR (default
# http://deb.debian.org/debian), BERTH_DEBIAN_RELEASE (default bookworm;
# not part of the hash: `build --force` after changing it).

debian_rootfs_start() {
    target="${1:?usage: rootfs <dir>}"
    [ "$(id -u)" = 0 ] || { echo "rootfs: debootstrap needs root" >&2; exit 1; }
    command -v debootstrap >/dev/null || PATH="$PATH:/usr/sbin:/sbin"
    command -v debootstrap >/dev/null || { echo "rootfs: debootstrap not found: apt-get install debootstrap" >&2; exit 1; }
    debootstrap --variant=minbase "${BERTH_DEBIAN_RELEASE:-bookworm}" "$target" \
        "${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    # No services start inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
    chmod 0755 "$target/usr/sbin/policy-rc.d"
    # Never install docs, man pages or translations in the first place.
    cat >"$target/etc/dpkg/dpkg.cfg.d/berth-test-nodoc" <<'NODOC'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
NODOC
    in_target apt-get -q update
}

in_target() {
    chroot "$target" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
}

# A system user and group with a fixed id (the official images use 999, so
# volumes move between them and these images without a chown).
add_system_user() {
    name="$1"
    id="$2"
    home="$3"
    in_target groupadd --system --gid "$id" "$name"
    in_target useradd --system --uid "$id" --gid "$id" --home-dir "$home" --no-create-home \
        --shell /usr/sbin/nologin "$name"
}

debian_rootfs_finish() {
    in_target apt-get clean
    rm -f "$target/usr/sbin/policy-rc.d"
    rm -rf "$target"/var/lib/apt/lists/* "$target"/var/cache/apt/* "$target"/var/cache/debconf/*-old \
        "$target"/var/log/*.log "$target"/var/log/apt/* "$target"/usr/share/doc/* "$target"/usr/share/man/* \
        "$target"/usr/share/info/* "$target"/usr/share/locale/* "$target"/usr/share/lintian/* \
        "$target"/tmp/* "$target"/root/.bash_history
    # Device nodes come from Docker at run time. Only clear /dev when
    # debootstrap left nothing mounted in the target.
    if grep -q " $(realpath "$target")/" /proc/mounts; then
        echo "rootfs: something is still mounted below $target" >&2
        exit 1
    fi
    rm -rf "${target:?}"/dev/*
}
