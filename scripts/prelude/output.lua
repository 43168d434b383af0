-- scripts/prelude/output.lua: what the runner prints from Lua.  Every
-- progress line and every --json event goes through O.emit, every JSON
-- document through O.json (whose strings are made by the runner's one JSON
-- string writer in C, C.json_string), and a migration's log(...) through
-- O.log.  The settings of the command (format, quiet, sandbox, dry run) live
-- here.
--
-- Like every module of the prelude, this chunk runs once with the C helpers
-- (C) and the modules loaded before it (P) as arguments, and returns its
-- table (see runner/script.c and the PRELUDE list in runner/Makefile).

local C = ...
local O = {}

-- sandbox: the file is under review (plan, lint), see loader.lua; dry_run:
-- plan's dry run is running a phase (see plan.lua).
local settings = { format = "text", quiet = false, dry_run = false, sandbox = false }
O.settings = settings

function O.configure(opts)
  for k, v in pairs(opts) do settings[k] = v end
end

-- JSON text of a Lua value.  Tables made with O.array() are arrays; tables
-- made with O.object(t, keys) are objects with the keys of the list keys, in
-- its order (those whose value is nil left out); other tables are objects
-- with sorted keys (stable output).  nil and NaN are null; a float is
-- written with as few digits as give it back exactly.  Strings are always
-- valid JSON whatever bytes they hold (C.json_string: controls escaped,
-- bytes that are not UTF-8 become U+FFFD).
local array_mt = { __name = "json array" }
function O.array(t) return setmetatable(t or {}, array_mt) end
function O.object(t, keys) return setmetatable(t, { __name = "json object", keys = keys }) end

local function float_text(v)
  for _, f in ipairs({ "%.15g", "%.16g" }) do
    local s = string.format(f, v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end

local function json(v, out)
  local t = type(v)
  if v == nil then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    else out[#out + 1] = float_text(v) end
  elseif t == "string" then
    out[#out + 1] = C.json_string(v)
  elseif t == "table" then
    local mt = getmetatable(v)
    if mt == array_mt or (next(v) ~= nil and rawlen(v) > 0 and next(v, rawlen(v)) == nil) then
      out[#out + 1] = "["
      for i = 1, rawlen(v) do
        if i > 1 then out[#out + 1] = "," end
        json(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = mt and mt.keys
      if not keys then
        keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      end
      out[#out + 1] = "{"
      local first = true
      for _, k in ipairs(keys) do
        if v[k] ~= nil then
          if not first then out[#out + 1] = "," end
          first = false
          json(tostring(k), out)
          out[#out + 1] = ":"
          json(v[k], out)
        end
      end
      out[#out + 1] = "}"
    end
  else
    json(tostring(v), out)
  end
end
function O.json(v)
  local out = {}
  json(v, out)
  return table.concat(out)
end

local function duration(ms)
  if ms == nil then return "?" end
  if ms < 1000 then return string.format("%.0f ms", ms) end
  if ms < 60000 then return string.format("%.2f s", ms / 1000) end
  return string.format("%d min %02d s", ms // 60000, (ms // 1000) % 60)
end
O.duration = duration

local STEP_LABEL = { up = "", down = " (down)", verify = " (verify)",
                     cleanup = " (down of the failed attempt)" }

-- The text form of each event (nil: nothing on stdout in text mode): a
-- line, or a list of pieces {text, style} (style: what colours it on a
-- terminal, see pgs_styled in runner/output.c; nil: plain).
local TEXT = {
  start = function(e)
    return { { string.format("==> %s migration %s (%s): %d phase%s on %s", e.operation,
      e.migration, e.file, e.phases, e.phases == 1 and "" or "s", e.target), "header" } }
  end,
  phase_start = function(e)
    return { { string.format("--> [%d/%d] %s%s", e.ordinal, e.phases, e.phase,
      STEP_LABEL[e.step] or ""), "phase" } }
  end,
  phase_skip = function(e)
    return { { string.format("--> [%d/%d] %s", e.ordinal, e.phases, e.phase), "phase" },
      { ": " .. e.reason } }
  end,
  phase_done = function(e)
    local rows = (e.rows and e.rows > 0) and string.format(", %d row%s", e.rows, e.rows == 1 and "" or "s") or ""
    local result = e.result or "done"
    return { { "    " }, { result, result == "done" and "ok" or "fail" },
      { string.format(" in %s%s", duration(e.ms), rows) } }
  end,
  log = function(e) return "    " .. e.message end,
  progress = function(e)
    local eta = e.eta_seconds and e.eta_seconds >= 0
      and string.format("ETA %d:%02d", e.eta_seconds // 60, e.eta_seconds % 60) or "ETA ?"
    return string.format("    backfill %s: %.1f %% (%d of %d keys, %d rows, %.0f keys/s, %s)%s",
      e.job, e.percent, e.keys, e.total, e.rows, e.rate, eta,
      e.waiting and ("; waiting: " .. e.waiting) or "")
  end,
  note = function(e) return { { "    " }, { "note:", "warn" }, { " " .. e.message } } end,
  project_start = function(e)
    return string.format("==> directory %s: %d migration file%s, %d applied, %d to run", e.directory,
      e.files, e.files == 1 and "" or "s", e.applied, e.to_run)
  end,
  project_finish = function(e)
    if e.stopped_at then
      return string.format("==> directory %s: stopped at %s (exit %d); %d of %d file%s run", e.directory,
        e.stopped_at, e.exit, e.ran, e.to_run, e.to_run == 1 and "" or "s")
    end
    return string.format("==> directory %s: %d of %d file%s run", e.directory, e.ran, e.to_run,
      e.to_run == 1 and "" or "s")
  end,
  finish = function(e)
    return { { string.format("==> %s of migration %s ", e.operation, e.migration), "header" },
      e.exit == 0 and { "finished", "ok" } or { "stopped", "fail" },
      { string.format(" after %s: status %s, %d of %d phases done", duration(e.ms), e.status,
        e.done, e.phases), "header" } }
  end,
}

-- O.write(line): a line of TEXT's form on stdout, with its newline.
function O.write(line)
  if type(line) == "table" then
    for _, piece in ipairs(line) do C.write(piece[1], piece[2]) end
    C.write("\n")
  else
    C.write(line .. "\n")
  end
end

-- O.emit{event = "...", ...}: one progress event, as a text line or a JSON line.
function O.emit(e)
  if e.ms then e.ms = math.floor(e.ms + 0.5) end
  if settings.format == "json" then
    e.time = os.date("!%Y-%m-%dT%H:%M:%SZ")
    C.write(O.json(e) .. "\n")
  elseif not settings.quiet then
    local render = TEXT[e.event]
    local line = render and render(e)
    if line then O.write(line) end
  end
end

-- O.json_line(t, keys): one JSON object on stdout, its keys in the order
-- of the list keys (pgshift compare's lines, written from C: pgs_json_line).
function O.json_line(t, keys)
  C.write(O.json(O.object(t, keys)) .. "\n")
end

-- log(...): a progress line from a migration, indented under its phase.
function O.log(...)
  -- plan and lint: the file's code runs, prints nothing
  if settings.dry_run or settings.sandbox then return end
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  O.emit { event = "log", message = table.concat(parts, " ", 1, parts.n) }
end


return O
