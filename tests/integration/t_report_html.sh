#!/usr/bin/env bash
# The report as people read it: `report --by project --data-source X` (text
# table of one data source's projects) and `report --format html --out F`
# (a self-contained page with tables and an SVG chart), on a hand-written SQL
# fixture (escaping, negatives, NULLs, wide tables) and on the demo period run
# by a consumer; the demo page is then screenshot in headless Chromium and the
# PNG checked to show the chart and the table.
source "$(dirname "$0")/lib.sh"

use_fresh_db t_report_html
use_fresh_vhost t_report_html
use_fresh_redis 6
$PRODUCER migrate >/dev/null || { not_ok "migrate" "exit $?"; finish; }

tmp=$(mktemp -d)
consumer_pid=""
cleanup() {
    [ -n "$consumer_pid" ] && { kill -TERM "$consumer_pid" 2>/dev/null; wait "$consumer_pid" 2>/dev/null; }
    rm -rf "$tmp"
}
trap cleanup EXIT

# expect_rc NAME WANT_RC WANT_STDERR_RE COMMAND...
expect_rc() {
    local name=$1 want=$2 re=$3; shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -ne "$want" ]; then
        not_ok "$name" "exit $rc, want $want; stderr: $(head -c 300 "$tmp/err")"
    elif [ -n "$re" ] && ! grep -qE -- "$re" "$tmp/err"; then
        not_ok "$name" "stderr does not match '$re': $(head -c 300 "$tmp/err")"
    else
        ok "$name"
    fi
}

# ---------------------------------------------------------------- the page reader
# page.py FILE: parses the page with html.parser (tags balanced, nothing
# external) and xml.etree (well-formed), and prints a JSON summary: errors,
# external references, the tables (heading, column heads, rows with code, name,
# cell texts and classes), the chart bars (data-cents) and legend, the facts.
cat >"$tmp/page.py" <<'PY'
import json, re, sys, xml.etree.ElementTree as ET
from html.parser import HTMLParser

VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "wbr"}
EXTERNAL_TAGS = {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "image", "use"}

class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.external = [], [], []
        self.tables, self.bars, self.legend, self.facts = [], [], [], {}
        self.heading, self.text, self.cell, self.row = "", None, None, None
        self.in_legend, self.in_dd, self.dt = False, False, None
        self.svg = 0

    def handle_starttag(self, tag, attrs):
        self.check(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)
        self.begin(tag, dict(attrs))

    def handle_startendtag(self, tag, attrs):
        self.check(tag, attrs)
        self.begin(tag, dict(attrs))

    def check(self, tag, attrs):
        if tag in EXTERNAL_TAGS:
            self.external.append("<%s>" % tag)
        for k, v in attrs:
            if k in ("src", "href", "xlink:href", "srcset", "action", "poster", "data") or \
               (v and re.search(r"(https?:|//|url\()", v) and k != "xmlns"):
                self.external.append("%s=%s" % (k, v))

    def begin(self, tag, a):
        cls = a.get("class", "")
        if tag == "h2":
            self.text = ""
        elif tag == "table":
            self.tables.append({"heading": self.heading, "heads": [], "rows": []})
        elif tag == "tr" and self.tables and self.stack.count("tbody"):
            self.row = {"code": None, "name": "", "cells": [], "classes": [],
                        "formula": "formula" in cls}
            self.tables[-1]["rows"].append(self.row)
        elif tag == "th" and "thead" in self.stack:
            self.cell = ""
        elif tag == "th" and self.row is not None:
            self.row["code"] = a.get("title")
            self.cell = ""
        elif tag == "td" and self.row is not None:
            self.row["classes"].append(cls)
            self.cell = ""
        elif tag == "svg":
            self.svg += 1
        elif tag == "rect" and cls == "bar":
            self.bars.append(int(a["data-cents"]))
        elif tag == "g" and cls == "legend":
            self.in_legend = True
        elif tag == "text" and self.in_legend:
            self.text = ""
        elif tag == "dt":
            self.text = ""
        elif tag == "dd":
            self.text, self.in_dd = "", True

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes <%s>" % (tag, self.stack[-1] if self.stack else "nothing"))
        else:
            self.stack.pop()
        if tag == "h2":
            self.heading, self.text = self.text, None
        elif tag == "th" and self.cell is not None:
            if self.row is not None and "tbody" in self.stack:
                self.row["name"] = self.cell
            else:
                self.tables[-1]["heads"].append(self.cell)
            self.cell = None
        elif tag == "td" and self.cell is not None:
            self.row["cells"].append(self.cell)
            self.cell = None
        elif tag == "tr":
            self.row = None
        elif tag == "text" and self.in_legend and self.text is not None:
            self.legend.append(self.text)
            self.text = None
        elif tag == "g":
            self.in_legend = False
        elif tag == "dt":
            self.dt, self.text = self.text, None
        elif tag == "dd":
            self.facts[self.dt] = self.text
            self.text, self.in_dd = None, False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.text is not None:
            self.text += data
        if self.stack and self.stack[-1] == "style" and re.search(r"url\(|@import", data):
            self.external.append("style: url() or @import")

    def handle_decl(self, decl):
        pass

