#!/usr/bin/env bash
# Help and errors as an operator meets them: every command's --help (and the
# top-level help, and alloc-consumer's) lists the exit codes that apply; on a
# database never migrated (or migrated by an older release) every command says
# "the schema is not there: run alloc-producer migrate" instead of raw SQL; a
# mistyped driver name in a ruleset is warned about at import and in the run's
# validation, not refused; a missing input file is a usage error (exit 2,
# "alloc-producer:" prefix).
source "$(dirname "$0")/lib.sh"

fx=$repo/tests/integration/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# exit_codes FILE: the codes the "Exit status" paragraph of a help text names, sorted.
exit_codes() {
    awk '/^Exit status/ {on = 1} on && /^$/ {exit} on' "$1" | grep -oE '(^|[ (,:])[0-5]( |$)' |
        tr -dc '0-5\n' | sort -u | tr '\n' ' '
}

# ---------------------------------------------------------------- --help lists the exit codes
want_codes() { # COMMAND WANT
    case $1 in
    top) $PRODUCER --help >"$tmp/help" 2>&1 ;;
    consumer) $CONSUMER --help >"$tmp/help" 2>&1 ;;
    *) $PRODUCER "$1" --help >"$tmp/help" 2>&1 ;;
    esac
    check_eq "$1 --help lists exit codes $2" "$(exit_codes "$tmp/help")" "$2"
}
want_codes top "0 1 2 3 4 5 "
want_codes consumer "0 1 2 "
want_codes migrate "0 1 2 "
want_codes run "0 1 2 3 4 5 "
want_codes resume "0 1 2 4 5 "
want_codes abort "0 1 2 4 "
want_codes status "0 1 2 4 "
want_codes report "0 1 2 4 "
want_codes publish "0 1 2 4 "
want_codes close-period "0 1 2 4 "
want_codes import "0 1 2 3 4 "
want_codes export "0 1 2 4 5 "
want_codes period "0 1 2 4 "
want_codes findings "0 1 2 4 "
$PRODUCER --help >"$tmp/help" 2>&1
for cmd in migrate run resume abort status report publish import close-period export period findings; do
    check "the top-level help lists $cmd" grep -qE "^  $cmd +[a-z]" "$tmp/help"
done

# ---------------------------------------------------------------- a database never migrated
use_fresh_db t_operator
use_fresh_vhost t_operator
use_fresh_redis 0
printf 'company_code\n' >"$tmp/any.csv"
# no_schema CMD ARGS...: exit 1 and exactly one line naming the command and migrate.
no_schema() {
    local cmd=$1
    $PRODUCER "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    local want="alloc-producer: $cmd: the schema is not there: run alloc-producer migrate"
    if [ $rc -eq 1 ] && [ "$(cat "$tmp/err")" = "$want" ]; then
        ok "$* on a database never migrated says to run migrate"
    else
        not_ok "$* on a database never migrated says to run migrate" "exit $rc: $(head -c 300 "$tmp/err")"
    fi
}
no_schema status
no_schema status --period 2024-03
no_schema report --period 2024-03
no_schema findings --period 2024-03
no_schema run --period 2024-03 --timeout 5
no_schema resume --run 1
no_schema abort --run 1
no_schema publish --period 2024-03
no_schema close-period --period 2024-03
no_schema export --period 2024-03 --format csv.gz
no_schema period list
no_schema period open 2024-03 --ruleset small
no_schema import --period 2024-03 --kind ledger --file "$tmp/any.csv"
no_schema import --kind projects --file "$tmp/any.csv"
no_schema import --kind ruleset --file "$fx/ruleset_small.json"

$PRODUCER migrate >/dev/null || { not_ok "migrate" "exit $?"; finish; }
last=$(sql -c "SELECT max(version) FROM schema_migration")
sql -c "DELETE FROM schema_migration WHERE version = $last" >/dev/null
prev=$(sql -c "SELECT max(version) FROM schema_migration")
$PRODUCER status >"$tmp/out" 2>"$tmp/err"
check_eq "a schema an older release made exits 1" "$?" 1
check_eq "it says which version it is at and which is needed" "$(cat "$tmp/err")" \
    "alloc-producer: status: the schema is at version $prev, this program needs version $last: run alloc-producer migrate"
# the migration itself is still applied: put its record back
sql -c "INSERT INTO schema_migration (version, name) VALUES ($last, 'restored by t_operator') ON CONFLICT DO NOTHING" >/dev/null
$PRODUCER status >"$tmp/out" 2>"$tmp/err"
check_eq "with the schema in place, status exits 0" "$?" 0

