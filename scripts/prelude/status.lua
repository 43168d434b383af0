-- scripts/prelude/status.lua: `pgshift status`, from the shift.status and
-- shift.phase_status views.

local C, P = ...
local output = P.output
local S = {}

local STATUS_SQL = [[
SELECT s.migration, s.status, s.operation, s.phases_done, s.nphases, s.phase,
       to_char(s.started_at, 'YYYY-MM-DD HH24:MI:SS') AS started,
       to_char(s.finished_at, 'YYYY-MM-DD HH24:MI:SS') AS finished,
       date_trunc('second', s.elapsed)::text AS elapsed,
       s.last_error, s.last_error_sqlstate, s.last_error_phase,
       s.lease_host, s.lease_runner_pid, s.lease_work_pid,
       date_trunc('second', s.heartbeat_age)::text AS heartbeat_age,
       s.applied_by::text AS applied_by, s.runner_version, s.script_sha256, s.script_path,
       s.runner_alive
  FROM shift.status s
 WHERE $1::text IS NULL OR s.migration = $1
 ORDER BY s.started_at NULLS FIRST, s.migration]]

local PHASES_SQL = [[
SELECT p.ordinal, p.name, p.status, p.reversible, p.needs_cleanup, p.attempts,
       date_trunc('milliseconds', p.duration)::text AS duration, p.rows_affected,
       p.error_message, p.error_sqlstate
  FROM shift.phase_status p WHERE p.migration = $1 ORDER BY p.ordinal]]