raw = open(sys.argv[1], encoding="utf-8").read()
p = Page()
p.feed(raw)
p.close()
if p.stack:
    p.errors.append("unclosed: %s" % p.stack)
try:
    ET.fromstring(raw[raw.index("<html"):])
    p.xml = True
except ET.ParseError as e:
    p.xml = False
    p.errors.append("xml: %s" % e)
json.dump({"errors": p.errors, "external": p.external, "xml": p.xml, "tables": p.tables,
           "bars": p.bars, "legend": p.legend, "facts": p.facts, "svg": p.svg,
           "https": len(re.findall(r"https?://", raw))}, sys.stdout)
PY
page() { python3 "$tmp/page.py" "$1" >"$1.json" 2>"$1.err" || echo "page.py failed: $(tail -1 "$1.err")" >"$1.json"; }
q() { python3 -c "import json,sys; p=json.load(open(sys.argv[1])); $2" "$1.json" 2>&1; }

# ---------------------------------------------------------------- fixture
# Period 2024-03 (ruleset R1), run 1 succeeded: data source B with two projects
# and #UNALLOCATED, a data source whose name needs escaping, and W with 40
# projects (wider than one block); version F has one row. The versions are the
# generator's, so that the demo period below is as `make demo` shows it.
sql >/dev/null <<'SQL'
INSERT INTO period (period_code, ruleset) VALUES ('2024-03', 'R1');
INSERT INTO report_version (version, name, include_categories) VALUES
    ('M', 'Management view', NULL), ('F', 'Finance view', '{gl,rent,salary,marketing,function}');
INSERT INTO project (project_code, company_code, data_source) VALUES
    ('P1', 'C1', 'B'), ('P2', 'C1', 'B'), ('Q1', 'C1', 'EMPTY');
INSERT INTO report_item (ruleset, item_code, name, kind, formula, sort_order) VALUES
    ('R1', 'rev', 'Revenue <net> & "gross"', 'base', NULL, 10),
    ('R1', 'cost', 'Cost', 'base', NULL, 20),
    ('R1', 'gp', 'Gross profit', 'formula', '[rev] + cost', 30),
    ('R1', 'margin', 'Margin %', 'formula', 'gp / rev', 40);
INSERT INTO alloc_run (run_id, period_code, ruleset, status, change_seq, finished_at, stage)
VALUES (1, '2024-03', 'R1', 'succeeded', 0, now(), 'done');
SELECT setval('alloc_run_run_id_seq', 1);
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount) VALUES
    (1, 'M', 'B', 'P1', 'rev', 1234567.89), (1, 'M', 'B', 'P1', 'cost', -1000000.00),
    (1, 'M', 'B', 'P1', 'gp', 234567.89), (1, 'M', 'B', 'P1', 'margin', NULL),
    (1, 'M', 'B', 'P2', 'rev', 10.00), (1, 'M', 'B', 'P2', 'cost', -20.50),
    (1, 'M', 'B', 'P2', 'gp', -10.50), (1, 'M', 'B', 'P2', 'margin', -1.05),
    (1, 'M', 'B', '#UNALLOCATED', 'cost', -12.34), (1, 'M', 'B', '#UNALLOCATED', 'gp', -12.34),
    (1, 'M', 'B', '#TOTAL', 'rev', 1234577.89), (1, 'M', 'B', '#TOTAL', 'cost', -1000032.84),
    (1, 'M', 'B', '#TOTAL', 'gp', 234545.05), (1, 'M', 'B', '#TOTAL', 'margin', NULL),
    (1, 'M', '<City & Co>', 'X&Y', 'rev', 5.00), (1, 'M', '<City & Co>', 'X&Y', 'cost', -7.00),
    (1, 'M', '<City & Co>', '#TOTAL', 'rev', 5.00), (1, 'M', '<City & Co>', '#TOTAL', 'cost', -7.00),
    (1, 'M', '<City & Co>', '#TOTAL', 'gp', -2.00),
    (1, 'F', 'B', 'P1', 'rev', 1000), (1, 'F', 'B', '#TOTAL', 'rev', 1000),
    (1, 'F', '#ALL', '#TOTAL', 'rev', 1000);
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount)
SELECT 1, 'M', 'W', 'W' || lpad(p::text, 2, '0'), 'rev', p * 100000.01 FROM generate_series(1, 40) p
UNION ALL SELECT 1, 'M', 'W', '#TOTAL', 'rev', (SELECT sum(p * 100000.01) FROM generate_series(1, 40) p);
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount)
SELECT 1, 'M', '#ALL', '#TOTAL', item_code, sum(amount) FROM report_after
WHERE run_id = 1 AND version = 'M' AND project_code = '#TOTAL' GROUP BY item_code;
SQL
[ $? -eq 0 ] || { not_ok "fixture" "the fixture SQL failed"; finish; }

