#!/usr/bin/env bash
# Export of large downloads (DESIGN.md 5.7) on real servers: `export` files a
# task and a consumer's export worker writes the file. Checks csv.gz byte for
# byte against psql's COPY of the same query (report rows, one version, the
# allocation detail), the recorded SHA-256 and row count, the run choice
# (published first), xlsx as a valid package continued on further sheets with
# every cell equal to the rows, SKIP LOCKED (two consumers, every task done
# exactly once), a worker stopped (task back in the queue) or killed (task
# claimed again once its heartbeat is stale), --wait --timeout, and the exit
# codes of bad arguments (2) and unknown period, run, version or task (4).
source "$(dirname "$0")/lib.sh"
use_fresh_db t_export
use_fresh_vhost t_export
use_fresh_redis 7
PERIOD=2026-10
LOGS=$repo/.run/test-logs/t_export
rm -rf "$LOGS"
mkdir -p "$LOGS"
export ALLOC_FILE_STORE=$LOGS/files
tmp=$(mktemp -d)

consumers=()
# start_consumer LOG [VAR=VALUE...]: a consumer with one thread (and test knobs).
start_consumer() {
    local log=$1
    shift
    env "$@" "$CONSUMER" --threads 1 >"$LOGS/$log.log" 2>&1 &
    consumers+=($!)
}
stop_consumers() {
    local p
    for p in "${consumers[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${consumers[@]}"; do wait "$p" 2>/dev/null; done
    consumers=()
}
trap 'stop_consumers; rm -rf "$tmp"' EXIT

# task_field ID COLUMN
task_field() { sql -c "SELECT $2 FROM export_task WHERE task_id = $1"; }
# wait_status ID STATUS SECONDS: polls until the task has STATUS.
wait_status() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [ "$(task_field "$1" status)" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# copy_of QUERY: psql's CSV of the query, with header.
copy_of() { psql -X -q -v ON_ERROR_STOP=1 -d "$ALLOC_PG_DSN" -c "\\copy ($1) TO STDOUT WITH (FORMAT csv, HEADER)"; }

"$PRODUCER" migrate >/dev/null || { not_ok "migrate"; finish; }
"$GEN" --scale 0.01 --seed 5 --period $PERIOD >"$LOGS/gen.log" 2>&1 || { not_ok "generate" "$(tail -3 "$LOGS/gen.log")"; finish; }

# ---------------------------------------------------------------- usage and refusals
expect_exit() { # NAME WANT ARGS...
    local name=$1 want=$2
    shift 2
    "$PRODUCER" export "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" = "$want" ] && { [ "$want" = 0 ] || [ -s "$tmp/err" ]; }; then
        ok "$name"
    else
        not_ok "$name" "exit $rc (want $want), stderr: $(head -c 300 "$tmp/err")"
    fi
}
expect_exit "export --help exits 0" 0 --help
expect_exit "no --period: exit 2" 2 --format csv.gz
expect_exit "no --format: exit 2" 2 --period $PERIOD
expect_exit "bad format: exit 2" 2 --period $PERIOD --format csv
expect_exit "bad period: exit 2" 2 --period 2026-13 --format csv.gz
expect_exit "bad run id: exit 2" 2 --period $PERIOD --format csv.gz --run x
expect_exit "unknown argument: exit 2" 2 --period $PERIOD --format csv.gz --bogus
expect_exit "--timeout without --wait: exit 2" 2 --period $PERIOD --format csv.gz --timeout 3
expect_exit "--status with filing flags: exit 2" 2 --status 1 --period $PERIOD
expect_exit "bad task id: exit 2" 2 --status abc
expect_exit "--json without --status: exit 2" 2 --period $PERIOD --format csv.gz --json
expect_exit "unknown period: exit 4" 4 --period 2031-01 --format csv.gz
expect_exit "period without a succeeded run: exit 4" 4 --period $PERIOD --format csv.gz
expect_exit "unknown task: exit 4" 4 --status 999999
check_eq "refusals filed no task" "$(sql -c "SELECT count(*) FROM export_task")" 0