local function pad(s, n) s = tostring(s or ""); return s .. string.rep(" ", n - #s) end

-- The live version schemas (shift.versions, sql/version.sql): one line each
-- with the sessions seen using it, after the migrations; nothing if none.
local VERSIONS_SQL = [[
SELECT v.version, pg_catalog.array_to_string(v.views, ', ') AS views, v.sessions,
       to_char(v.created_at, 'YYYY-MM-DD HH24:MI:SS') AS created, v.migration
  FROM shift.versions v ORDER BY v.created_at, v.version]]

local function versions_text(db)
  local rows = db:query(VERSIONS_SQL)
  if #rows == 0 then return nil end
  local w = { 7, 5 }
  for _, r in ipairs(rows) do w[1] = math.max(w[1], #r.version); w[2] = math.max(w[2], #r.views) end
  local out = { "", pad("VERSION", w[1] + 2) .. pad("VIEWS", w[2] + 2) .. pad("SESSIONS", 10)
    .. pad("CREATED", 21) .. "MIGRATION" }
  for _, r in ipairs(rows) do
    out[#out + 1] = (pad(r.version, w[1] + 2) .. pad(r.views, w[2] + 2) .. pad(r.sessions, 10)
      .. pad(r.created, 21) .. (r.migration or "")):gsub("%s+$", "")
  end
  return table.concat(out, "\n")
end

-- S.status(db, name, format) -> text; nil and a message when name is unknown.
function S.status(db, name, format)
  local rows = db:query(STATUS_SQL, name)
  if name and #rows == 0 then return nil, "no migration named '" .. name .. "' has run in this database" end
  if name then rows[1].phases = output.array(db:query(PHASES_SQL, name)) end
  if format == "json" then return output.json(output.array(rows)) .. "\n" end
  local out = {}
  if #rows == 0 then
    local v = versions_text(db)
    return "no migrations have run in this database\n" .. (v and (v .. "\n") or "") .. P.move.slot_warnings(db)
  end
  if not name then
    local w = { 9, 6, 5 }
    for _, r in ipairs(rows) do
      w[1] = math.max(w[1], #r.migration); w[2] = math.max(w[2], #r.status); w[3] = math.max(w[3], #r.phase)
    end
    out[#out + 1] = pad("MIGRATION", w[1] + 2) .. pad("STATUS", w[2] + 2) .. pad("PHASE", w[3] + 2)
      .. pad("STARTED", 21) .. pad("ELAPSED", 10) .. "LAST ERROR"
    for _, r in ipairs(rows) do
      local err = r.last_error and (r.last_error_phase .. ": " .. r.last_error) or ""
      out[#out + 1] = (pad(r.migration, w[1] + 2) .. pad(r.status, w[2] + 2) .. pad(r.phase, w[3] + 2)
        .. pad(r.started, 21) .. pad(r.elapsed, 10) .. err):gsub("%s+$", "")
    end
    out[#out + 1] = versions_text(db)
    return table.concat(out, "\n") .. "\n" .. P.move.slot_warnings(db)
  end
  local r = rows[1]
  out[#out + 1] = string.format("migration %s: %s, phase %s", r.migration, r.status, r.phase)
  out[#out + 1] = string.format("  script %s (sha256 %s)", r.script_path or "?", r.script_sha256)
  out[#out + 1] = string.format("  last %s by %s with pgshift %s: started %s, %s %s",
    r.operation or "run", r.applied_by, r.runner_version or "?", r.started or "-",
    r.finished and ("finished " .. r.finished .. ",") or "still running,", r.elapsed or "")
  if r.lease_work_pid and r.runner_alive then
    out[#out + 1] = string.format("  running now: pgshift pid %s on %s, session %s, last heartbeat %s ago",
      tostring(r.lease_runner_pid), r.lease_host or "?", tostring(r.lease_work_pid), r.heartbeat_age or "?")
  elseif r.lease_work_pid then
    out[#out + 1] = string.format("  its runner is gone: pgshift pid %s on %s stopped without finishing"
      .. " (last heartbeat %s ago); pgshift run resumes it", tostring(r.lease_runner_pid),
      r.lease_host or "?", r.heartbeat_age or "?")
  end
  out[#out + 1] = "  phases:"
  for _, p in ipairs(r.phases) do
    local extra = {}
    if p.duration then extra[#extra + 1] = p.duration end
    if p.rows_affected then extra[#extra + 1] = p.rows_affected .. " rows" end
    if not p.reversible then extra[#extra + 1] = "no down" end
    if p.status == "interrupted" then
      extra[#extra + 1] = "interrupted: a run resumes it, a rollback runs its down"
    elseif p.needs_cleanup then
      extra[#extra + 1] = "needs its down before a retry"
    end
    if p.error_message then
      extra[#extra + 1] = "error: " .. p.error_message .. (p.error_sqlstate and (" (" .. p.error_sqlstate .. ")") or "")
    end
    out[#out + 1] = string.format("    %2d %s %s %s", p.ordinal, pad(p.name, 20), pad(p.status, 12),
      table.concat(extra, ", ")):gsub("%s+$", "")
  end
  return table.concat(out, "\n") .. "\n" .. P.move.slot_warnings(db)
end

-- The state of a file of a directory, given what shift.status recorded for
-- its migration (r, or nil): as project.c's run decides what to run.
local function file_state(f, r)
  if f.error then return "invalid" end
  if not r then return "pending" end
  if r.status == "done" then return r.script_sha256 == f.sha256 and "applied" or "changed" end
  return r.status  -- pending (registered only), running, failed, interrupted, partial, rolled_back
end

local function short(sha) return sha and (sha:sub(1, 12) .. "...") or "?" end

-- What the NOTE column says of a file in state st.
local function file_note(f, r, st, before_applied)
  local notes = {}
  if st == "invalid" then notes[#notes + 1] = f.error end
  if st == "changed" then
    notes[#notes + 1] = string.format("changed since applied: sha256 %s recorded, %s now"
      .. " (run refuses it: put changes in a new file)", short(r.script_sha256), short(f.sha256))
  elseif r and r.script_sha256 ~= f.sha256 then
    notes[#notes + 1] = "the file changed since its last run"
  end
  if st == "running" and r.lease_work_pid then
    notes[#notes + 1] = string.format("running now: pgshift pid %s on %s",
      tostring(r.lease_runner_pid), r.lease_host or "?")
  end
  if r and r.last_error and (st == "failed" or st == "interrupted") then
    notes[#notes + 1] = r.last_error_phase .. ": " .. r.last_error
  end
  if st == "pending" and before_applied then
    notes[#notes + 1] = "sorts before an applied file: run applies it now, after them"
  end
  return table.concat(notes, "; ")
end

-- S.project(db, dir, files, format) -> text: each file of directory dir
-- (files: {file, path, migration, sha256} or {file, path, error}, in order)
-- with its state, then the migrations recorded that no file declares.
function S.project(db, dir, files, format)
  local rows = db:query(STATUS_SQL, nil)
  local by_name, declared = {}, {}
  for _, r in ipairs(rows) do by_name[r.migration] = r end
  local last_applied = 0
  for i, f in ipairs(files) do
    if f.migration then declared[f.migration] = true end
    local st = file_state(f, f.migration and by_name[f.migration])
    if st == "applied" or st == "changed" then last_applied = i end
  end
  local out_files, missing = output.array(), output.array()
  for i, f in ipairs(files) do
    local r = f.migration and by_name[f.migration]
    local st = file_state(f, r)
    out_files[i] = output.object({
      file = f.file, migration = f.migration, state = st, status = r and r.status,
      phase = r and r.phase, sha256 = f.sha256, recorded_sha256 = r and r.script_sha256,
      finished = r and r.finished, note = file_note(f, r, st, i < last_applied),
    }, { "file", "migration", "state", "status", "phase", "sha256", "recorded_sha256",
         "finished", "note" })
  end
  for _, r in ipairs(rows) do
    if not declared[r.migration] then
      missing[#missing + 1] = output.object({
        migration = r.migration, status = r.status, phase = r.phase, finished = r.finished,
        script_path = r.script_path,
      }, { "migration", "status", "phase", "finished", "script_path" })
    end
  end
  if format == "json" then
    return output.json(output.object({ directory = dir, files = out_files, not_in_directory = missing },
      { "directory", "files", "not_in_directory" })) .. "\n"
  end
  local out = {}
  if #out_files == 0 then
    out[#out + 1] = "no migration files (*.lua) in " .. dir
  else
    local w = { 4, 9, 5, 5 }
    for _, f in ipairs(out_files) do
      w[1] = math.max(w[1], #f.file); w[2] = math.max(w[2], #(f.migration or "-"))
      w[3] = math.max(w[3], #f.state); w[4] = math.max(w[4], #(f.phase or ""))
    end
    out[#out + 1] = pad("FILE", w[1] + 2) .. pad("MIGRATION", w[2] + 2) .. pad("STATE", w[3] + 2)
      .. pad("PHASE", w[4] + 2) .. "NOTE"
    for _, f in ipairs(out_files) do
      out[#out + 1] = (pad(f.file, w[1] + 2) .. pad(f.migration or "-", w[2] + 2) .. pad(f.state, w[3] + 2)
        .. pad(f.phase, w[4] + 2) .. f.note):gsub("%s+$", "")
    end
  end
  if #missing > 0 then
    out[#out + 1] = string.format("recorded in the database, no file in %s:", dir)
    local w = { 0, 0, 0 }
    for _, r in ipairs(missing) do
      w[1] = math.max(w[1], #r.migration); w[2] = math.max(w[2], #r.status); w[3] = math.max(w[3], #r.phase)
    end
    for _, r in ipairs(missing) do
      out[#out + 1] = ("  " .. pad(r.migration, w[1] + 2) .. pad(r.status, w[2] + 2) .. pad(r.phase, w[3] + 2)
        .. (r.script_path or "")):gsub("%s+$", "")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return S
