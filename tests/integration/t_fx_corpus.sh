#!/usr/bin/env bash
# The fx fuzz corpus (tests/fx/corpus, kept by `make fuzz` runs) replays through
# the fuzz target's code in the normal build, without sanitizers: no crash and no
# broken oracle (compile/serialize/evaluate round trips) on any input.
source "$(dirname "$0")/lib.sh"

corpus=$repo/tests/fx/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=$(find "$corpus" -type f | wc -l)
if [ "$n" -ge 100 ]; then ok "fx corpus holds $n inputs"; else not_ok "fx corpus holds $n inputs" "want at least 100"; fi

"$BIN/tests/test_fx" --replay "$corpus" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -q '^ok - fx replay of' "$tmp/out"; then
    ok "fx corpus replays without a crash"
else
    not_ok "fx corpus replays without a crash" "exit $rc after $(tail -n 1 "$tmp/err")"
fi
finish
