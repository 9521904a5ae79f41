#!/usr/bin/env bash
# check-arch.sh <file> <x86_64|aarch64>: the ELF file is built for that machine
# (e_machine at offset 18: 0x3e x86_64, 0xb7 aarch64). `make sam-build` uses it
# to prove its x86_64 test build is x86_64 and that nothing where `sam deploy`
# reads (.aws-sam/build, the default arm64 stack's build) is.
set -euo pipefail
file=$1 want=$2
[ -f "$file" ] || { echo "check-arch: no $file" >&2; exit 2; }
magic=$(od -An -tx1 -N4 "$file" | tr -d ' \n')
[ "$magic" = 7f454c46 ] || { echo "check-arch: $file is not an ELF file" >&2; exit 1; }
machine=$(od -An -tx2 -j18 -N2 --endian=little "$file" | tr -d ' \n')
case "$machine" in
  003e) got=x86_64 ;;
  00b7) got=aarch64 ;;
  *) got="machine 0x$machine" ;;
esac
[ "$got" = "$want" ] || { echo "check-arch: $file is $got, not $want" >&2; exit 1; }
echo "check-arch: $file is $got"