# ---------------------------------------------------------------- the run
# Segments of 7,000 rows (so the keyset pagination turns many pages and chunk
# boundaries fall inside segments) and xlsx sheets of 20,000 rows.
start_consumer main ALLOC_EXPORT_SEGMENT_ROWS=7000 ALLOC_EXPORT_SHEET_ROWS=20000
"$PRODUCER" run --period $PERIOD --detail --timeout 300 >"$LOGS/run1.out" 2>"$LOGS/run1.err" || { not_ok "run --detail" "$(tail -3 "$LOGS/run1.err")"; finish; }
run1=$(sql -c "SELECT max(run_id) FROM alloc_run WHERE status = 'succeeded'")
after_rows=$(sql -c "SELECT count(*) FROM report_after WHERE run_id = $run1")
detail_rows=$(sql -c "SELECT count(*) FROM alloc_detail WHERE run_id = $run1")
check "the run has report and detail rows ($after_rows, $detail_rows)" test "$after_rows" -gt 20000 -a "$detail_rows" -gt 20000

expect_exit "unknown run: exit 4" 4 --period $PERIOD --format csv.gz --run 999
expect_exit "unknown version: exit 4" 4 --period $PERIOD --format csv.gz --version Z

REPORT_SQL="SELECT version, data_source, project_code, item_code, amount FROM report_after WHERE run_id = $run1 ORDER BY version COLLATE \"C\", data_source COLLATE \"C\", project_code COLLATE \"C\", item_code COLLATE \"C\""
DETAIL_SQL="SELECT version, entry_id, project_code, amount FROM alloc_detail WHERE run_id = $run1 ORDER BY version COLLATE \"C\", entry_id, project_code COLLATE \"C\""

# ---------------------------------------------------------------- csv.gz of the report
out=$("$PRODUCER" export --period $PERIOD --format csv.gz --wait --timeout 60 2>"$tmp/err")
check_eq "export csv.gz --wait exits 0" "$?" 0
task=$(awk '$1 == "task" { print $2 }' <<<"$out")
path=$(awk '$1 == "path" { print $2 }' <<<"$out")
check_eq "the task id comes first" "$(head -1 <<<"$out")" "task $task"
check_eq "the run chosen is the latest succeeded" "$(awk '$1 == "run" { print $2 }' <<<"$out")" "$run1"
check_eq "the file is PERIOD/TASK.csv.gz under the file store" "$path" "$(cd "$ALLOC_FILE_STORE" && pwd)/$PERIOD/$task.csv.gz"
check "the file is a valid gzip file" gunzip -t "$path"
gunzip -c "$path" >"$tmp/report.csv"
check_eq "header" "$(head -1 "$tmp/report.csv")" "version,data_source,project_code,item_code,amount"
check_eq "row count equals report_after's" "$(($(wc -l <"$tmp/report.csv") - 1))" "$after_rows"
check_eq "printed row count" "$(awk '$1 == "rows" { print $2 }' <<<"$out")" "$after_rows"
if python3 - "$tmp/report.csv" 4 <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8')))[1:]
keys = [tuple(f.encode() for f in r[:int(sys.argv[2])]) for r in rows]
sys.exit(0 if all(a < b for a, b in zip(keys, keys[1:])) else 1)
PY
then ok "rows in key order (byte order, strictly increasing)"; else not_ok "rows in key order (byte order, strictly increasing)"; fi
copy_of "$REPORT_SQL" >"$tmp/report.copy"
if cmp -s "$tmp/report.csv" "$tmp/report.copy"; then ok "content equals psql COPY of the same query"
else not_ok "content equals psql COPY of the same query" "$(diff "$tmp/report.csv" "$tmp/report.copy" | head -5)"; fi
check_eq "recorded sha256 equals sha256sum of the file" "$(task_field "$task" sha256)" "$(sha256sum "$path" | cut -d' ' -f1)"
check_eq "printed sha256 is the recorded one" "$(awk '$1 == "sha256" { print $2 }' <<<"$out")" "$(task_field "$task" sha256)"
check_eq "task row: done, rows, path, run, one attempt, finished" \
    "$(task_field "$task" "status || ' ' || row_count || ' ' || path || ' ' || run_id || ' ' || attempts || ' ' || (finished_at IS NOT NULL)")" \
    "done $after_rows $path $run1 1 true"
