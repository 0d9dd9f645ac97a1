#!/usr/bin/env bash
# package-tests.sh - builds the .deb and .rpm (contrib/package.sh), lints them (lintian must
# report no error and no warning; rpmlint likewise, plus rpm -qip/-qlp/--scripts printed for
# review), then installs an older build of the .deb, upgrades it to this one and purges it in a
# fresh Debian 12 chroot (debootstrap from the Debian mirror; the pristine tree is cached as
# target/pkgtest/bookworm.tar so reruns take seconds): files in place, the wgmesh user created,
# `wgmesh --version` runs, instances disabled on removal, purge leaves nothing behind.
#
# Needs root, lintian, rpm, rpmlint, debootstrap, cargo-deb, cargo-generate-rpm
# (netns-tests/install-deps.sh). WGMESH_SKIP_NETNS=1 turns a missing prerequisite into SKIP.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$PWD/target/pkgtest
log() { printf '[pkg %(%T)T] %s\n' -1 "$*"; }
fail() { echo "FAIL package-tests: $*" >&2; exit 1; }
missing=()
[ "$(id -u)" = 0 ] || missing+=(root)
for c in lintian rpm rpmlint debootstrap cargo-deb cargo-generate-rpm dpkg-deb; do
    command -v "$c" >/dev/null || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "${WGMESH_SKIP_NETNS:-}" = 1 ] && { echo "SKIP package tests: missing ${missing[*]}"; exit 0; }
    fail "missing ${missing[*]}; run netns-tests/install-deps.sh (or WGMESH_SKIP_NETNS=1 to skip)"
fi
mkdir -p "$W"
t0=$SECONDS

# --- build: an older version first (for the upgrade), then this one
log "building the packages (contrib/package.sh)"
bash contrib/package.sh --deb-version 0.0.1-1 >"$W/build-old.log" 2>&1 || { cat "$W/build-old.log"; fail "package.sh (old)"; }
mv target/debian/wgmesh_0.0.1-1_*.deb "$W/old.deb"
bash contrib/package.sh >"$W/build.log" 2>&1 || { cat "$W/build.log"; fail "package.sh"; }
DEB=$(ls -t target/debian/wgmesh_*.deb | head -1)
RPM=$(ls -t target/generate-rpm/wgmesh-*.rpm | head -1)
log "built $DEB ($(du -k "$DEB" | cut -f1) KiB), $RPM ($(du -k "$RPM" | cut -f1) KiB) in $((SECONDS - t0)) s"

# --- lint
log "dpkg-deb --info / --contents"
dpkg-deb --info "$DEB" | sed -n '/Package:/,$p'
dpkg-deb --contents "$DEB" | awk '{print $1, $2, $6}'
log "lintian $DEB"
# (--show-overrides makes lintian exit non-zero for overridden tags: list them separately)
lintian --fail-on error,warning --display-info "$DEB" 2>&1 | tee "$W/lintian.txt" ||
    fail "lintian reports errors or warnings (above)"
lintian --show-overrides "$DEB" 2>&1 | grep -E '^(O|N):' | tee -a "$W/lintian.txt" || true
log "lintian: $(grep -c '^E:' "$W/lintian.txt" || true) errors, $(grep -c '^W:' "$W/lintian.txt" || true) warnings, $(grep -c '^I:' "$W/lintian.txt" || true) info, $(grep -c '^O:' "$W/lintian.txt" || true) overridden"
log "rpm -qip / -qlp / --scripts $RPM"
rpm -qip "$RPM"
rpm -qlvp "$RPM"
rpm -qp --scripts "$RPM"
rpm -qp --requires "$RPM"
log "rpmlint $RPM"
rpmlint -c netns-tests/rpmlint.toml "$RPM" | tee "$W/rpmlint.txt" || true
grep -qE '[0-9]+ packages and [0-9]+ specfiles checked; 0 errors, 0 warnings' "$W/rpmlint.txt" ||
    fail "rpmlint reports errors or warnings (above)"

# --- a fresh Debian 12 chroot
if [ ! -s "$W/bookworm.tar" ]; then
    log "debootstrap bookworm (minbase + systemd) from the Debian mirror (cached afterwards)"
    rm -rf "$W/chroot-build"
    debootstrap --variant=minbase --include=systemd bookworm "$W/chroot-build" http://deb.debian.org/debian >"$W/debootstrap.log" 2>&1 ||
        { tail -20 "$W/debootstrap.log"; fail "debootstrap"; }
    tar -C "$W/chroot-build" -cf "$W/bookworm.tar.tmp" . && mv "$W/bookworm.tar.tmp" "$W/bookworm.tar"
    rm -rf "$W/chroot-build"
