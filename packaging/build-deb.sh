#!/usr/bin/env bash
# make deb: builds tpmkey_<version>_<arch>.deb (and tpmkey-dbgsym_<version>_<arch>.deb with
# the split debug symbols) with dpkg-deb from a tree staged by install-files.sh, the same
# list `make install` uses. Depends comes from dpkg-shlibdeps on the staged libraries.
# Expects the release libraries to be built (make deb builds them first).
#
#   build-deb.sh [OUTDIR]     default target/package; prints the package, its size and files
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

die() {
    echo "build-deb.sh: ERROR: $*" >&2
    exit 1
}

out=$(realpath -m "${1:-target/package}")
for prog in dpkg-deb dpkg-shlibdeps dpkg-architecture objcopy strip readelf gzip; do
    command -v "$prog" >/dev/null 2>&1 || die "'$prog' not found (scripts/deps.sh build)"
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || die "no [workspace.package] version in Cargo.toml"
changelog_version=$(sed -n '1s/^tpmkey (\([^)]*\)).*/\1/p' packaging/debian/changelog)
[ "$version" = "$changelog_version" ] \
    || die "Cargo.toml says version $version, packaging/debian/changelog says $changelog_version: add a changelog entry"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

work="$out/work"
root="$work/tpmkey"
dbgroot="$work/tpmkey-dbgsym"
rm -rf "$work"
mkdir -p "$root/DEBIAN" "$dbgroot/DEBIAN"
# Staged files are 0644/0755 whatever this shell's umask; dpkg-deb makes them root:root.
umask 022
packaging/install-files.sh stage "$root" "$dbgroot" >/dev/null

# Depends from the libraries' actual needs (dpkg-shlibdeps wants a debian/control).
mkdir -p "$work/shlibs/debian"
printf 'Source: tpmkey\n\nPackage: tpmkey\nArchitecture: any\n' >"$work/shlibs/debian/control"
mapfile -t libs < <(find "$root" -type f -name '*.so' | sort)
[ "${#libs[@]}" -gt 0 ] || die "no libraries staged"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "${libs[@]}" 2>"$work/shlibdeps.err") \
    || die "dpkg-shlibdeps failed: $(cat "$work/shlibdeps.err")"
shlibs=${shlibs#shlibs:Depends=}
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
    -e "s/@SHLIBS_DEPENDS@/$shlibs/" packaging/debian/control.in >"$root/DEBIAN/control"
packaging/install-files.sh conffiles >"$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

# The debug symbols, as Debian's automatic -dbgsym packages hold them.
build_ids=$(find "$dbgroot/usr/lib/debug/.build-id" -name '*.debug' -printf '%h/%f\n' \
    | sed 's|.*/\([0-9a-f][0-9a-f]\)/\([0-9a-f]*\)\.debug$|\1\2|' | sort | tr '\n' ' ')
install -d -m 0755 "$dbgroot/usr/share/doc"
ln -s tpmkey "$dbgroot/usr/share/doc/tpmkey-dbgsym"
cat >"$dbgroot/DEBIAN/control" <<EOF
Package: tpmkey-dbgsym
Source: tpmkey
Version: $version
Auto-Built-Package: debug-symbols
Architecture: $arch
Maintainer: tpmkey maintainers <tpmkey@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$dbgroot" | cut -f1)
Depends: tpmkey (= $version)
Section: debug
Priority: optional
Description: debug symbols for tpmkey
Build-Ids: ${build_ids% }
EOF
(cd "$dbgroot" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum) >"$dbgroot/DEBIAN/md5sums"

deb="$out/tpmkey_${version}_${arch}.deb"
dbgdeb="$out/tpmkey-dbgsym_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
dpkg-deb --root-owner-group -Zxz --build "$dbgroot" "$dbgdeb" >/dev/null

echo "$deb: $(stat -c %s "$deb") bytes, installed size ${size} KiB"
echo "$dbgdeb: $(stat -c %s "$dbgdeb") bytes"
echo "Depends: $(dpkg-deb -f "$deb" Depends)"
dpkg-deb -c "$deb" | awk '{print "  " $1 " " $3 " " $6 ($7 ? " " $7 " " $8 : "")}'