check_eq "export --status shows it done" "$("$PRODUCER" export --status "$task" | awk '$1 == "status" { print $2 }')" done
check_eq "export --status --json" "$("$PRODUCER" export --status "$task" --json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["status"], o["rows"], o["sha256"] == sys.argv[1])' "$(task_field "$task" sha256)")" "done $after_rows True"
check_eq "no temporary file left" "$(find "$ALLOC_FILE_STORE" -name '*.tmp' | wc -l)" 0

# ---------------------------------------------------------------- one version; the detail
out=$("$PRODUCER" export --period $PERIOD --version M --format csv.gz --wait --timeout 60 2>"$tmp/err")
check_eq "export --version M exits 0" "$?" 0
copy_of "SELECT version, data_source, project_code, item_code, amount FROM report_after WHERE run_id = $run1 AND version = 'M' ORDER BY data_source COLLATE \"C\", project_code COLLATE \"C\", item_code COLLATE \"C\"" >"$tmp/m.copy"
if gunzip -c "$(awk '$1 == "path" { print $2 }' <<<"$out")" | cmp -s - "$tmp/m.copy"; then ok "--version M equals COPY of version M"; else not_ok "--version M equals COPY of version M"; fi

out=$("$PRODUCER" export --period $PERIOD --detail --format csv.gz --wait --timeout 60 2>"$tmp/err")
check_eq "export --detail csv.gz exits 0" "$?" 0
dpath=$(awk '$1 == "path" { print $2 }' <<<"$out")
gunzip -c "$dpath" >"$tmp/detail.csv"
check_eq "detail header" "$(head -1 "$tmp/detail.csv")" "version,entry_id,project_code,amount"
check_eq "detail row count equals alloc_detail's" "$(($(wc -l <"$tmp/detail.csv") - 1))" "$detail_rows"
copy_of "$DETAIL_SQL" >"$tmp/detail.copy"
if cmp -s "$tmp/detail.csv" "$tmp/detail.copy"; then ok "detail equals psql COPY of the same query"
else not_ok "detail equals psql COPY of the same query" "$(diff "$tmp/detail.csv" "$tmp/detail.copy" | head -5)"; fi
check_eq "detail sha256 recorded" "$(sql -c "SELECT sha256 FROM export_task WHERE path = '$dpath'")" "$(sha256sum "$dpath" | cut -d' ' -f1)"

