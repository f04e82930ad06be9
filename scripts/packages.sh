#!/usr/bin/env bash
# Builds keepwatch's release artifacts into $OUT (default dist/):
#
#   keepwatch_<version>_amd64.deb              server and agent, systemd units
#   keepwatch-agent-<version>-x64.msi          the Windows agent and its service
#   <artifact>.cdx.json                        CycloneDX SBOM of each artifact
#   SHA256SUMS                                 checksums of all of the above
#
# Reproducible: the same commit gives the same bytes, every time and on any
# machine with the same Go toolchain and Debian tools. Timestamps come from
# SOURCE_DATE_EPOCH (default: the last commit's time), GUIDs are derived
# from the version, file lists are sorted, and nothing records the build
# machine or its paths.
#
# Environment:
#   VERSION            default: scripts/version.sh (x.y.z[-pre][+build])
#   OUT                output directory (default dist in the repository)
#   SOURCE_DATE_EPOCH  default: git log -1 --format=%ct
#   SIGN_CERT, SIGN_KEY  PEM certificate (chain) and private key: Authenticode
#                      signatures on keepwatch.exe and the MSI (osslsigncode).
#                      With an RSA key the signed files are reproducible too.
#   SIGN_PASS_FILE     file holding the key's passphrase, if any
#   SIGN_URL           URL shown with the signature (optional)
# Arguments: the artifacts to build, "deb" and/or "msi" (default both).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD

