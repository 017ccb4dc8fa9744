#!/usr/bin/env bash
# The newest Python at least MAJOR.MINOR on this machine: scripts/find-python.sh 3.12
# Looks on PATH, then in pyenv's versions (a pyenv shim with no version selected does not count).
# Prints its path, or nothing and exits 1.
set -uo pipefail
want=${1:?usage: find-python.sh MAJOR.MINOR}
candidates=(python3.14 python3.13 python3.12 python3)
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
mapfile -t -O ${#candidates[@]} candidates < <(printf '%s\n' "$root"/versions/3.*/bin/python3 | sort -rV)
for p in "${candidates[@]}"; do
  path=$(command -v "$p" 2>/dev/null) || continue
  "$path" -c "import sys; sys.exit(sys.version_info[:2] < tuple(map(int, '$want'.split('.'))))" 2>/dev/null || continue
  # a pyenv shim resolves to whatever pyenv selects at run time: use the interpreter itself
  "$path" -c 'import sys; print(sys.executable)'
  exit 0
done
exit 1