fi
R=$W/chroot
cleanup() {
    local rc=$?
    for m in "$R/proc" "$R/dev"; do mountpoint -q "$m" && umount -l "$m"; done
    [ -n "${WGMESH_KEEP:-}" ] || rm -rf "$R"
    exit $rc
}
trap cleanup EXIT
rm -rf "$R"; mkdir -p "$R"
tar -C "$R" -xf "$W/bookworm.tar"
mount -t proc proc "$R/proc"; mount --bind /dev "$R/dev"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
snapshot() {
    in_root find / -xdev \( -path /proc -o -path /dev -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/log \
        -o -path /var/cache -o -path /tmp -o -path /run \) -prune -o -print | sort
}
cp /etc/resolv.conf "$R/etc/resolv.conf"
snapshot >"$W/before.txt"
cp "$W/old.deb" "$R/tmp/old.deb"; cp "$DEB" "$R/tmp/new.deb"

log "install wgmesh 0.0.1-1 in the chroot (apt resolves its dependencies from the mirror)"
in_root apt-get update -qq
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/old.deb
[ "$(in_root dpkg-query -W -f '${Version}' wgmesh)" = 0.0.1-1 ] || fail "old version not installed"
in_root getent passwd wgmesh | tee "$W/passwd.txt"
grep -q '^wgmesh:x:[0-9]*:[0-9]*:wgmesh WireGuard mesh daemon:/var/lib/wgmesh:/usr/sbin/nologin$' "$W/passwd.txt" ||
    fail "the wgmesh system user was not created by systemd-sysusers"
# an instance as an admin would set it up (enabled offline: no systemd runs in a chroot)
in_root sh -c 'umask 077; wgmesh secret new > /etc/wgmesh/wg0.secret; echo "listen-port = 51820" > /etc/wgmesh/wg0.toml'
in_root systemctl enable wgmesh@wg0.service
in_root install -d -o wgmesh -g wgmesh -m 0700 /var/lib/wgmesh
in_root sh -c 'echo state > /var/lib/wgmesh/wg0.cache'

log "upgrade to $(dpkg-deb -f "$DEB" Version)"
in_root dpkg -i /tmp/new.deb
new_version=$(dpkg-deb -f "$DEB" Version)
[ "$(in_root dpkg-query -W -f '${Version}' wgmesh)" = "$new_version" ] || fail "upgrade did not install $new_version"
for f in /usr/bin/wgmesh /usr/lib/systemd/system/wgmesh@.service /usr/lib/systemd/system/wgmesh.target \
    /usr/lib/sysusers.d/wgmesh.conf /usr/lib/modules-load.d/wgmesh.conf /etc/wgmesh/example.toml \
    /usr/share/man/man8/wgmesh.8.gz /usr/share/bash-completion/completions/wgmesh \
    /usr/share/zsh/vendor-completions/_wgmesh /usr/share/fish/vendor_completions.d/wgmesh.fish \
    /usr/share/doc/wgmesh/README.md /usr/share/doc/wgmesh/SECURITY.md /usr/share/doc/wgmesh/copyright \
    /usr/share/doc/wgmesh/changelog.Debian.gz; do
    in_root test -s "$f" || fail "$f missing after the upgrade"
done
in_root wgmesh --version | tee "$W/version.txt"
grep -qE '^wgmesh [0-9]+\.[0-9]+\.[0-9]+' "$W/version.txt" || fail "wgmesh --version"
in_root man -w wgmesh >/dev/null 2>&1 || true
in_root test -L /etc/systemd/system/multi-user.target.wants/wgmesh@wg0.service || fail "upgrade disabled wgmesh@wg0"
in_root test -s /etc/wgmesh/wg0.secret || fail "upgrade lost the secret"
# (man is not in a minimal chroot: the Documentation= check is skipped)
in_root systemd-analyze verify /usr/lib/systemd/system/wgmesh@wg0.service 2>&1 | grep -vE "Command 'man |Failed to open .*/etc/wgmesh" | tee "$W/verify.txt" || true
[ ! -s "$W/verify.txt" ] || fail "systemd-analyze verify complains about the unit (above)"

log "remove: instances disabled, secrets kept"
in_root dpkg --remove wgmesh
in_root test ! -e /etc/systemd/system/multi-user.target.wants/wgmesh@wg0.service || fail "remove left wgmesh@wg0 enabled"
in_root test -s /etc/wgmesh/wg0.secret || fail "remove (not purge) deleted the secret"
log "purge: nothing left"
in_root dpkg --purge wgmesh
in_root dpkg-query -W wgmesh 2>/dev/null && fail "wgmesh still known to dpkg after purge"
# the dependencies apt pulled in (procps) go too, so the tree can be compared
in_root env DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >/dev/null
snapshot >"$W/after.txt"
# systemd-sysusers keeps backups of the account files it edits; the user itself stays (as every
# Debian system user does: files elsewhere may belong to it)
diff "$W/before.txt" "$W/after.txt" | grep -vE '^> /etc/(passwd|group|shadow|gshadow)-$' | grep '^[<>]' >"$W/leftover.txt" || true
if [ -s "$W/leftover.txt" ]; then cat "$W/leftover.txt"; fail "purge left files behind (above)"; fi
log "chroot: install 0.0.1-1, upgrade to $new_version, remove, purge: clean ($(wc -l <"$W/before.txt") paths compared)"
log "package tests passed in $((SECONDS - t0)) s"