# ---------------------------------------------------------------- xlsx
# xlsx_check FILE COPY_CSV SHEET_ROWS: the package opens, every sheet starts
# with the header, sheets hold at most SHEET_ROWS rows, and every cell equals
# the COPY rows (text as text, numbers as numbers, a NULL amount as no cell).
xlsx_check() {
    python3 - "$@" <<'PY'
import csv, re, sys, zipfile
import xml.etree.ElementTree as ET
path, copy_csv, sheet_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = list(csv.reader(open(copy_csv, newline='', encoding='utf-8')))
header, want = want[0], want[1:]
z = zipfile.ZipFile(path)
bad = z.testzip()
if bad:
    sys.exit(f"corrupt member {bad}")
names = sorted((n for n in z.namelist() if re.fullmatch(r'xl/worksheets/sheet\d+\.xml', n)),
               key=lambda n: int(re.search(r'\d+', n.rsplit('/', 1)[1]).group()))
if not names or names[0] != 'xl/worksheets/sheet1.xml':
    sys.exit(f"no sheet1.xml: {names}")
ns = '{http://schemas.openxmlformats.org/spreadsheetml/2006/main}'
def col_index(ref):
    letters = re.match(r'[A-Z]+', ref).group()
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1
got, row_elements = [], 0
for name in names:
    data = z.read(name)
    row_elements += data.count(b'<row ')
    rows = ET.fromstring(data).find(ns + 'sheetData')
    if len(rows) > sheet_rows:
        sys.exit(f"{name}: {len(rows)} rows, more than {sheet_rows}")
    for i, row in enumerate(rows):
        cells = [None] * len(header)
        for c in row:
            t = c.find(ns + 'is/' + ns + 't')
            cells[col_index(c.get('r'))] = t.text if t is not None else float(c.find(ns + 'v').text)
        if i == 0:
            if cells != header:
                sys.exit(f"{name}: header {cells}")
        else:
            got.append(cells)
if len(got) != len(want) or row_elements != len(want) + len(names):
    sys.exit(f"{len(got)} data rows ({row_elements} <row> elements in {len(names)} sheets), want {len(want)}")
for k, (g, w) in enumerate(zip(got, want)):
    for gv, wv in zip(g, w):
        same = (gv is None and wv == '') or (isinstance(gv, float) and wv != '' and abs(gv - float(wv)) < 1e-6) or gv == wv
        if not same:
            sys.exit(f"row {k + 1}: got {g}, want {w}")
print(len(names))
PY
}
out=$("$PRODUCER" export --period $PERIOD --format xlsx --wait --timeout 60 2>"$tmp/err")
check_eq "export xlsx exits 0" "$?" 0
xpath=$(awk '$1 == "path" { print $2 }' <<<"$out")
check_eq "the xlsx file is PERIOD/TASK.xlsx" "${xpath##*/}" "$(awk '$1 == "task" { print $2 }' <<<"$out").xlsx"
sheets=$(xlsx_check "$xpath" "$tmp/report.copy" 20000 2>&1)
check_eq "xlsx opens, continues on further sheets of at most 20,000 rows, every cell equals the rows" "$sheets" $(((after_rows + 19998) / 19999))
check_eq "xlsx row count recorded" "$(awk '$1 == "rows" { print $2 }' <<<"$out")" "$after_rows"
check_eq "xlsx sha256 recorded" "$(awk '$1 == "sha256" { print $2 }' <<<"$out")" "$(sha256sum "$xpath" | cut -d' ' -f1)"
out=$("$PRODUCER" export --period $PERIOD --detail --format xlsx --wait --timeout 60 2>"$tmp/err")
check_eq "export --detail xlsx exits 0" "$?" 0
sheets=$(xlsx_check "$(awk '$1 == "path" { print $2 }' <<<"$out")" "$tmp/detail.copy" 20000 2>&1)
check_eq "detail xlsx: every sheet and cell right" "$sheets" $(((detail_rows + 19998) / 19999))

# ---------------------------------------------------------------- run choice
# Publish run 1, then a run without --detail: the default is the published run,
# and --detail of the new run is refused.
"$PRODUCER" publish --period $PERIOD --force >/dev/null 2>&1 || not_ok "publish run $run1"
"$PRODUCER" run --period $PERIOD --timeout 300 >"$LOGS/run2.out" 2>"$LOGS/run2.err" || not_ok "second run" "$(tail -3 "$LOGS/run2.err")"
run2=$(sql -c "SELECT max(run_id) FROM alloc_run WHERE status = 'succeeded'")
out=$("$PRODUCER" export --period $PERIOD --format csv.gz 2>"$tmp/err")
check_eq "without --wait: prints the task at once, run = the published one" "$(sed -n 2p <<<"$out")" "run $run1 (published)"
t_pub=$(awk '$1 == "task" { print $2 }' <<<"$out")
out=$("$PRODUCER" export --period $PERIOD --run "$run2" --format csv.gz --wait --timeout 60 2>"$tmp/err")
check_eq "--run picks the run" "$(sed -n 2p <<<"$out")" "run $run2 (chosen with --run)"
expect_exit "--detail of a run made without --detail: exit 4" 4 --period $PERIOD --run "$run2" --detail --format csv.gz
check "the published run's task is done" wait_status "$t_pub" done 30
check_eq "the published run's export is run $run1's rows" "$(gunzip -c "$(task_field "$t_pub" path)" | cmp -s - "$tmp/report.copy" && echo same)" same
stop_consumers

