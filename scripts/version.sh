#!/usr/bin/env bash
# Prints the version of a build: keepwatch.Version, and for a development
# version (x.y.z-dev) the commit's UTC time and hash as build metadata, so
# that successive builds sort in commit order and name their source:
# 0.1.0-dev+20261130162600.300d8fb.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(sed -n 's/^var Version = "\(.*\)"$/\1/p' keepwatch.go)
[ -n "$base" ] || { echo "version: no Version in keepwatch.go" >&2; exit 1; }
if [[ $base == *-dev ]] && git rev-parse --verify -q HEAD >/dev/null; then
  base+="+$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd).$(git rev-parse --short=7 HEAD)"
fi
echo "$base"