# ---------------------------------------------------------------- a mistyped driver
sed 's/"driver": "headcount"/"driver": "headcuont"/' "$fx/ruleset_small.json" >"$tmp/typo.json"
$PRODUCER import --kind ruleset --file "$tmp/typo.json" >"$tmp/out" 2>"$tmp/err"
check_eq "a ruleset with a mistyped driver is imported (exit 0) while no driver has values" "$?" 0
check "with no driver values anywhere it says the drivers are checked at run" \
    grep -qF "$tmp/typo.json: warning: no driver has values in any period yet" "$tmp/err"

$GEN --demo --period 2024-03 >"$tmp/gen.log" 2>&1 || { not_ok "demo data" "$(tail -3 "$tmp/gen.log")"; finish; }
$PRODUCER import --kind ruleset --file "$tmp/typo.json" >"$tmp/out" 2>"$tmp/err"
check_eq "a ruleset with a mistyped driver is imported (exit 0)" "$?" 0
check_eq "the import warns about the driver with no values, naming the closest one" "$(cat "$tmp/err")" \
    "$tmp/typo.json: allocation_rules[0] (M/*): warning: driver headcuont has no value in any period (did you mean headcount?); the pending rows it allocates go to #UNALLOCATED"
check_eq "the rule is stored as written" \
    "$(sql -c "SELECT driver FROM allocation_rule WHERE ruleset = 'small' AND version = 'M' AND item_code = '*'")" "headcuont"
$PRODUCER import --kind ruleset --file "$fx/ruleset_small.json" >"$tmp/out" 2>"$tmp/err"
check_eq "the right driver name gives no warning" "$(cat "$tmp/err")" ""
$PRODUCER import --kind ruleset --file "$tmp/typo.json" >/dev/null 2>&1

# the run's validation: the period's own driver values
$PRODUCER period open 2024-04 --ruleset small >/dev/null
sql -c "INSERT INTO allocation_driver SELECT '2024-04', driver, project_code, value FROM allocation_driver
        WHERE period_code = '2024-03' AND driver <> 'area'" >/dev/null
$PRODUCER run --period 2024-04 --timeout 1 >"$tmp/out" 2>"$tmp/err"
rc=$?
check "the run is not refused for it (exit $rc: timed out without consumers)" test $rc -eq 5
check "the run warns about the mistyped driver" grep -qxF \
    "alloc-producer: run: warning: allocation rule M/*: driver headcuont has no value in period 2024-04 (did you mean headcount?); the pending rows it allocates go to #UNALLOCATED" "$tmp/err"
check "the run warns about a driver with no value in its period" grep -qxF \
    "alloc-producer: run: warning: allocation rule M/OFFICE: driver area has no value in period 2024-04; the pending rows it allocates go to #UNALLOCATED" "$tmp/err"
check_eq "a warning is not recorded as the run's error" \
    "$(sql -c "SELECT coalesce(error, '~') FROM alloc_run WHERE period_code = '2024-04'")" "~"

# ---------------------------------------------------------------- a missing input file
missing() { # NAME ARGS...
    local name=$1; shift
    $PRODUCER "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 2 ] && head -n1 "$tmp/err" | grep -q "^alloc-producer: import: cannot open .*: No such file or directory$" &&
        grep -q "^usage: alloc-producer import" "$tmp/err"; then
        ok "$name: exit 2, the alloc-producer prefix and the usage"
    else
        not_ok "$name: exit 2, the alloc-producer prefix and the usage" "exit $rc: $(head -c 300 "$tmp/err")"
    fi
}
missing "a missing ledger file" import --period 2024-03 --kind ledger --file "$tmp/no-ledger.csv"
missing "a missing drivers file" import --period 2024-03 --kind drivers --file "$tmp/no-drivers.csv"
missing "a missing projects file" import --kind projects --file "$tmp/no-projects.csv"
missing "a missing ruleset file" import --kind ruleset --file "$tmp/no-ruleset.json"
missing "a missing template file" import --period 2024-03 --template-file "$tmp/no-template.json" --file "$tmp/any.csv"
$PRODUCER import --period 2024-03 --kind ledger --file "$tmp" >"$tmp/out" 2>"$tmp/err"
check_eq "a directory given as the file exits 2" "$?" 2
check "the directory is named" grep -q "^alloc-producer: import: cannot open $tmp: Is a directory" "$tmp/err"

finish