# ---------------------------------------------------------------- --by project (text)
$PRODUCER report --period 2024-03 --version M --by project --data-source B >"$tmp/b.txt"
check_eq "by project: columns are B's projects, then #UNALLOCATED and #TOTAL" \
    "$(grep -m1 '^item' "$tmp/b.txt" | tr -s ' ')" "item P1 P2 #UNALLOCATED #TOTAL"
check_eq "by project: item names in sort_order" \
    "$(grep -oE '^(Revenue <net> & "gross"|Cost|Gross profit|Margin %)' "$tmp/b.txt" | tr '\n' ';')" \
    'Revenue <net> & "gross";Cost;Gross profit;Margin %;'
check "by project: thousands separators, aligned" \
    grep -qE '^Revenue <net> & "gross"  +1,234,567\.89 +10\.00 +1,234,577\.89$' "$tmp/b.txt"
check "by project: negative amounts and #UNALLOCATED" \
    grep -qE '^Cost  +-1,000,000\.00 +-20\.50 +-12\.34 +-1,000,032\.84$' "$tmp/b.txt"
check "by project: a NULL amount is n/a" grep -qE '^Margin %  +n/a +-1\.05 +n/a$' "$tmp/b.txt"
check "by project: the heading names the data source" \
    grep -q '^report of period 2024-03, run 1 (latest succeeded, not published), projects of data source B$' "$tmp/b.txt"
check_eq "by project: every column lines up (the header and rows end at the same column)" \
    "$(sed -n '/^item/,/^Margin/p' "$tmp/b.txt" | awk '{ print length($0) }' | sort -u | wc -l)" 1
check_eq "--data-source alone means --by project" \
    "$($PRODUCER report --period 2024-03 --version M --data-source B | md5sum)" "$(md5sum <"$tmp/b.txt")"
$PRODUCER report --period 2024-03 --version M --data-source W >"$tmp/w.txt"
check_eq "by project of 40 projects keeps every line within 132 columns" \
    "$(awk '{ if (length($0) > w) w = length($0) } END { print (w <= 132) }' "$tmp/w.txt")" 1
check "by project of 40 projects is wrapped into blocks of projects" grep -q '^projects 1-' "$tmp/w.txt"
check_eq "the wrapped table shows every project and #TOTAL once" \
    "$(grep '^item' "$tmp/w.txt" | tr -s ' ' '\n' | grep -cE '^(W[0-9]{2}|#TOTAL)$')" 41
check "a data source name with markup characters is taken as is" \
    grep -qE '^Cost +-7\.00 +-7\.00$' <($PRODUCER report --period 2024-03 --version M --data-source '<City & Co>')
check "a data source with projects but no rows shows no rows" \
    grep -q '^no rows$' <($PRODUCER report --period 2024-03 --version M --data-source EMPTY)
expect_rc "an unknown data source exits 4 naming it" 4 'data source ZZ is unknown' \
    $PRODUCER report --period 2024-03 --by project --data-source ZZ
expect_rc "--by project without --data-source exits 2" 2 '--by project needs --data-source' \
    $PRODUCER report --period 2024-03 --by project
