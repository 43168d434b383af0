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

-- S.status(db, name, format) -> text; nil and a message when name is unknown.
function S.status(db, name, format)
  local rows = db:query(STATUS_SQL, name)
  if name and #rows == 0 then return nil, "no migration named '" .. name .. "' has run in this database" end
  if name then rows[1].phases = output.array(db:query(PHASES_SQL, name)) end
  if format == "json" then return output.json(output.array(rows)) .. "\n" end
  local out = {}
  if #rows == 0 then return "no migrations have run in this database\n" end
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
    return table.concat(out, "\n") .. "\n"
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
  return table.concat(out, "\n") .. "\n"
end

return S
