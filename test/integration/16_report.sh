#!/usr/bin/env bash
# pgshift report NAME --html FILE --svg FILE: a real migration with a paced
# backfill (sleep_ratio 2), throttled for a while by its throttle query,
# retried after a real lock timeout (its trigger waits on an advisory lock
# the test holds), a statement retried by db:ddl after a lock timeout, and a
# phase that fails (with a hostile error message) and then passes.  The
# report is checked as XML (both files), against the database (one plotted
# point per recorded batch, one bar per phase attempt, one marker per retry),
# for its escaping, and as Chromium renders it: the screenshot has each
# chart's series colours inside that chart's box.  A migration without a
# backfill has its timeline and no rows/s chart.  An unknown NAME is exit 2.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3   # Debian's, with python3-pil (test/harness.sh PACKAGES)
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)

new_db report
export PGDATABASE=$DB
q "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, w int);
   INSERT INTO items SELECT g, g FROM generate_series(1, 20000) g;
   CREATE TABLE side (x int);
   CREATE TABLE gate (ok bool NOT NULL); INSERT INTO gate VALUES (false);
   -- the batch that updates row 15000 waits for advisory lock 42
   CREATE FUNCTION items_wait() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF NEW.id = 15000 THEN PERFORM pg_advisory_xact_lock(42); END IF;
     RETURN NEW;
   END \$\$;
   CREATE TRIGGER items_wait BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION items_wait()" >/dev/null

HOSTILE='<script>alert("x")</script> & co'
# throttled from the end of batch 3 for 1.5 s
THROTTLE="SELECT b.batches = 3 AND pg_catalog.clock_timestamp() < b.updated_at + interval '1.5 s' FROM shift.backfill b WHERE b.name = 'report_demo:fill'"
M=$(mig report_demo <<EOF
return migration {
  name = "report_demo",
  phases = {
    { name = "prep",
      up = function(db)
        db:ddl("ALTER TABLE side ADD COLUMN y int", { lock_timeout = "100ms", retries = 20, backoff = 0.05 })
      end,
      down = function(db) db:exec("ALTER TABLE side DROP COLUMN y") end },
    { name = "fill",
      up = function(db)
        db:backfill{ table = "items", set = "w = v * 2", batch_min = 2000, batch_max = 2000,
                     sleep_ratio = 2, lock_timeout_ms = 100,
                     throttle_query = [[$THROTTLE]] }
      end },
    { name = "check",
      up = function(db)
        if not db:value("SELECT ok FROM gate") then error([[$HOSTILE]], 0) end
      end,
      down = function(db) end },
  },
}
EOF
)

# the lock holder: side's lock until db:ddl has waited on it, then advisory
# lock 42 until the backfill's batch has waited on it; each held 0.3 s past
# the first waiter, longer than the waiter's 100 ms lock_timeout
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 >"$WORK/holder.out" 2>&1 <<'EOF' &
BEGIN;
LOCK TABLE side IN ACCESS SHARE MODE;
SELECT pg_advisory_lock(42);
DO $$ BEGIN
  FOR i IN 1..3000 LOOP
    EXIT WHEN EXISTS (SELECT FROM pg_locks WHERE locktype = 'relation' AND relation = 'side'::regclass AND NOT granted);
    PERFORM pg_sleep(0.01);
  END LOOP;
  PERFORM pg_sleep(0.3);
END $$;
COMMIT;
DO $$ BEGIN
  FOR i IN 1..3000 LOOP
    EXIT WHEN EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = 42
                        AND objsubid = 1 AND NOT granted);
    PERFORM pg_sleep(0.01);
  END LOOP;
  PERFORM pg_sleep(0.3);
END $$;
SELECT pg_advisory_unlock(42);
EOF
holder=$!
wait_for "the holder has its locks" 20 "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = 42 AND objsubid = 1 AND granted)"

pgshift run "$M"
expect_rc "the first run fails in phase check" 1
wait "$holder"; hrc=$?
expect_eq "the lock holder ran to its end" "$hrc" 0
q "UPDATE gate SET ok = true"
pgshift run "$M"
expect_rc "the second run finishes" 0