expect_rc "--by with a bad value exits 2" 2 "bad --by 'city'" $PRODUCER report --period 2024-03 --by city
expect_rc "--by data-source with --data-source exits 2" 2 'goes with --by project' \
    $PRODUCER report --period 2024-03 --by data-source --data-source B
check_eq "csv with --data-source lists only that data source's rows" \
    "$($PRODUCER report --period 2024-03 --data-source B --format csv | tail -n +2 | cut -d, -f2 | sort | uniq -c | tr -s ' ')" \
    " 16 B"
check_eq "--checksum ignores --data-source" \
    "$($PRODUCER report --period 2024-03 --data-source B --checksum)" "$($PRODUCER report --period 2024-03 --checksum)"

# ---------------------------------------------------------------- html: arguments and failures
expect_rc "--format html without --out exits 2" 2 '--format html needs --out' \
    $PRODUCER report --period 2024-03 --format html
expect_rc "--out without --format html exits 2" 2 '--out goes with --format html' \
    $PRODUCER report --period 2024-03 --format csv --out "$tmp/x.html"
expect_rc "an unwritable --out exits 1 naming the file" 1 "cannot write $tmp/no/such/dir/r.html" \
    $PRODUCER report --period 2024-03 --format html --out "$tmp/no/such/dir/r.html"
expect_rc "html of an unknown period exits 4 and writes nothing" 4 'period 2030-01 does not exist' \
    $PRODUCER report --period 2030-01 --format html --out "$tmp/none.html"
check_eq "no file or temporary file is left behind by the failures" \
    "$(ls "$tmp" | grep -c 'html')" 0

# ---------------------------------------------------------------- html: the fixture page
check "html of the fixture is written" \
    $PRODUCER report --period 2024-03 --format html --out "$tmp/fx.html"
page "$tmp/fx.html"
check_eq "fixture page: parses with balanced tags and as XML" "$(q "$tmp/fx.html" 'print(p["errors"], p["xml"])')" "[] True"
check_eq "fixture page: nothing external (no script, link, image, URL)" \
    "$(q "$tmp/fx.html" 'print(p["external"], p["https"])')" "[] 0"
check "fixture page: names are HTML-escaped in the source" \
    grep -q '<th scope="row" title="rev">Revenue &lt;net&gt; &amp; &quot;gross&quot;</th>' "$tmp/fx.html"
check "fixture page: a data source name is escaped too" grep -q '<th scope="col">&lt;City &amp; Co&gt;</th>' "$tmp/fx.html"
check_eq "fixture page: tables of F and M with data sources then #ALL as columns" \
    "$(q "$tmp/fx.html" 'print([(t["heading"], t["heads"]) for t in p["tables"]])')" \
    "[('Version F — Finance view', ['Item', 'B', '#ALL']), ('Version M — Management view', ['Item', '<City & Co>', 'B', 'W', '#ALL'])]"
check_eq "fixture page: M rows are the item names in sort_order, unescaped by the parser" \
    "$(q "$tmp/fx.html" 'print([r["name"] for r in p["tables"][1]["rows"]])')" \
    "['Revenue <net> & \"gross\"', 'Cost', 'Gross profit', 'Margin %']"
check_eq "fixture page: M cost row has separators and marks negatives" \
    "$(q "$tmp/fx.html" 'r=p["tables"][1]["rows"][1]; print(r["cells"], ["neg" in c for c in r["classes"]])')" \
    "['-7.00', '-1,000,032.84', '', '-1,000,039.84'] [True, True, False, True]"
check_eq "fixture page: a NULL amount is n/a, a missing row empty, formulas in bold" \
    "$(q "$tmp/fx.html" 'r=p["tables"][1]["rows"][3]; print(r["cells"], r["formula"], p["tables"][1]["rows"][0]["formula"])')" \
    "['', 'n/a', '', 'n/a'] True False"
check_eq "fixture page: status and run facts" \
    "$(q "$tmp/fx.html" 'f=p["facts"]; print(f["Period"], "|", f["Status"], "|", f["Versions"], "|", f["Ruleset"])')" \
    "2024-03 | not published | F (Finance view), M (Management view) | R1"
# two formula items, of which only margin builds on another: the chart takes the first three items
check_eq "fixture page: the chart is of version M, the first three items over the data sources but #ALL" \
    "$(q "$tmp/fx.html" 'print(p["svg"], p["legend"], sorted(p["bars"]))')" \
    "1 ['Revenue <net> & \"gross\"', 'Cost', 'Gross profit'] [-100003284, -700, -200, 500, 23454505, 123457789, 8200000820]"

