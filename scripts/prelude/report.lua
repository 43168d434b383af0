-- scripts/prelude/report.lua: `pgshift report NAME`, a run report with
-- charts drawn from what the database recorded for migration NAME: its
-- phases and events (shift.phase_status, shift.history), its backfill jobs
-- and their batches (shift.backfill_progress, shift.backfill_batches).  R.report returns one
-- self-contained HTML page (inline SVG and CSS: no script, no network, no
-- other file) and one SVG document holding the same charts; report.c writes
-- them.  Every text that comes from the database is escaped for XML (esc), so
-- that a name or an error message shows as text and never becomes markup;
-- both documents are well-formed XML.

local C, P = ...
local R = {}

-- ---------------------------------------------------------------------------
-- What the database recorded
-- ---------------------------------------------------------------------------

local MIGRATION_SQL = [[
SELECT s.migration, s.status, s.operation, s.phases_done, s.nphases,
       s.last_error, s.last_error_sqlstate, s.last_error_phase,
       s.applied_by::text AS applied_by, s.owner::text AS owner, s.runner_version,
       s.script_path, s.script_sha256,
       pg_catalog.current_database()::text AS database,
       pg_catalog.current_setting('server_version') AS server_version,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())::float8 AS now
  FROM shift.status s
 WHERE s.migration OPERATOR(pg_catalog.=) $1]]

local PHASES_SQL = [[
SELECT p.ordinal, p.name, p.status, p.attempts, p.reversible, p.rows_affected,
       pg_catalog.date_part('epoch', p.started_at)::float8 AS started,
       pg_catalog.date_part('epoch', p.finished_at)::float8 AS finished,
       p.error_message, p.error_sqlstate
  FROM shift.phase_status p
 WHERE p.migration OPERATOR(pg_catalog.=) $1
 ORDER BY p.ordinal]]

local EVENTS_SQL = [[
SELECT e.id, pg_catalog.date_part('epoch', e.at)::float8 AS t, e.phase, e.kind,
       e.message, e.sqlstate, e.role::text AS role, e.host
  FROM shift.history e
 WHERE e.migration OPERATOR(pg_catalog.=) $1
 ORDER BY e.id]]

local JOBS_SQL = [[
SELECT b.name, b.relation::text AS relation, b.phase, b.state, b.target_ms, b.sleep_ratio,
       b.lock_timeout_ms, b.max_retries, b.has_throttle_query,
       b.max_lag::text AS max_lag, b.throttled, b.rows_done, b.keys_done, b.batches, b.retries,
       b.last_error
  FROM shift.backfill_progress b
 WHERE b.migration OPERATOR(pg_catalog.=) $1
 ORDER BY b.created_at, b.name]]

-- at is when the batch committed; ms its work; wall_ms the wall-clock time
-- since the previous batch of its run committed (rests, throttling and retry
-- backoff included), or since its run began
local BATCHES_SQL = [[
SELECT bb.job, bb.batch, pg_catalog.date_part('epoch', bb.at)::float8 AS t,
       bb.keys, bb.rows, bb.ms, bb.wall_ms, bb.batch_size, bb.retries
  FROM shift.backfill_batches bb
 WHERE bb.migration OPERATOR(pg_catalog.=) $1
 ORDER BY bb.at, bb.job, bb.batch]]

-- ---------------------------------------------------------------------------
-- Text
-- ---------------------------------------------------------------------------

local REPLACEMENT = "\239\191\189"   -- U+FFFD

-- s with every byte that is not UTF-8 replaced by U+FFFD
local function utf8_clean(s)
  local out, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then out[#out + 1] = s:sub(i); break end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = REPLACEMENT
    i = bad + 1
  end
  return table.concat(out)
end

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- esc(v): the text of v for XML text and attribute values: the five special
-- characters as entities, the controls XML 1.0 forbids as U+FFFD, bytes that
-- are not UTF-8 as U+FFFD.
local function esc(v)
  if v == nil then return "" end
  local s = utf8_clean(tostring(v))
  s = s:gsub("[&<>\"']", ENTITIES)
  return (s:gsub("[%z\1-\8\11\12\14-\31\127]", REPLACEMENT))
end
R.esc = esc

local function num(v, digits)
  return string.format("%." .. (digits or 1) .. "f", v)
end

-- 1234567 -> "1 234 567"
local function thousands(n)
  local s = string.format("%d", math.floor(n + 0.5))
  local out = s:reverse():gsub("(%d%d%d)", "%1 "):reverse()
  return (out:gsub("^ ", ""):gsub("^%- ", "-"))
end

local function clock(t)
  return t and os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(t)) or "-"
end