# what the run recorded (what the report must show)
NBATCH=$(q "SELECT count(*) FROM shift.backfill_batch WHERE job = 'report_demo:fill'")
expect_eq "the backfill ran in 10 batches" "$NBATCH" 10
NRETRIED=$(q "SELECT count(*) FROM shift.backfill_batch WHERE job = 'report_demo:fill' AND retries > 0")
expect_eq "one batch was retried after a lock timeout" "$NRETRIED" 1
NRETRY_EV=$(q "SELECT count(*) FROM shift.event WHERE migration = 'report_demo' AND kind = 'retry'")
expect_eq "db:ddl recorded its lock retries" "$(q "SELECT $NRETRY_EV >= 1")" t
expect_eq "the throttle held the job for a second or more (wall_ms beyond its rest)" \
  "$(q "SELECT max(wall_ms - ms * 3) >= 1000 FROM shift.backfill_batch WHERE job = 'report_demo:fill'")" t
NDONE=$(q "SELECT count(*) FROM shift.event WHERE migration = 'report_demo' AND kind = 'phase_done'")

# ---- an unknown migration: exit 2, nothing written
pgshift report no_such_migration --html "$WORK/none.html"
expect_rc "report of an unknown migration" 2
expect_first_line "it says so" "no migration named 'no_such_migration'"
[ ! -e "$WORK/none.html" ] && ok "no file written" || not_ok "$WORK/none.html was written"

# ---- the report
pgshift report report_demo --html "$WORK/report.html" --svg "$WORK/report.svg"
expect_rc "pgshift report --html --svg" 0
expect_in "it says where" "$OUT" "report of migration report_demo written to $WORK/report.html"

# facts: one "key value" line each, from the two files read as XML
cat >"$WORK/facts.py" <<'EOF'
import sys
import xml.etree.ElementTree as ET
SVG = '{http://www.w3.org/2000/svg}'
XH = '{http://www.w3.org/1999/xhtml}'
def classes(e):
    return (e.get('class') or '').split()
def count(root, tag, cls):
    return sum(1 for e in root.iter(SVG + tag) if cls in classes(e))
for kind, path in (('html', sys.argv[1]), ('svg', sys.argv[2])):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        print(kind, 'xml', 'bad', e)
        continue
    print(kind, 'xml', 'ok')
    charts = {}
    for e in root.iter():
        if 'chart' in classes(e) and e.get('id'):
            charts[e.get('id')] = e
    print(kind, 'charts', ' '.join(sorted(charts)))
    for cid, c in sorted(charts.items()):
        print(kind, cid, 'pt', count(c, 'circle', 'pt'))
        for cls in ('done', 'failed', 'down', 'rest', 'waiting', 'working', 'retries', 'retry', 'target'):
            print(kind, cid, cls, count(c, 'rect', cls) + count(c, 'path', cls) + count(c, 'line', cls))
        for a in ('data-points', 'data-batches', 'data-events'):
            if c.get(a) is not None:
                print(kind, cid, a, c.get(a))
    if kind == 'html':
        tds = [''.join(td.itertext()) for td in root.iter(XH + 'td')]
        print(kind, 'scripts', sum(1 for _ in root.iter(XH + 'script')) + sum(1 for _ in root.iter('script')))
        print(kind, 'hostile-td', sum(1 for t in tds if '<script>alert("x")</script> & co' in t))
        print(kind, 'external', sum(1 for e in root.iter() for a in ('src', 'href') if e.get(a)))
    print(kind, 'hostile-title', sum(1 for e in root.iter(SVG + 'title')
                                     if '<script>alert("x")</script> & co' in ''.join(e.itertext())))
EOF
FACTS=$($PY "$WORK/facts.py" "$WORK/report.html" "$WORK/report.svg" 2>&1)
# fact KIND KEY [CLASS]: the value facts.py printed for it
fact() { local k="$1 $2${3:+ $3}"
         awk -v k="$k" 'index($0, k " ") == 1 { print substr($0, length(k) + 2); exit }' <<<"$FACTS"; }