check "html --by project is written" \
    $PRODUCER report --period 2024-03 --version M --data-source B --format html --out "$tmp/fxb.html"
page "$tmp/fxb.html"
check_eq "by-project page: parses, one table of B's projects" \
    "$(q "$tmp/fxb.html" 'print(p["errors"], p["xml"], [t["heads"] for t in p["tables"]])')" \
    "[] True [['Item', 'P1', 'P2', '#UNALLOCATED', '#TOTAL']]"
check_eq "by-project page: bars for the projects and #UNALLOCATED, not #TOTAL" \
    "$(q "$tmp/fxb.html" 'print(sorted(p["bars"]))')" \
    "[-100000000, -2050, -1234, -1234, -1050, 1000, 23456789, 123456789]"

$PRODUCER publish --period 2024-03 --run 1 >/dev/null 2>&1
$PRODUCER report --period 2024-03 --format html --out "$tmp/fx.html" >/dev/null
page "$tmp/fx.html"
check_eq "after publish the page says published" "$(q "$tmp/fx.html" 'print(p["facts"]["Status"])')" "published"
check "--out replaces an existing page" grep -q 'badge good">published<' "$tmp/fx.html"

# ---------------------------------------------------------------- the demo period, run by a consumer
PERIOD=2026-10
$GEN --demo --period $PERIOD >"$tmp/gen.log" 2>&1 || { not_ok "demo data" "$(tail -3 "$tmp/gen.log")"; finish; }
$CONSUMER --threads 2 >"$tmp/consumer.log" 2>&1 &
consumer_pid=$!
if ! $PRODUCER run --period $PERIOD --timeout 60 >"$tmp/run.log" 2>&1; then
    not_ok "demo run" "$(tail -3 "$tmp/run.log")"
    finish
fi
kill -TERM "$consumer_pid" 2>/dev/null; wait "$consumer_pid" 2>/dev/null; consumer_pid=""
check "demo page is written" $PRODUCER report --period $PERIOD --format html --out "$tmp/demo.html"
page "$tmp/demo.html"
check_eq "demo page: parses with balanced tags and as XML, nothing external" \
    "$(q "$tmp/demo.html" 'print(p["errors"], p["xml"], p["external"], p["https"])')" "[] True [] 0"
check_eq "demo page: M table rows are the ruleset's item names in sort_order" \
    "$(q "$tmp/demo.html" 'print("|".join(r["name"] for r in [t for t in p["tables"] if t["heading"].startswith("Version M")][-1]["rows"]))')" \
    "$(sql -c "SELECT string_agg(name, '|' ORDER BY sort_order) FROM report_item WHERE ruleset = 'demo'")"
# every cell of the M table equals report_after's #TOTAL amount, with thousands separators
$PRODUCER report --period $PERIOD --version M --format csv >"$tmp/demo_m.csv"
check_eq "demo page: every M cell equals the run's #TOTAL amount, formatted" \
    "$(python3 - "$tmp/demo.html.json" "$tmp/demo_m.csv" <<'PY'
import csv, json, sys
from decimal import Decimal
p = json.load(open(sys.argv[1]))
want = {(r["data_source"], r["item_code"]): r["amount"] for r in csv.DictReader(open(sys.argv[2]))
        if r["project_code"] == "#TOTAL"}
t = [t for t in p["tables"] if t["heading"].startswith("Version M")][-1]  # not the findings
bad, n = [], 0
for row in t["rows"]:
    for head, cell in zip(t["heads"][1:], row["cells"]):
        a = want.get((head, row["code"]))
        w = "" if a is None else "n/a" if a == "" else "{:,.2f}".format(Decimal(a))
        n += 1
        if cell != w:
            bad.append((row["code"], head, cell, w))
print(n, bad[:3])
PY
)" "40 []"
check_eq "demo page: the chart shows Revenue, Cost and Gross profit of the 3 cities" \
    "$(q "$tmp/demo.html" 'print(p["svg"], p["legend"], len(p["bars"]))')" "1 ['Revenue', 'Cost', 'Gross profit'] 9"