# ---------------------------------------------------------------- a failing export
# The file store is a regular file: the worker cannot create the directory.
: >"$tmp/not-a-dir"
start_consumer bad-store ALLOC_FILE_STORE="$tmp/not-a-dir"
"$PRODUCER" export --period $PERIOD --format csv.gz --wait --timeout 30 >"$tmp/out" 2>"$tmp/err"
check_eq "a failed export: --wait exits 1" "$?" 1
t_bad=$(awk '$1 == "task" { print $2 }' "$tmp/out")
if grep -q "task $t_bad failed: creating the directory" "$tmp/err"; then ok "a failed export: stderr names the task and why"
else not_ok "a failed export: stderr names the task and why" "$(cat "$tmp/err")"; fi
check_eq "a failed export: the task is failed with the error" "$(task_field "$t_bad" "status || ' ' || (error LIKE 'creating the directory%')")" "failed true"
stop_consumers

# ---------------------------------------------------------------- no worker: --timeout
"$PRODUCER" export --period $PERIOD --format csv.gz --wait --timeout 1 >"$tmp/out" 2>"$tmp/err"
check_eq "--wait --timeout with no worker exits 5" "$?" 5
t_wait=$(awk '$1 == "task" { print $2 }' "$tmp/out")
check_eq "the task stays queued" "$(task_field "$t_wait" status)" queued

# ---------------------------------------------------------------- SKIP LOCKED
# Two consumers and four queued tasks (the one above and three more): each
# task done exactly once, by one claim.
for i in 1 2 3; do "$PRODUCER" export --period $PERIOD --format csv.gz >/dev/null 2>&1; done
start_consumer skip-a
start_consumer skip-b
all_done=0
for ((i = 0; i < 300; i++)); do
    [ "$(sql -c "SELECT count(*) FROM export_task WHERE status IN ('queued', 'running')")" = 0 ] && { all_done=1; break; }
    sleep 0.1
done
check_eq "two consumers finish every queued task" "$all_done" 1
check_eq "every task claimed once" "$(sql -c "SELECT count(*) FROM export_task WHERE attempts <> 1")" 0
dups=$(cat "$LOGS"/skip-*.log | grep -o 'export task [0-9]* done' | sort | uniq -d | wc -l)
done_lines=$(cat "$LOGS"/skip-*.log | grep -c 'export task [0-9]* done')
check_eq "each of the 4 tasks done exactly once across both consumers" "$done_lines/$dups" "4/0"
stop_consumers

# ---------------------------------------------------------------- stop and kill mid-export
# A slow export (segments of 1,000 rows, 200 ms apart: about 7 s).
slow=(ALLOC_EXPORT_SEGMENT_ROWS=1000 ALLOC_EXPORT_SEGMENT_PAUSE_MS=200)
t_stop=$("$PRODUCER" export --period $PERIOD --run "$run1" --detail --format csv.gz 2>/dev/null | awk '$1 == "task" { print $2 }')
start_consumer stop "${slow[@]}"
check "the task is claimed" wait_status "$t_stop" running 10
sleep 0.5
kill -TERM "${consumers[0]}"
wait "${consumers[0]}"
check_eq "SIGTERM mid-export: the consumer exits 0" "$?" 0
consumers=()
check_eq "SIGTERM mid-export: the task is queued again, the attempt not counted" "$(task_field "$t_stop" "status || ' ' || attempts || ' ' || (claimed_by IS NULL)")" "queued 0 true"
check_eq "SIGTERM mid-export: no file left" "$(find "$ALLOC_FILE_STORE" -name "$t_stop.csv.gz" -o -name ".$t_stop.csv.gz.*" | wc -l)" 0

