#!/usr/bin/env bash
# modernc.org/sqlite works only with the exact modernc.org/libc version its
# own go.mod names; a bump of libc by another module breaks it at run time.
set -euo pipefail
want=$(go mod graph | awk '$1 ~ /^modernc.org\/sqlite@/ && $2 ~ /^modernc.org\/libc@/ {split($2,a,"@"); print a[2]; exit}')
have=$(go list -m -f '{{.Version}}' modernc.org/libc)
if [ "$want" != "$have" ]; then
  echo "check-deps: modernc.org/sqlite wants libc $want but the build uses $have; pin libc to $want" >&2
  exit 1
fi
echo "check-deps: modernc.org/libc $have matches modernc.org/sqlite" >&2