ALL="chart-duration chart-locks chart-rate chart-timeline chart-waits"
for kind in html svg; do
  expect_eq "$kind: well-formed XML" "$(fact "$kind" xml)" ok
  expect_eq "$kind: one chart of each kind" "$(fact "$kind" charts)" "$ALL"
  expect_eq "$kind: rows/s: one point per recorded batch" "$(fact "$kind" chart-rate pt)" "$NBATCH"
  expect_eq "$kind: duration: one point per recorded batch" "$(fact "$kind" chart-duration pt)" "$NBATCH"
  expect_eq "$kind: duration: the target_ms line" "$(fact "$kind" chart-duration target)" 1
  expect_eq "$kind: timeline: a bar per phase done" "$(fact "$kind" chart-timeline done)" "$NDONE"
  expect_eq "$kind: timeline: the failed attempt" "$(fact "$kind" chart-timeline failed)" 1
  expect_eq "$kind: timeline: its down" "$(fact "$kind" chart-timeline down)" 1
  expect_eq "$kind: waits: a working bar per batch" "$(fact "$kind" chart-waits working)" "$NBATCH"
  expect_eq "$kind: waits: a rest before every batch but the first" "$(fact "$kind" chart-waits rest)" \
    "$((NBATCH - 1))"
  expect_eq "$kind: waits: the throttled wait is drawn" \
    "$(q "SELECT $(fact "$kind" chart-waits waiting) >= 1")" t
  expect_eq "$kind: locks: one bar per retried batch" "$(fact "$kind" chart-locks retries)" "$NRETRIED"
  expect_eq "$kind: locks: one marker per retry event" "$(fact "$kind" chart-locks retry)" "$NRETRY_EV"