start_consumer kill "${slow[@]}"
check "the task is claimed again" wait_status "$t_stop" running 10
sleep 0.5
kill -KILL "${consumers[0]}"
wait "${consumers[0]}" 2>/dev/null
consumers=()
check_eq "SIGKILL mid-export: the task stays running" "$(task_field "$t_stop" status)" running
check_eq "SIGKILL mid-export: its temporary file remains" "$(find "$ALLOC_FILE_STORE" -name ".$t_stop.csv.gz.1.tmp" | wc -l)" 1
start_consumer reclaim ALLOC_EXPORT_STALE_SECONDS=2
reclaimer=${consumers[0]}
check "a stale heartbeat: the task is claimed again and done" wait_status "$t_stop" done 30
check_eq "re-claimed: second attempt, by the new consumer" "$(task_field "$t_stop" "attempts || ' ' || split_part(claimed_by, ':', 2)")" "2 $reclaimer"
if gunzip -c "$(task_field "$t_stop" path)" | cmp -s - "$tmp/detail.copy"; then ok "the re-claimed export is whole"; else not_ok "the re-claimed export is whole"; fi
check_eq "the dead attempt's temporary file is removed" "$(find "$ALLOC_FILE_STORE" -name '*.tmp' | wc -l)" 0
stop_consumers

# ---------------------------------------------------------------- a database not in byte order
# With an ICU en-US default collation ('a' < 'b' < 'B'), the keys are still
# exported in byte order ('B' < 'a'), across segments of 3 rows.
if pg_admin -c "DROP DATABASE IF EXISTS t_export_icu WITH (FORCE)" \
    -c "CREATE DATABASE t_export_icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.utf8'" >/dev/null 2>&1; then
    ALLOC_PG_DSN="${ALLOC_PG_DSN/dbname=t_export/dbname=t_export_icu}"
    "$PRODUCER" migrate >/dev/null || not_ok "migrate the ICU database"
    sql >/dev/null <<'SQL'
INSERT INTO period (period_code, ruleset) VALUES ('2026-10', 'R');
INSERT INTO alloc_run (run_id, period_code, ruleset, status, detail) VALUES (1, '2026-10', 'R', 'succeeded', true);
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount)
SELECT 1, v, ds, p, i, 1.25 FROM unnest(ARRAY['M', 'F']) v, unnest(ARRAY['b', 'B', 'a', '#ALL', 'A b']) ds,
       unnest(ARRAY['p', 'P', '#TOTAL', 'Ä']) p, unnest(ARRAY['x', 'X', 'y,z']) i;
INSERT INTO alloc_detail (run_id, version, entry_id, project_code, amount)
SELECT 1, v, e, p, -0.5 FROM unnest(ARRAY['M', 'm']) v, generate_series(1, 12) e, unnest(ARRAY['p', 'P', 'q']) p;
SQL
    start_consumer icu ALLOC_EXPORT_SEGMENT_ROWS=3
    out=$("$PRODUCER" export --period $PERIOD --format csv.gz --wait --timeout 30 2>"$tmp/err")
    copy_of "SELECT version, data_source, project_code, item_code, amount FROM report_after WHERE run_id = 1 ORDER BY version COLLATE \"C\", data_source COLLATE \"C\", project_code COLLATE \"C\", item_code COLLATE \"C\"" >"$tmp/icu.copy"
    if gunzip -c "$(awk '$1 == "path" { print $2 }' <<<"$out")" | cmp -s - "$tmp/icu.copy"; then ok "ICU database: report rows in byte order, equal to COPY"
    else not_ok "ICU database: report rows in byte order, equal to COPY" "$(cat "$tmp/err")"; fi
    out=$("$PRODUCER" export --period $PERIOD --detail --format csv.gz --wait --timeout 30 2>"$tmp/err")
    copy_of "SELECT version, entry_id, project_code, amount FROM alloc_detail WHERE run_id = 1 ORDER BY version COLLATE \"C\", entry_id, project_code COLLATE \"C\"" >"$tmp/icu-detail.copy"
    if gunzip -c "$(awk '$1 == "path" { print $2 }' <<<"$out")" | cmp -s - "$tmp/icu-detail.copy"; then ok "ICU database: detail rows in byte order, equal to COPY"
    else not_ok "ICU database: detail rows in byte order, equal to COPY" "$(cat "$tmp/err")"; fi
    stop_consumers
else
    ok "ICU database: skipped (the server cannot create an ICU database)"
fi

finish