local function duration(secs)
  if not secs then return "-" end
  if secs < 1 then return string.format("%d ms", math.floor(secs * 1000 + 0.5)) end
  if secs < 60 then return string.format("%.1f s", secs) end
  local m = math.floor(secs / 60)
  if m < 60 then return string.format("%d min %02d s", m, math.floor(secs - m * 60)) end
  return string.format("%d h %02d min", m // 60, m % 60)
end

-- ---------------------------------------------------------------------------
-- Charts: each is an SVG <g> of a fixed width and its own height
-- ---------------------------------------------------------------------------

local WIDTH = 960
local LEFT, RIGHT, TOP, BOTTOM = 150, 24, 46, 48

-- the series colours (doc/cli.md names them; the test looks for them)
local COLOR = {
  done = "#2ca02c", failed = "#d62728", interrupted = "#ff7f0e", down = "#7f7f7f",
  running = "#17becf", rate = "#1f77b4", work_rate = "#aec7e8", duration = "#9467bd",
  target = "#d62728", working = "#98df8a", rest = "#bcbd22", waiting = "#ff7f0e",
  stopped = "#c7c7c7", batch_retries = "#8c564b", lock_retries = "#e377c2",
}

-- ticks(lo, hi, n) -> a step of 1, 2 or 5 times a power of ten giving about
-- n intervals over [lo, hi], and the first tick
local function ticks(lo, hi, n)
  local span = hi - lo
  if span <= 0 then span = 1 end
  local raw = span / n
  local p = 10 ^ math.floor(math.log(raw, 10))
  local step = p
  for _, m in ipairs({ 1, 2, 5, 10 }) do
    if m * p >= raw then step = m * p; break end
  end
  return step, math.ceil(lo / step - 1e-9) * step
end

local function tick_label(v, step)
  if step >= 1 or v == 0 then return thousands(v) end
  local digits = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  return string.format("%." .. digits .. "f", v)
end

-- A chart: a frame with a title, a time axis (x: seconds since t0) over
-- [x0, x1] and a y axis, to which series are added as SVG text.
local Chart = {}
Chart.__index = Chart

local function chart(spec)
  local c = setmetatable({ parts = {}, id = spec.id, title = spec.title, height = spec.height or 260,
    t0 = spec.t0, x0 = spec.x0, x1 = spec.x1, ylabel = spec.ylabel, ymax = spec.ymax,
    lanes = spec.lanes, legend = spec.legend or {}, note = spec.note, attrs = spec.attrs or "" }, Chart)
  if c.x1 <= c.x0 then c.x1 = c.x0 + 1 end
  if c.ymax and c.ymax <= 0 then c.ymax = 1 end
  c.pw = WIDTH - LEFT - RIGHT
  c.ph = c.height - TOP - BOTTOM
  return c
end

function Chart:x(t) return LEFT + (t - self.t0 - self.x0) / (self.x1 - self.x0) * self.pw end
function Chart:y(v) return TOP + self.ph - v / self.ymax * self.ph end
-- the top and height of lane i of n (lanes charts)
function Chart:lane(i)
  local h = self.ph / #self.lanes
  return TOP + (i - 1) * h + 3, h - 6
end

function Chart:add(s) self.parts[#self.parts + 1] = s end

function Chart:rect(cls, x, y, w, h, color, tip)
  self:add(string.format('<rect class="%s" x="%s" y="%s" width="%s" height="%s" fill="%s">%s</rect>',
    cls, num(x), num(y), num(math.max(w, 2)), num(math.max(h, 1)), color,
    tip and ("<title>" .. esc(tip) .. "</title>") or ""))
end

-- the frame, the axes and their labels, the legend: under the series
function Chart:frame()
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(string.format('<text class="title" x="%d" y="18">%s</text>', LEFT, esc(self.title)))
  add(string.format('<rect class="plot" x="%d" y="%d" width="%d" height="%d"/>', LEFT, TOP, self.pw, self.ph))
  -- x: seconds since t0
  local step, first = ticks(self.x0, self.x1, 8)
  local v = first
  while v <= self.x1 + step * 1e-6 do
    local x = LEFT + (v - self.x0) / (self.x1 - self.x0) * self.pw
    add(string.format('<line class="grid" x1="%s" y1="%d" x2="%s" y2="%d"/>', num(x), TOP, num(x), TOP + self.ph))
    add(string.format('<text class="tick" x="%s" y="%d" text-anchor="middle">%s</text>', num(x),
      TOP + self.ph + 16, tick_label(v, step)))
    v = v + step
  end
  add(string.format('<text class="axis" x="%s" y="%d" text-anchor="middle">time (seconds since %s)</text>',
    num(LEFT + self.pw / 2), self.height - 10, clock(self.t0)))
  if self.lanes then
    for i, name in ipairs(self.lanes) do
      local y, h = self:lane(i)
      local shown = #name > 20 and (name:sub(1, 19) .. "…") or name
      add(string.format('<text class="lane" x="%d" y="%s" text-anchor="end">%s<title>%s</title></text>',
        LEFT - 8, num(y + h / 2 + 4), esc(shown), esc(name)))
    end
  else
    local ystep, yfirst = ticks(0, self.ymax, 5)
    v = yfirst
    while v <= self.ymax + ystep * 1e-6 do
      local y = self:y(v)
      add(string.format('<line class="grid" x1="%d" y1="%s" x2="%d" y2="%s"/>', LEFT, num(y), LEFT + self.pw, num(y)))
      add(string.format('<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>', LEFT - 6, num(y + 4),
        tick_label(v, ystep)))
      v = v + ystep
    end
    add(string.format('<text class="axis" transform="translate(%d %s) rotate(-90)" text-anchor="middle">%s</text>',
      LEFT - 58, num(TOP + self.ph / 2), esc(self.ylabel)))
  end
  -- the legend, right-aligned above the plot
  local x = WIDTH - RIGHT
  for i = #self.legend, 1, -1 do
    local item = self.legend[i]
    x = x - 7 * #item[2] - 26
    add(string.format('<rect x="%d" y="25" width="12" height="12" fill="%s"/>', x, item[1]))
    add(string.format('<text class="legend" x="%d" y="35">%s</text>', x + 16, esc(item[2])))
  end
  if self.note then
    add(string.format('<text class="note" x="%d" y="%d">%s</text>', LEFT + 8, TOP + 16, esc(self.note)))
  end
  return table.concat(out, "\n")
end

-- the chart as a <g> (at y) or as an <svg> element of its own
function Chart:render(y)
  local body = self:frame() .. "\n" .. table.concat(self.parts, "\n")
  if y then
    return string.format('<g id="%s" class="chart" transform="translate(0 %d)"%s>\n%s\n</g>', self.id, y,
      self.attrs, body)
  end
  return string.format('<svg xmlns="http://www.w3.org/2000/svg" id="%s" class="chart" width="%d" height="%d"'
    .. ' viewBox="0 0 %d %d"%s>\n<title>%s</title>\n%s\n</svg>', self.id, WIDTH, self.height, WIDTH,
    self.height, self.attrs, esc(self.title), body)
end

-- ---------------------------------------------------------------------------
-- From the records to the charts
-- ---------------------------------------------------------------------------

-- The phases' bars from the events: each start (phase_started,
-- phase_rollback_started) to the event that ends it; a bar still open at
-- the end runs to now if the migration is running, else to its last event.
local function phase_bars(events, phases, running, now)
  local ends = {
    phase_done = "done", phase_failed = "failed", interrupted = "interrupted",
    phase_rolled_back = "down", phase_rollback_failed = "failed", phase_cleaned_up = "down",
    cleanup_failed = "failed",
  }
  local bars, open, marks = {}, {}, {}
  local last = #events > 0 and events[#events].t or now
  for _, e in ipairs(events) do
    local ph = e.phase
    if ph and (e.kind == "phase_started" or e.kind == "phase_rollback_started") then
      open[ph] = { phase = ph, from = e.t, down = e.kind == "phase_rollback_started" }
    elseif ph and ends[e.kind] then
      local o = open[ph]
      if e.kind == "phase_cleaned_up" or e.kind == "cleanup_failed" then
        -- the down that ran after a failure: from the failure to here
        o = { phase = ph, from = o and o.from or (bars[#bars] and bars[#bars].to) or e.t, down = true }
      end
      if o then
        bars[#bars + 1] = { phase = ph, from = o.from, to = e.t,
          outcome = o.down and (ends[e.kind] == "failed" and "failed" or "down") or ends[e.kind],
          message = e.message, kind = e.kind }
        open[ph] = nil
      end
    elseif e.kind == "retry" or e.kind == "verify_failed" or e.kind == "takeover" then
      marks[#marks + 1] = e
    end
  end
  for ph, o in pairs(open) do
    bars[#bars + 1] = { phase = ph, from = o.from, to = running and now or last,
      outcome = running and "running" or "interrupted", message = running and "running" or "no end recorded" }
  end
  -- phases that have times but no events (an old extension's records)
  local seen = {}
  for _, b in ipairs(bars) do seen[b.phase] = true end
  for _, p in ipairs(phases) do
    if not seen[p.name] and p.started then
      bars[#bars + 1] = { phase = p.name, from = p.started, to = p.finished or (running and now or last),
        outcome = p.status == "done" and "done" or (p.status == "failed" and "failed" or "interrupted"),
        message = p.error_message }
    end
  end
  return bars, marks
end

local OUTCOME_LABEL = { done = "done", failed = "failed", interrupted = "interrupted",
  down = "down (undone)", running = "running" }

local function timeline_chart(m, t0, x1)
  local lanes, index = {}, {}
  for i, p in ipairs(m.phases) do lanes[i] = p.name; index[p.name] = i end
  local c = chart { id = "chart-timeline", title = "Phase timeline", t0 = t0, x0 = 0, x1 = x1,
    lanes = lanes, height = TOP + BOTTOM + math.max(2, #lanes) * 28,
    legend = { { COLOR.done, "done" }, { COLOR.failed, "failed" }, { COLOR.interrupted, "interrupted" },
      { COLOR.down, "down" }, { COLOR.lock_retries, "lock retry" } },
    attrs = string.format(' data-bars="%d"', #m.bars) }
  for _, b in ipairs(m.bars) do
    local i = index[b.phase]
    if i then
      local y, h = c:lane(i)
      c:rect("bar " .. b.outcome, c:x(b.from), y, c:x(b.to) - c:x(b.from), h, COLOR[b.outcome],
        string.format("%s: %s, %s (%s to %s)%s", b.phase, OUTCOME_LABEL[b.outcome], duration(b.to - b.from),
          clock(b.from), clock(b.to), b.message and (": " .. b.message) or ""))
    end
  end
  for _, e in ipairs(m.marks) do
    local i = index[e.phase] or 1
    local y = c:lane(i)
    local x = c:x(e.t)
    c:add(string.format('<path class="mark %s" d="M%s %s l5 -8 h-10 z" fill="%s"><title>%s</title></path>', e.kind,
      num(x), num(y + 2), e.kind == "retry" and COLOR.lock_retries or COLOR.failed,
      esc(clock(e.t) .. " " .. e.kind .. ": " .. (e.message or ""))))
  end
  -- the start of each run after the first
  local runs = 0
  for _, e in ipairs(m.events) do
    if e.kind == "run_started" or e.kind == "rollback_started" or e.kind == "verify_started" then
      runs = runs + 1
      local x = c:x(e.t)
      c:add(string.format('<line class="run" x1="%s" y1="%d" x2="%s" y2="%d"/>', num(x), TOP, num(x), TOP + c.ph))
      local right = x > LEFT + c.pw - 60   -- near the right edge: the label goes left of the line
      c:add(string.format('<text class="runlabel" x="%s" y="%d" text-anchor="%s">%s %d</text>',
        num(right and x - 3 or x + 3), TOP + c.ph - 4, right and "end" or "start",
        (e.kind:gsub("_started", "")), runs))
    end
  end
  return c
end

-- per batch: when its work began and what its wall-clock time held before
-- it: a rest (sleep_ratio times the previous batch's work), then waiting
-- (throttled, replication lag, the backoff of lock retries); a gap between
-- the previous batch and the start of this one's wall-clock time is time no
-- run was going on (paused, between runs)
local function batch_times(m)
  local prev = {}
  for _, b in ipairs(m.batches) do
    local job = m.jobs_by_name[b.job] or {}
    local p = prev[b.job]
    b.work_from = b.t - b.ms / 1000
    b.wall_from = b.t - b.wall_ms / 1000
    local wait = math.max(0, b.wall_ms - b.ms) / 1000
    local rest = 0
    if p and b.wall_from < p.t + 0.05 then
      rest = math.min(wait, p.ms * (job.sleep_ratio or 0) / 1000)
      b.wall_from = math.max(b.wall_from, p.t)
    elseif p then
      b.stopped_from = p.t
    end
    b.rest, b.waiting = rest, math.max(0, wait - rest)
    prev[b.job] = b
  end
end

local function rate_chart(m, t0, x0, x1)
  local ymax = 0
  for _, b in ipairs(m.batches) do
    b.rate = b.rows / math.max(b.wall_ms, 0.001) * 1000
    b.work_rate = b.rows / math.max(b.ms, 0.001) * 1000
    ymax = math.max(ymax, b.rate)
  end
  local c = chart { id = "chart-rate", title = "Rows written per second (wall clock, rests included)",
    height = 220, t0 = t0, x0 = x0, x1 = x1, ylabel = "rows/s", ymax = ymax * 1.1,
    legend = { { COLOR.rate, "rows/s per batch" } }, attrs = string.format(' data-points="%d"', #m.batches) }
  local line = {}
  for _, b in ipairs(m.batches) do line[#line + 1] = num(c:x(b.t)) .. "," .. num(c:y(b.rate)) end
  c:add(string.format('<polyline class="series" points="%s" fill="none" stroke="%s" stroke-width="2"/>',
    table.concat(line, " "), COLOR.rate))
  for _, b in ipairs(m.batches) do
    c:add(string.format('<circle class="pt" cx="%s" cy="%s" r="3" fill="%s"><title>%s batch %d: %s rows in %s'
      .. ' (%s of work): %s rows/s</title></circle>', num(c:x(b.t)), num(c:y(b.rate)), COLOR.rate, esc(b.job),
      b.batch, thousands(b.rows), duration(b.wall_ms / 1000), duration(b.ms / 1000), thousands(b.rate)))
  end
  return c
end

local function duration_chart(m, t0, x0, x1)
  local ymax, targets = 0, {}
  for _, b in ipairs(m.batches) do ymax = math.max(ymax, b.ms) end
  for _, j in ipairs(m.jobs) do
    ymax = math.max(ymax, j.target_ms)
    targets[#targets + 1] = j
  end
  local c = chart { id = "chart-duration", title = "Batch duration against its target (target_ms)",
    height = 220, t0 = t0, x0 = x0, x1 = x1, ylabel = "ms per batch", ymax = ymax * 1.15,
    legend = { { COLOR.duration, "batch work (ms)" }, { COLOR.target, "target_ms" } },
    attrs = string.format(' data-points="%d"', #m.batches) }
  for _, j in ipairs(targets) do
    local y = c:y(j.target_ms)
    c:add(string.format('<line class="target" x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s" stroke-width="2"'
      .. ' stroke-dasharray="8 4"><title>%s: target_ms %d</title></line>', LEFT, num(y), LEFT + c.pw, num(y),
      COLOR.target, esc(j.name), j.target_ms))
  end
  for _, b in ipairs(m.batches) do
    c:add(string.format('<circle class="pt" cx="%s" cy="%s" r="3" fill="%s"><title>%s batch %d: %s ms for %s'
      .. ' keys (batch size %d)</title></circle>', num(c:x(b.t)), num(c:y(b.ms)), COLOR.duration, esc(b.job),
      b.batch, num(b.ms), thousands(b.keys), b.batch_size))
  end
  return c
end

local function waits_chart(m, t0, x0, x1)
  local total = { working = 0, rest = 0, waiting = 0, stopped = 0 }
  for _, b in ipairs(m.batches) do
    total.working = total.working + b.ms / 1000
    total.rest, total.waiting = total.rest + b.rest, total.waiting + b.waiting
    if b.stopped_from then total.stopped = total.stopped + (b.wall_from - b.stopped_from) end
  end
  local now = {}
  for _, j in ipairs(m.jobs) do
    if j.throttled then now[#now + 1] = j.name .. " is throttled now: " .. j.throttled end
    if j.state == "paused" then now[#now + 1] = j.name .. " is paused" end
  end
  local c = chart { id = "chart-waits", title = "Throttling and lag: where the backfill's time went",
    t0 = t0, x0 = x0, x1 = x1,
    lanes = { "working", "resting", "waiting", "not running" }, height = TOP + BOTTOM + 4 * 30,
    legend = { { COLOR.working, "working " .. duration(total.working) }, { COLOR.rest, "resting " .. duration(total.rest) },
      { COLOR.waiting, "throttled/lag/backoff " .. duration(total.waiting) },
      { COLOR.stopped, "not running " .. duration(total.stopped) } },
    note = #now > 0 and table.concat(now, "; ") or nil }
  for _, b in ipairs(m.batches) do
    local y, h = c:lane(1)
    c:rect("working", c:x(b.work_from), y, c:x(b.t) - c:x(b.work_from), h, COLOR.working)
    if b.rest > 0 then
      y, h = c:lane(2)
      c:rect("rest", c:x(b.wall_from), y, c:x(b.wall_from + b.rest) - c:x(b.wall_from), h, COLOR.rest)
    end
    if b.waiting > 0.001 then
      y, h = c:lane(3)
      local from = b.wall_from + b.rest
      c:rect("waiting", c:x(from), y, c:x(from + b.waiting) - c:x(from), h, COLOR.waiting,
        string.format("%s batch %d waited %s before its work (throttle, lag or lock-retry backoff)%s", b.job,
          b.batch, duration(b.waiting), b.retries > 0 and string.format("; %d retries", b.retries) or ""))
    end
    if b.stopped_from then
      y, h = c:lane(4)
      c:rect("stopped", c:x(b.stopped_from), y, c:x(b.wall_from) - c:x(b.stopped_from), h, COLOR.stopped,
        string.format("%s: no run for %s before batch %d (paused, interrupted or between runs)", b.job,
          duration(b.wall_from - b.stopped_from), b.batch))
    end
  end
  return c
end

local function locks_chart(m, t0, x1)
  local ymax, nretry, nbatch = 1, 0, 0
  for _, b in ipairs(m.batches) do
    ymax = math.max(ymax, b.retries)
    if b.retries > 0 then nbatch = nbatch + 1 end
  end
  local retries = {}
  for _, e in ipairs(m.events) do
    if e.kind == "retry" then
      -- "... ; retry N of M in S s" (db:ddl, cut-over): N is its height
      e.n = tonumber((e.message or ""):match("retry (%d+) of")) or 1
      ymax = math.max(ymax, e.n)
      retries[#retries + 1] = e
      nretry = nretry + 1
    end
  end
  local settings = {}
  for _, j in ipairs(m.jobs) do
    settings[#settings + 1] = string.format("%s: lock_timeout_ms %d, max_retries %d", j.name, j.lock_timeout_ms,
      j.max_retries)
  end
  local c = chart { id = "chart-locks", title = "Lock waits: retries after a lock timeout or a deadlock",
    height = 220, t0 = t0, x0 = 0, x1 = x1, ylabel = "retries", ymax = math.ceil(ymax * 1.2 + 0.5),
    legend = { { COLOR.batch_retries, "backfill batch retries" }, { COLOR.lock_retries, "statement retries (events)" } },
    note = (nretry + nbatch == 0 and "no lock waits recorded" or nil),
    attrs = string.format(' data-batches="%d" data-events="%d"', nbatch, nretry) }
  for _, b in ipairs(m.batches) do
    if b.retries > 0 then
      local x = c:x(b.wall_from)
      c:rect("retries", x - 2, c:y(b.retries), math.max(5, c:x(b.t) - x + 2), c:y(0) - c:y(b.retries),
        COLOR.batch_retries, string.format("%s batch %d: %d retries before it committed", b.job, b.batch, b.retries))
    end
  end
  for _, e in ipairs(retries) do
    local x, y = c:x(e.t), c:y(e.n)
    c:add(string.format('<path class="retry" d="M%s %s l7 7 l-7 7 l-7 -7 z" fill="%s"><title>%s</title></path>',
      num(x), num(y - 7), COLOR.lock_retries, esc(clock(e.t) .. " " .. (e.phase or "") .. ": " .. (e.message or ""))))
  end
  if #settings > 0 then
    c:add(string.format('<text class="note" x="%d" y="%d">%s</text>', LEFT + 8, TOP + c.ph - 8,
      esc(table.concat(settings, "; "))))
  end
  return c
end

-- ---------------------------------------------------------------------------
-- The page
-- ---------------------------------------------------------------------------

local STYLE = [[
body { font: 14px/1.4 -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; color: #222;
       margin: 24px auto; max-width: 1000px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 28px 0 4px; }
p.read { margin: 0 0 8px; color: #555; max-width: 960px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; }
table.facts th { color: #555; font-weight: normal; width: 120px; }
table.list th { border-bottom: 1px solid #aaa; }
table.list td { border-bottom: 1px solid #eee; }
.outcome-done { color: #2ca02c; font-weight: bold; }
.outcome-bad { color: #d62728; font-weight: bold; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
svg.chart { display: block; margin: 4px 0 0; }
svg.chart text.title { display: none; }
svg text, g.chart text { font-family: "DejaVu Sans", Arial, sans-serif; }
.title { font-size: 15px; font-weight: bold; fill: #222; }
.plot { fill: #fafafa; stroke: #888; stroke-width: 1; }
.grid { stroke: #e2e2e2; stroke-width: 1; }
.tick, .legend, .lane, .runlabel { font-size: 12px; fill: #444; }
.axis { font-size: 12px; fill: #222; }
.note { font-size: 12px; fill: #555; font-style: italic; }
.run { stroke: #444; stroke-width: 1; stroke-dasharray: 2 3; }
footer { margin-top: 32px; color: #777; font-size: 12px; }
]]

-- The style inside an SVG document of its own
local SVG_STYLE = 'text { font-family: "DejaVu Sans", Arial, sans-serif; }\n' .. STYLE:match("\n(%.title.-)footer")

local HOW_TO_READ = {
  ["chart-timeline"] = "One bar per attempt of each phase, from its start to its end, coloured by how it ended; "
    .. "the dotted lines are the starts of runs (run, rollback, verify); the pink triangles are lock retries of "
    .. "a statement (db:ddl, a cut-over).",
  ["chart-rate"] = "Each point is one batch: the rows it wrote divided by the wall-clock time since the batch "
    .. "before it (its work, its rest, any throttling and retry backoff). A steady line is a steady job; dips "
    .. "are batches that waited.",
  ["chart-duration"] = "Each point is one batch's work in milliseconds; the dashed line is the job's target_ms. "
    .. "The batch size adapts to keep batches near the line: points far above it are batches that met "
    .. "contention (locks, I/O) or a size change.",
  ["chart-waits"] = "Where the backfill's wall-clock time went: working (a batch running), resting (sleep_ratio "
    .. "times the previous batch's work), waiting beyond the rest (the throttle query, replication lag above "
    .. "max_lag, the backoff of a lock retry), and not running (the job paused, interrupted or between runs).",
  ["chart-locks"] = "Retries after a lock timeout or a deadlock over time: brown bars are backfill batches that "
    .. "were retried (height: retries before the batch committed), pink diamonds are statement retries the "
    .. "runner recorded as events (height: the retry's number).",
}

local function fact(rows, k, v) rows[#rows + 1] = "<tr><th>" .. esc(k) .. "</th><td>" .. v .. "</td></tr>" end

local function header(m)
  local r, rows = m.migration, {}
  local first = m.events[1] and m.events[1].t
  local last = m.events[#m.events] and m.events[#m.events].t
  local roles, hosts, seen = {}, {}, {}
  for _, e in ipairs(m.events) do
    if e.role and not seen["r" .. e.role] then seen["r" .. e.role] = true; roles[#roles + 1] = e.role end
    if e.host and not seen["h" .. e.host] then seen["h" .. e.host] = true; hosts[#hosts + 1] = e.host end
  end
  local runs = 0
  for _, e in ipairs(m.events) do if e.kind:match("_started$") and not e.phase then runs = runs + 1 end end
  fact(rows, "database", esc(r.database) .. " on " .. esc(m.server) .. " (PostgreSQL " .. esc(r.server_version) .. ")")
  fact(rows, "migration", "<b>" .. esc(r.migration) .. "</b>, " .. esc(r.nphases) .. " phases; script "
    .. '<span class="mono">' .. esc(r.script_path or "?") .. "</span> (sha256 "
    .. '<span class="mono">' .. esc(r.script_sha256) .. "</span>)")
  fact(rows, "when", esc(clock(first)) .. " to " .. esc(clock(last)) .. " (" .. esc(duration(first and last - first))
    .. ", " .. runs .. (runs == 1 and " run" or " runs") .. ")")
  fact(rows, "who", "applied by " .. esc(r.applied_by) .. ", owned by " .. esc(r.owner)
    .. (#roles > 0 and ("; events by " .. esc(table.concat(roles, ", "))) or "")
    .. (#hosts > 0 and (" from " .. esc(table.concat(hosts, ", "))) or "")
    .. "; pgshift " .. esc(r.runner_version or "?"))
  local good = r.status == "done"
  local outcome = string.format('<span class="%s">%s</span>, %s of %s phases done', good and "outcome-done"
    or "outcome-bad", esc(r.status), esc(r.phases_done), esc(r.nphases))
  if r.last_error then
    outcome = outcome .. "; last error in phase " .. esc(r.last_error_phase) .. ": " .. esc(r.last_error)
      .. (r.last_error_sqlstate and (" (SQLSTATE " .. esc(r.last_error_sqlstate) .. ")") or "")
  end
  fact(rows, "outcome", outcome)
  return '<table class="facts">\n' .. table.concat(rows, "\n") .. "\n</table>"
end

local function phases_table(m)
  local rows = { "<tr><th>#</th><th>phase</th><th>status</th><th>attempts</th><th>duration</th><th>rows</th>"
    .. "<th>last error</th></tr>" }
  for _, p in ipairs(m.phases) do
    rows[#rows + 1] = string.format("<tr><td>%d</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td>"
      .. "<td>%s</td></tr>", p.ordinal, esc(p.name), esc(p.status), p.attempts,
      esc(p.started and p.finished and duration(p.finished - p.started) or "-"),
      p.rows_affected and thousands(p.rows_affected) or "-",
      p.error_message and (esc(p.error_message) .. (p.error_sqlstate and (" (" .. esc(p.error_sqlstate) .. ")") or ""))
      or "")
  end
  return '<table class="list">\n' .. table.concat(rows, "\n") .. "\n</table>"
end

local function jobs_table(m)
  local rows = { "<tr><th>backfill job</th><th>table</th><th>state</th><th>rows</th><th>batches</th>"
    .. "<th>retries</th><th>target_ms</th><th>sleep_ratio</th><th>throttle</th></tr>" }
  for _, j in ipairs(m.jobs) do
    local throttle = {}
    if j.has_throttle_query then throttle[#throttle + 1] = "throttle query" end
    if j.max_lag then throttle[#throttle + 1] = "max_lag " .. j.max_lag end
    if j.throttled then throttle[#throttle + 1] = "throttled now: " .. j.throttled end
    rows[#rows + 1] = string.format("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
      .. "<td>%d</td><td>%s</td><td>%s</td></tr>", esc(j.name), esc(j.relation), esc(j.state),
      thousands(j.rows_done), thousands(j.batches), thousands(j.retries), j.target_ms, esc(j.sleep_ratio),
      esc(table.concat(throttle, ", ")))
  end
  return '<table class="list">\n' .. table.concat(rows, "\n") .. "\n</table>"
end

local function events_table(m)
  local rows = { "<tr><th>at (UTC)</th><th>phase</th><th>event</th><th>message</th></tr>" }
  for _, e in ipairs(m.events) do
    rows[#rows + 1] = string.format("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>",
      esc(os.date("!%H:%M:%S", math.floor(e.t)) .. string.format(".%03d", math.floor((e.t % 1) * 1000))),
      esc(e.phase), esc(e.kind), esc((e.message or "") .. (e.sqlstate and (" (" .. e.sqlstate .. ")") or "")))
  end
  return '<table class="list" id="events">\n' .. table.concat(rows, "\n") .. "\n</table>"
end

-- R.report(db, name, info) -> html, svg; nil and a message when the database
-- recorded no migration name.  info: {server = where db is connected,
-- version = pgshift's}.
function R.report(db, name, info)
  local rows = db:query(MIGRATION_SQL, name)
  if #rows == 0 then
    return nil, "no migration named '" .. name .. "' has run in this database"
      .. " (or it belongs to a role you are not a member of)"
  end
  local m = { migration = rows[1], server = info.server or "?", phases = db:query(PHASES_SQL, name),
    events = db:query(EVENTS_SQL, name), jobs = db:query(JOBS_SQL, name), batches = db:query(BATCHES_SQL, name),
    jobs_by_name = {} }
  for _, j in ipairs(m.jobs) do m.jobs_by_name[j.name] = j end
  local now = m.migration.now
  m.bars, m.marks = phase_bars(m.events, m.phases, m.migration.status == "running", now)
  batch_times(m)

  -- the migration's time: from its first record to its last
  local t0, t1 = math.huge, -math.huge
  local function span(t) if t then t0 = math.min(t0, t); t1 = math.max(t1, t) end end
  for _, e in ipairs(m.events) do span(e.t) end
  for _, b in ipairs(m.bars) do span(b.from); span(b.to) end
  for _, b in ipairs(m.batches) do span(b.stopped_from or b.wall_from); span(b.t) end
  if t0 == math.huge then t0, t1 = now, now end

  local charts = { timeline_chart(m, t0, t1 - t0) }
  if #m.batches > 0 then
    -- the backfill's charts: over the backfill's own time
    local b0, b1 = math.huge, -math.huge
    for _, b in ipairs(m.batches) do
      b0 = math.min(b0, b.stopped_from or b.wall_from); b1 = math.max(b1, b.t)
    end
    local pad = math.max((b1 - b0) * 0.02, 0.01)
    local x0, x1 = math.max(0, b0 - t0 - pad), b1 - t0 + pad
    charts[#charts + 1] = rate_chart(m, t0, x0, x1)
    charts[#charts + 1] = duration_chart(m, t0, x0, x1)
    charts[#charts + 1] = waits_chart(m, t0, x0, x1)
  end
  charts[#charts + 1] = locks_chart(m, t0, t1 - t0)

  local title = "pg_shift report: migration " .. m.migration.migration
  local html = { '<!DOCTYPE html>', '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">', "<head>",
    '<meta charset="utf-8"/>', "<title>" .. esc(title) .. "</title>", "<style>" .. STYLE .. "</style>",
    "</head>", "<body>", "<h1>" .. esc(title) .. "</h1>", header(m) }
  local svg, y = {}, 0
  for _, c in ipairs(charts) do
    html[#html + 1] = string.format('<h2>%s</h2>\n<p class="read">%s</p>', esc(c.title), esc(HOW_TO_READ[c.id]))
    html[#html + 1] = c:render()
    svg[#svg + 1] = c:render(y)
    y = y + c.height + 10
  end
  html[#html + 1] = "<h2>Phases</h2>"
  html[#html + 1] = phases_table(m)
  if #m.jobs > 0 then html[#html + 1] = "<h2>Backfill jobs</h2>"; html[#html + 1] = jobs_table(m) end
  html[#html + 1] = "<h2>Events</h2>"
  html[#html + 1] = events_table(m)
  html[#html + 1] = string.format("<footer>Made by pgshift %s report at %s from shift.status, shift.phase_status, "
    .. "shift.history, shift.backfill_progress and shift.backfill_batches.</footer>", esc(info.version), esc(clock(now)))
  html[#html + 1] = "</body>\n</html>\n"

  local svgdoc = string.format('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'
    .. ' width="%d" height="%d" viewBox="0 0 %d %d">\n<title>%s</title>\n<style>%s</style>\n'
    .. '<rect width="100%%" height="100%%" fill="#ffffff"/>\n%s\n</svg>\n', WIDTH, y, WIDTH, y, esc(title),
    SVG_STYLE, table.concat(svg, "\n"))
  return table.concat(html, "\n"), svgdoc
end

return R