done
expect_eq "html: no script element" "$(fact html scripts)" 0
expect_eq "html: nothing external (no src, no href)" "$(fact html external)" 0
expect_eq "html: the hostile error message is text, in the events table" "$(fact html hostile-td)" 1
expect_eq "html: and in the failed bar's tooltip" "$(fact html hostile-title)" 1
expect_eq "svg: the failed bar's tooltip has it as text" "$(fact svg hostile-title)" 1
expect_not_in "svg: no <script in the file" "$(cat "$WORK/report.svg")" "<script"
HTML=$(cat "$WORK/report.html")
expect_not_in "html: no <script in the file" "$HTML" "<script"
expect_in "html: the message escaped" "$HTML" "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"
expect_in "html: the database" "$HTML" "$DB"
expect_in "html: who" "$HTML" "applied by postgres"
expect_in "html: the outcome" "$HTML" '<span class="outcome-done">done</span>, 3 of 3 phases done'
expect_in "html: when (UTC)" "$HTML" "$(q "SELECT to_char(min(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM shift.event WHERE migration = 'report_demo'") UTC to "
expect_in "html: axis labels with units" "$HTML" ">rows/s</text>"
expect_in "html: the time axis" "$HTML" ">time (seconds since "
expect_in "html: ms per batch" "$HTML" ">ms per batch</text>"

# ---- a migration without a backfill: its timeline, no rows/s chart
P=$(mig plain <<'EOF'
return migration {
  name = "plain",
  phases = {
    { name = "one", up = function(db) db:exec("CREATE TABLE plain_t (a int)") end,
      down = function(db) db:exec("DROP TABLE plain_t") end },
    { name = "two", up = function(db) db:exec("SELECT pg_sleep(0.2)") end },
  },
}
EOF
)
pgshift run "$P"
expect_rc "run plain" 0
pgshift report plain --html "$WORK/plain.html" --svg "$WORK/plain.svg"
expect_rc "report plain" 0
FACTS=$($PY "$WORK/facts.py" "$WORK/plain.html" "$WORK/plain.svg" 2>&1)
for kind in html svg; do
  expect_eq "$kind: plain: the timeline and the lock chart only" "$(fact "$kind" charts)" \
    "chart-locks chart-timeline"
  expect_eq "$kind: plain: two phases done" "$(fact "$kind" chart-timeline done)" 2
done

# ---- rendered by Chromium: each chart's colours inside its box
if [ -z "$CHROMIUM" ]; then
  not_ok "chromium is not installed (test/harness.sh deps installs it)"
else
  # shot NAME: NAME.png (the page at 1200x2000) and NAME.boxes (each chart's
  # box in page pixels, measured by the same browser on a copy of the page
  # with a script added; the report itself has none)
  shot() {
    local flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1
                 --window-size=1200,2000 --user-data-dir="$WORK/chromium" --no-first-run
                 --disable-extensions --disable-background-networking)
    sed 's|</body>|<script>var o = []; document.querySelectorAll("svg.chart").forEach(function (s) { var r = s.getBoundingClientRect(); o.push("BOX " + s.id + " " + Math.round(r.left) + " " + Math.round(r.top) + " " + Math.round(r.right) + " " + Math.round(r.bottom)); }); var p = document.createElement("pre"); p.id = "boxes"; p.textContent = o.join("\\n"); document.body.appendChild(p);</script></body>|' \
      "$WORK/$1.html" >"$WORK/$1-probe.html"
    timeout 60 "$CHROMIUM" "${flags[@]}" --dump-dom "file://$WORK/$1-probe.html" 2>/dev/null |
      grep -oE 'BOX chart-[a-z]+ -?[0-9]+ -?[0-9]+ -?[0-9]+ -?[0-9]+' | cut -d' ' -f2- >"$WORK/$1.boxes"
    timeout 60 "$CHROMIUM" "${flags[@]}" --screenshot="$WORK/$1.png" "file://$WORK/$1.html" \
      >"$WORK/$1.chromium.log" 2>&1
  }
  # colours BOXES PNG CHART #RRGGBB...: "CHART #RRGGBB count" for each colour:
  # the pixels of exactly that colour inside CHART's box
  cat >"$WORK/pixels.py" <<'EOF'
import sys
from PIL import Image
boxes = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 5:
        boxes[f[0]] = tuple(int(v) for v in f[1:])
img = Image.open(sys.argv[2]).convert('RGB')
print('size', *img.size)
chart = sys.argv[3]
if chart == 'page':
    box = (0, 0, img.size[0], img.size[1])
elif chart not in boxes:
    print(chart, 'nobox'); sys.exit(0)
else:
    box = boxes[chart]
    print(chart, 'inside', int(box[2] <= img.size[0] and box[3] <= img.size[1]))
region = img.crop(box)
colors = {}
for n, c in region.getcolors(region.size[0] * region.size[1]):
    colors[c] = n
for hexc in sys.argv[4:]:
    rgb = tuple(int(hexc[i:i + 2], 16) for i in (1, 3, 5))
    print(chart, hexc, colors.get(rgb, 0))
EOF
  shot report
  expect_eq "chromium measured the five charts" "$(cut -d' ' -f1 "$WORK/report.boxes" | tr '\n' ' ')" \
    "chart-timeline chart-rate chart-duration chart-waits chart-locks "
  if [ -s "$WORK/report.png" ]; then ok "chromium made a screenshot"; else
    not_ok "no screenshot" "$(cat "$WORK/report.chromium.log")"; fi
  # chart and the colours of its series (doc/cli.md): done, failed, down;
  # rows/s; batch work, target_ms; working, resting, waiting; retried batch,
  # statement retry
  while read -r chart colours; do
    # shellcheck disable=SC2086
    px=$($PY "$WORK/pixels.py" "$WORK/report.boxes" "$WORK/report.png" "$chart" $colours 2>&1)
    expect_eq "$chart: its box is inside the 1200x2000 screenshot" "$(awk -v c="$chart" '$1 == c && $2 == "inside" { print $3 }' <<<"$px")" 1
    found=$(awk -v c="$chart" '$1 == c && $2 ~ /^#/ && $3 >= 4 { print $2 }' <<<"$px" | tr '\n' ' ')
    if [ "$found" = "$colours " ]; then ok "$chart: the screenshot has its colours ($colours) inside its box"; else
      not_ok "$chart: colours in its box: '$found', want '$colours'" "$px"; fi
  done <<'EOF'
chart-timeline #2ca02c #d62728 #7f7f7f
chart-rate #1f77b4
chart-duration #9467bd #d62728
chart-waits #98df8a #bcbd22 #ff7f0e
chart-locks #8c564b #e377c2
EOF
  shot plain
  expect_eq "plain: chromium measured two charts" "$(cut -d' ' -f1 "$WORK/plain.boxes" | tr '\n' ' ')" \
    "chart-timeline chart-locks "
  px=$($PY "$WORK/pixels.py" "$WORK/plain.boxes" "$WORK/plain.png" chart-timeline '#2ca02c' 2>&1)
  expect_eq "plain: the timeline's done bars are in the screenshot" \
    "$(awk '$2 == "#2ca02c" { print ($3 >= 4) }' <<<"$px")" 1
  px=$($PY "$WORK/pixels.py" "$WORK/plain.boxes" "$WORK/plain.png" page '#1f77b4' '#9467bd' 2>&1)
  expect_eq "plain: no rows/s or duration series anywhere on the page" \
    "$(awk '$2 ~ /^#/ { s += $3 } END { print s + 0 }' <<<"$px")" 0
fi

# PGSHIFT_REPORT_OUT=DIR keeps the reports and screenshots to look at
if [ -n "${PGSHIFT_REPORT_OUT:-}" ]; then
  mkdir -p "$PGSHIFT_REPORT_OUT" && cp "$WORK"/*.html "$WORK"/*.svg "$WORK"/*.png "$PGSHIFT_REPORT_OUT"/ 2>/dev/null
fi
