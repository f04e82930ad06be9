#!/usr/bin/env bash
# Makes sure the tools `make packages` and the packaging tests use are
# installed, from Debian's packages (needs root): msitools and wixl (the
# MSI), osslsigncode (Authenticode), faketime (wixl's timestamps), dpkg
# (the Debian package, and installing it into a scratch root), passwd
# (useradd in that root) and systemd (systemd-analyze checks the units).
# Quick when everything is there.
set -euo pipefail

declare -A pkg=(
  [wixl]=wixl [msiinfo]=msitools [msibuild]=msitools [msiextract]=msitools
  [osslsigncode]=osslsigncode [faketime]=faketime [dpkg-deb]=dpkg
  [useradd]=passwd [groupadd]=passwd [systemd-analyze]=systemd
)
missing=()
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "ensure-packaging: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "ensure-packaging: $tool still missing" >&2; exit 1; }
done
