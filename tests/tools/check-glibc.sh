#!/usr/bin/env bash
# Fails when BINARY needs a glibc symbol version newer than MAX (default 2.34,
# the glibc of Amazon Linux 2023, which provided.al2023 runs). The stand-in base
# image of `make sam-local` carries this machine's glibc, so it can't catch that.
# Usage: check-glibc.sh BINARY [MAX]
set -euo pipefail
bin=$1 max=${2:-2.34}
needed=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)
[ -n "$needed" ] || { echo "$bin: no versioned glibc symbols (static?)"; exit 0; }
newest=$(printf '%s\n%s\n' "$needed" "$max" | sort -V | tail -n 1)
if [ "$newest" != "$max" ]; then
  echo "$bin needs GLIBC_$needed, newer than GLIBC_$max:" >&2
  objdump -T "$bin" | grep -E "GLIBC_$needed\b" | head -n 5 >&2
  exit 1
fi
echo "$bin: newest glibc symbol GLIBC_$needed (limit $max)"
