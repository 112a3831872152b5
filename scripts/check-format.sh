#!/bin/sh
# check-format.sh [--fix]: checks that every C source and header of the tree is formatted as
# .clang-format says, with clang-format 14 (another major version formats some constructs
# differently, so the version is pinned). Prints the files that differ and exits 1 if any does.
# With --fix, formats them in place instead (`make format`).
set -eu
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format-14}
if ! command -v "$cf" >/dev/null 2>&1; then
    echo "check-format: $cf is missing (apt-get install clang-format-14, or make deps)" >&2
    exit 1
fi
# The tracked files in a git checkout, every file otherwise (a release tarball).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files '*.c' '*.h')
else
    files=$(find proto server client tests scripts docs -name '*.[ch]' | sort)
fi
if [ "${1:-}" = "--fix" ]; then
    # shellcheck disable=SC2086
    "$cf" -i $files
    exit 0
fi
bad=0
for f in $files; do
    if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "check-format: $f is not formatted (make format)"
        bad=$((bad + 1))
    fi
done
n=$(echo "$files" | wc -w)
echo "check-format: $((n - bad)) of $n files formatted as .clang-format says"
[ "$bad" -eq 0 ]