VERSION=${VERSION:-$(bash scripts/version.sh)}
OUT=${OUT:-$root/dist}
abs() { case $1 in /* | "") echo "$1" ;; *) echo "$caller/$1" ;; esac; }
OUT=$(abs "$OUT")
SIGN_CERT=$(abs "${SIGN_CERT:-}") SIGN_KEY=$(abs "${SIGN_KEY:-}") SIGN_PASS_FILE=$(abs "${SIGN_PASS_FILE:-}")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export TZ=UTC LC_ALL=C
umask 022
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(deb msi)

die() { echo "packages: $*" >&2; exit 1; }
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+~][0-9A-Za-z.+~-]*)?$ ]] || die "VERSION $VERSION is not x.y.z[-pre][+build]"
[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be Unix seconds"
# Debian: no hyphen without a revision, and a pre-release sorts before its
# release with ~ (0.1.0~dev < 0.1.0).
deb_version=${VERSION/-/\~}
# Windows Installer compares the first three numeric fields.
msi_version=${VERSION%%[-+~]*}
IFS=. read -r vmaj vmin vpat <<<"$msi_version"
[ "$vmaj" -le 255 ] && [ "$vmin" -le 255 ] && [ "$vpat" -le 65535 ] || die "$msi_version exceeds what an MSI version can hold (255.255.65535)"
if [ -n "${SIGN_CERT:-}${SIGN_KEY:-}" ] && { [ -z "${SIGN_CERT:-}" ] || [ -z "${SIGN_KEY:-}" ]; }; then
  die "signing needs both SIGN_CERT and SIGN_KEY"
fi
commit=$(git rev-parse HEAD 2>/dev/null || true)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "packages: warning: uncommitted changes are built, but the version and SBOMs name commit ${commit:0:7}" >&2
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The binary: static, no paths of this machine, no VCS stamp (the SBOM
# names the commit), no build id.
gobuild() { # GOOS output
  CGO_ENABLED=0 GOOS=$1 GOARCH=amd64 GOAMD64=v1 GOFLAGS= GOEXPERIMENT= \
    go build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X keepwatch.Version=$VERSION" -o "$2" ./cmd/keepwatch
}
go build -trimpath -o "$work/sbom" ./scripts/sbom

sign() { # file
  [ -n "${SIGN_CERT:-}" ] || return 0
  local args=(sign -certs "$SIGN_CERT" -key "$SIGN_KEY" -h sha256 -n "keepwatch agent" -time "$SOURCE_DATE_EPOCH")
  [ -z "${SIGN_PASS_FILE:-}" ] || args+=(-readpass "$SIGN_PASS_FILE")
  [ -z "${SIGN_URL:-}" ] || args+=(-i "$SIGN_URL")
  osslsigncode "${args[@]}" -in "$1" -out "$1.signed" >/dev/null
  mv "$1.signed" "$1"
}

stamp() { # dir: every entry gets the source's time
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# A name-based UUID (upper case, braces left to the caller) from a string.
uuid_of() {
  local h
  h=$(printf '%s' "$1" | sha256sum | cut -c1-32)
  local variant
  variant=$(printf '%x' $(((0x${h:16:1} & 0x3) | 0x8)))
  printf '%s-%s-5%s-%s%s-%s' "${h:0:8}" "${h:8:4}" "${h:13:3}" "$variant" "${h:17:3}" "${h:20:12}" | tr a-f A-F
}

build_deb() {
  local stage=$work/deb name=keepwatch_${deb_version}_amd64.deb
  local d=$root/packaging/deb
  gobuild linux "$work/keepwatch"
  install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/systemd/system" \
    "$stage/etc/keepwatch" "$stage/usr/share/doc/keepwatch/examples"
  install -m 0755 "$work/keepwatch" "$stage/usr/bin/keepwatch"
  install -m 0644 "$d/keepwatch.service" "$d/keepwatch-agent.service" "$stage/usr/lib/systemd/system/"
  install -m 0644 "$d/keepwatch.env" "$d/agent.json" "$stage/etc/keepwatch/"
  install -m 0644 README.md docs/operations.md docs/agent.md docs/protocol.md "$stage/usr/share/doc/keepwatch/"
  install -m 0644 "$d/agent.example.json" "$stage/usr/share/doc/keepwatch/examples/agent.json"
  install -m 0755 "$d/postinst" "$d/prerm" "$d/postrm" "$stage/DEBIAN/"
  install -m 0644 "$d/conffiles" "$stage/DEBIAN/"
  (cd "$stage" && find usr -type f | sort | xargs md5sum >DEBIAN/md5sums)
  chmod 0644 "$stage/DEBIAN/md5sums"
  local size
  size=$(cd "$stage" && find usr etc -type f -printf '%s\n' | awk '{k += int(($1 + 1023) / 1024)} END {print k}')
  sed -e "s/@VERSION@/$deb_version/" -e "s/@INSTALLED_SIZE@/$size/" "$d/control" >"$stage/DEBIAN/control"
  chmod 0644 "$stage/DEBIAN/control"
  stamp "$stage"
  # dpkg-deb sorts the members and takes SOURCE_DATE_EPOCH for the ar
  # headers; one compressor thread keeps the xz stream independent of the
  # machine.
  dpkg-deb --root-owner-group -Zxz --threads-max=1 --build "$stage" "$OUT/$name" >/dev/null
  touch -d "@$SOURCE_DATE_EPOCH" "$OUT/$name"
  "$work/sbom" -binary "$work/keepwatch" -artifact "$OUT/$name" -name keepwatch -version "$deb_version" \
    -purl "pkg:deb/keepwatch@$deb_version?arch=amd64" -path /usr/bin/keepwatch \
    -commit "$commit" -time "$SOURCE_DATE_EPOCH" -o "$OUT/$name.cdx.json"
  echo "packages: $OUT/$name" >&2
}

build_msi() {
  local stage=$work/msi name=keepwatch-agent-${VERSION}-x64.msi
  local m=$root/packaging/msi
  mkdir -p "$stage"
  gobuild windows "$stage/keepwatch.exe"
  sign "$stage/keepwatch.exe"
  install -m 0644 "$m/config.json" "$stage/config.json"
  stamp "$stage"
  local product package
  product=$(uuid_of "keepwatch-agent product $VERSION")
  package=$(uuid_of "keepwatch-agent package $VERSION")
  # wixl stamps the summary information with the current time: a stopped
  # clock (libfaketime's absolute format, -f) makes it the source's time.
  (cd "$stage" && faketime -f "$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')" \
    wixl -a x64 -D ProductVersion="$msi_version" -D ProductCode="$product" \
    -o "$stage/agent.msi" "$m/keepwatch-agent.wxs")
  # What wixl cannot express, as plain Windows Installer tables and rows.
  msibuild "$stage/agent.msi" -i "$m/MsiServiceConfig.idt" -i "$m/MsiServiceConfigFailureActions.idt" \
    -i "$m/MsiLockPermissionsEx.idt" -i "$m/IniFile.idt"
  local secure="KEEPWATCH_CA;KEEPWATCH_CONSENT;KEEPWATCH_KEY;KEEPWATCH_NAME;KEEPWATCH_SERVER;KEEPWATCH_SLC;WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED"
  # The UpgradeCode of packaging/msi/keepwatch-agent.wxs: the same for
  # every version, so a new one replaces the installed one; the same version
  # again (a rebuilt pre-release) replaces it too (VersionMaxInclusive).
  local upgrade="{6F0E5C4A-3B2D-4E1F-9A8B-7C6D5E4F3A2B}"
  msibuild "$stage/agent.msi" \
    -q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Condition\`, \`Sequence\`) VALUES ('RemoveIniValues', '', 3100)" \
    -q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Condition\`, \`Sequence\`) VALUES ('WriteIniValues', '', 5100)" \
    -q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Condition\`, \`Sequence\`) VALUES ('MsiConfigureServices', 'VersionNT', 5850)" \
    -q "UPDATE \`Component\` SET \`Attributes\` = 272 WHERE \`Component\` = 'StateDir'" \
    -q "UPDATE \`Component\` SET \`Attributes\` = 400 WHERE \`Component\` = 'Config'" \
    -q "UPDATE \`Component\` SET \`Attributes\` = 272, \`Condition\` = 'KEEPWATCH_SERVER' WHERE \`Component\` = 'Enroll'" \
    -q "UPDATE \`Property\` SET \`Value\` = '$secure' WHERE \`Property\` = 'SecureCustomProperties'" \
    -q "DELETE FROM \`Upgrade\` WHERE \`ActionProperty\` = 'WIX_UPGRADE_DETECTED'" \
    -q "INSERT INTO \`Upgrade\` (\`UpgradeCode\`, \`VersionMin\`, \`VersionMax\`, \`Attributes\`, \`ActionProperty\`) VALUES ('$upgrade', '', '$msi_version', 513, 'WIX_UPGRADE_DETECTED')"
  # wixl draws the package code at random: derive it from the version.
  msibuild "$stage/agent.msi" -s "keepwatch agent" "keepwatch" "x64;1033" "{$package}"
  sign "$stage/agent.msi"
  cp "$stage/agent.msi" "$OUT/$name"
  touch -d "@$SOURCE_DATE_EPOCH" "$OUT/$name"
  "$work/sbom" -binary "$stage/keepwatch.exe" -artifact "$OUT/$name" -name keepwatch-agent -version "$VERSION" \
    -purl "pkg:generic/keepwatch-agent@$VERSION?arch=x64" -path 'ProgramFiles64Folder\keepwatch\keepwatch.exe' \
    -commit "$commit" -time "$SOURCE_DATE_EPOCH" -o "$OUT/$name.cdx.json"
  echo "packages: $OUT/$name" >&2
}

for t in "${targets[@]}"; do
  case $t in
  deb) build_deb ;;
  msi) build_msi ;;
  *) die "unknown artifact $t (deb, msi)" ;;
  esac
done

# Checksums of everything in OUT (other versions' artifacts included).
(cd "$OUT" && find . -maxdepth 1 -type f \( -name '*.deb' -o -name '*.msi' -o -name '*.cdx.json' \) -printf '%f\n' |
  sort | xargs -r sha256sum >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
touch -d "@$SOURCE_DATE_EPOCH" "$OUT"/*.cdx.json "$OUT/SHA256SUMS"
echo "packages: $OUT/SHA256SUMS" >&2