check_eq "demo page: the bars are version M's values" \
    "$(q "$tmp/demo.html" 'print(sorted(p["bars"]))')" \
    "$(sql -c "SELECT '[' || string_agg((amount * 100)::bigint::text, ', ' ORDER BY amount * 100) || ']' FROM report_after a
               JOIN alloc_run r USING (run_id) WHERE r.period_code = '$PERIOD' AND version = 'M'
               AND project_code = '#TOTAL' AND data_source <> '#ALL' AND item_code IN ('REVENUE', 'COST', 'GROSS_PROFIT')")"

# ---------------------------------------------------------------- screenshot in headless Chromium
# png.py FILE: decodes the PNG with zlib (8-bit RGB or RGBA, no interlace) and
# prints: width height distinct_colours non_white_permille bar_pixels
# table_shade_rows dark_pixels_in_table_rows.
cat >"$tmp/png.py" <<'PY'
import struct, sys, zlib
from collections import Counter
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat = 8, []
while pos < len(data):
    n, typ = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    pos += 12 + n
    if typ == b"IHDR":
        w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
    elif typ == b"IDAT":
        idat.append(body)
assert depth == 8 and ctype in (2, 6) and interlace == 0, "unsupported PNG form"
bpp = 3 if ctype == 2 else 4
stride = w * bpp
raw = zlib.decompress(b"".join(idat))
HI = int.from_bytes(b"\x80" * stride, "big")
LO = int.from_bytes(b"\x7f" * stride, "big")
prev = bytes(stride)
colours, nonwhite, bars, shade_rows, dark = Counter(), 0, 0, [], []
for y in range(h):
    f = raw[y * (stride + 1)]
    cur = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for i in range(bpp, stride):
            cur[i] = (cur[i] + cur[i - bpp]) & 255
    elif f == 2:  # bytewise add without carries, on whole rows
        a, b = int.from_bytes(cur, "big"), int.from_bytes(prev, "big")
        cur = bytearray((((a & LO) + (b & LO)) ^ ((a ^ b) & HI)).to_bytes(stride, "big"))
    elif f == 3:
        for i in range(stride):
            left = cur[i - bpp] if i >= bpp else 0
            cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 255
    elif f == 4:
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = bytes(cur)
    row = Counter(zip(cur[0::bpp], cur[1::bpp], cur[2::bpp]))
    colours.update(row)
    nonwhite += w - row.get((255, 255, 255), 0)
    bars += sum(n for (r, g, b), n in row.items() if abs(r - 0x4e) < 4 and abs(g - 0x79) < 4 and abs(b - 0xa7) < 4)
    shade = sum(n for (r, g, b), n in row.items() if abs(r - 0xea) < 3 and abs(g - 0xf0) < 3 and abs(b - 0xf7) < 3)
    shade_rows.append(shade >= 40)
    dark.append(sum(n for (r, g, b), n in row.items() if max(r, g, b) < 110))
table_rows = [y for y in range(h) if shade_rows[y]]
in_table = sum(dark[y] for y in range(min(table_rows), max(table_rows) + 1)) if table_rows else 0
print(w, h, len(colours), nonwhite * 1000 // (w * h), bars, len(table_rows), in_table)
PY

shot=${ALLOC_SCREENSHOT:-$tmp/demo.png}
if ! command -v chromium >/dev/null 2>&1; then
    ok "screenshot of the demo page in headless Chromium # skipped: chromium is not installed"
else
    rm -f "$shot"
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$tmp/chromium-profile" --screenshot="$shot" --window-size=1280,1600 \
        "file://$tmp/demo.html" >"$tmp/chromium.log" 2>&1
    if [ ! -s "$shot" ]; then
        not_ok "headless Chromium writes a screenshot" "$(grep -v dbus "$tmp/chromium.log" | tail -3)"
    else
        ok "headless Chromium writes a screenshot"
        read -r width height ncolours nonwhite bars shade_rows table_dark < <(python3 "$tmp/png.py" "$shot" 2>&1)
        check_eq "the screenshot is 1280x1600" "$width x $height" "1280 x 1600"
        check "the screenshot is not blank (${ncolours:-?} colours, ${nonwhite:-?} per mille not white)" \
            test "${ncolours:-0}" -gt 50 -a "${nonwhite:-0}" -gt 30
        check "the chart is rendered (${bars:-?} pixels of the first series' blue)" test "${bars:-0}" -gt 2000
        check "the table is rendered (${shade_rows:-?} rows of the roll-up column's shade, ${table_dark:-?} dark text pixels among them)" \
            test "${shade_rows:-0}" -gt 200 -a "${table_dark:-0}" -gt 5000
    fi
fi

finish
