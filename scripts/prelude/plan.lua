-- scripts/prelude/plan.lua: `pgshift plan`: every phase function run
-- against a dry-run db (dry.lua), and the plan that makes, as text,
-- markdown or JSON, with the lint findings (lint.lua) under their
-- statements.

local C, P = ...
local output, dry = P.output, P.dry
local settings = output.settings
local quote_literal = P.db.methods.quote_literal   -- without a db: for display
local G = {}

local SEVERITIES = { "LOW", "MEDIUM", "HIGH", "CRITICAL" }
G.SEVERITIES = SEVERITIES

-- Runs fn against a fresh dry-run db: the statements it would send, the
-- checks it left to the real run, and the error that stopped it, if any (a
-- value a real query would have returned is a placeholder in a dry run, so
-- code that needs the value itself stops there; see dry.lua).  site,
-- migration, phase: see db.start_dry.
local function dry_run(fn, site, migration, phase)
  if fn == nil then return nil end
  local db = dry.new(site, migration, phase)
  settings.dry_run = true
  local ok, err = xpcall(fn, C.msghandler, db)
  settings.dry_run = false
  return { statements = dry.statements(db), unchecked = dry.unchecked(db),
           stopped = (not ok) and err.message or nil }
end

-- G.build(migration, info) -> the plan as a table, without lint (see
-- lint.plan).  info: file, sha256, and (connected) state = { [phase name] =
-- {status =, needs_cleanup =} }, status.
function G.build(mig, info)
  local plan = { migration = mig.name, description = mig.description, file = info.file,
                 sha256 = info.sha256, state = info.status, phases = output.array(),
                 points_of_no_return = output.array() }
  for i, p in ipairs(mig.phases) do
    local st = info.state and info.state[p.name]
    -- a phase a helper made runs the prelude's code: its SQL is the helper call's
    local site = p.source and p.line and (p.source .. ":" .. p.line .. ": ") or ""
    local ph = { ordinal = i, name = p.name, description = p.description,
                 reversible = p.down ~= nil, state = st and st.status or nil,
                 up = dry_run(p.up, site, mig.name, p.name),
                 down = dry_run(p.down, site, mig.name, p.name),
                 verify = dry_run(p.verify, site, mig.name, p.name) }
    plan.phases[i] = ph
    if not ph.reversible then plan.points_of_no_return[#plan.points_of_no_return + 1] = p.name end
  end
  return plan
end

-- SQL as written in a Lua long string: continuation lines carry the Lua
-- code's indentation; remove what they have in common.
function G.dedent(sql)
  sql = sql:gsub("^%s*\n", ""):gsub("%s+$", "")
  local lines, min = {}, nil
  for line in (sql .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = line
    if line:match("%S") then
      local n = #line:match("^ *")
      min = (min == nil or n < min) and n or min
    end
  end
  for i = 1, #lines do lines[i] = (i > 1 and "  " or "") .. lines[i]:sub((min or 0) + 1) end
  return table.concat(lines, "\n")
end

-- The checks a dry run left to the real run, recorded after statement n.
local function unchecked_lines(step, n, indent, out)
  for _, u in ipairs(step.unchecked or {}) do
    if u.after == n then
      out[#out + 1] = indent .. "-- not checked in a dry run: " .. u.where .. (u.kind or "assert") .. ": "
        .. u.message:gsub("\n", " ") .. " (it depends on a value only the database has)"
    end
  end
end

local function sql_lines(step, indent, out)
  if step == nil then return end
  unchecked_lines(step, 0, indent, out)
  for n, st in ipairs(step.statements) do
    local text = G.dedent(st.sql)
    local notes = {}
    if #st.params > 0 then
      local ps = {}
      for i, v in ipairs(st.params) do ps[i] = "$" .. i .. " = " .. v end
      notes[#notes + 1] = table.concat(ps, ", ")
    end
    if st.kind == "ddl" then
      notes[#notes + 1] = string.format("lock_timeout %s, up to %d retries", st.lock_timeout, st.retries)
    end
    if not text:match(";$") then text = text .. ";" end
    if #notes > 0 then text = text .. "  -- " .. table.concat(notes, "; ") end
    for line in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = indent .. line end
    for _, line in ipairs(G.lint_notes(st)) do out[#out + 1] = indent .. line end
    unchecked_lines(step, n, indent, out)
  end
  if #step.statements == 0 then out[#out + 1] = indent .. "-- (no SQL)" end
  if step.stopped then
    out[#out + 1] = indent .. "-- the dry run stopped here: " .. step.stopped
  end
end

local function plan_text(plan)
  local out = {}
  out[#out + 1] = string.format("Plan for migration %s (%s)", plan.migration, plan.file)
  out[#out + 1] = string.format("  script sha256 %s, %d phases, state: %s", plan.sha256,
    #plan.phases, plan.state or "unknown (offline)")
  if plan.description then out[#out + 1] = "  " .. plan.description end
  if #plan.points_of_no_return > 0 then
    out[#out + 1] = "  points of no return: " .. table.concat(plan.points_of_no_return, ", ")
  end
  if plan.lint then out[#out + 1] = "  lint: " .. G.lint_summary(plan) end
  for _, ph in ipairs(plan.phases) do
    out[#out + 1] = ""
    out[#out + 1] = string.format("[%d/%d] %s%s%s", ph.ordinal, #plan.phases, ph.name,
      ph.reversible and "" or "  (POINT OF NO RETURN: no down)",
      ph.state and ("  [" .. ph.state .. "]") or "")
    if ph.description then out[#out + 1] = "  " .. ph.description end
    out[#out + 1] = "  up:"
    sql_lines(ph.up, "    ", out)
    if ph.verify then
      out[#out + 1] = "  verify:"
      sql_lines(ph.verify, "    ", out)
    end
    if ph.down then
      out[#out + 1] = "  down:"
      sql_lines(ph.down, "    ", out)
    else
      out[#out + 1] = "  down: none; a rollback cannot go back past this phase"
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local function md_sql(step, out)
  local lines = {}
  sql_lines(step, "", lines)
  out[#out + 1] = "```sql"
  for _, l in ipairs(lines) do out[#out + 1] = l end
  out[#out + 1] = "```"
end

local function plan_markdown(plan)
  local out = {}
  local n = #plan.phases
  out[#out + 1] = "# Migration plan: " .. plan.migration
  out[#out + 1] = ""
  out[#out + 1] = "## Overview"
  out[#out + 1] = ""
  if plan.description then out[#out + 1] = plan.description; out[#out + 1] = "" end
  out[#out + 1] = "| | |"
  out[#out + 1] = "|---|---|"
  out[#out + 1] = "| Migration | `" .. plan.migration .. "` |"
  out[#out + 1] = "| File | `" .. plan.file .. "` |"
  out[#out + 1] = "| Script SHA-256 | `" .. plan.sha256 .. "` |"
  out[#out + 1] = "| Phases | " .. n .. " |"
  out[#out + 1] = "| Points of no return | " .. (#plan.points_of_no_return > 0
    and ("`" .. table.concat(plan.points_of_no_return, "`, `") .. "`") or "none") .. " |"
  out[#out + 1] = "| State in the database | " .. (plan.state or "not checked (offline)") .. " |"
  if plan.lint then out[#out + 1] = "| Lint | " .. G.lint_summary(plan) .. " |" end
  out[#out + 1] = ""
  out[#out + 1] = "## Phases"
  for _, ph in ipairs(plan.phases) do
    out[#out + 1] = ""
    out[#out + 1] = string.format("### %d. %s", ph.ordinal, ph.name)
    out[#out + 1] = ""
    out[#out + 1] = "**Goal:** " .. (ph.description or "(no description)")
    if ph.state then out[#out + 1] = ""; out[#out + 1] = "**State:** " .. ph.state end
    out[#out + 1] = ""
    out[#out + 1] = "**Steps:**"
    out[#out + 1] = ""
    md_sql(ph.up, out)
    out[#out + 1] = ""
    if ph.down then
      out[#out + 1] = "**Rollback:**"
      out[#out + 1] = ""
      md_sql(ph.down, out)
    else
      out[#out + 1] = "**Rollback:** none. This phase is a point of no return: once it is done, "
        .. "`pgshift rollback` can return to it but not past it."
    end
    if ph.verify then
      out[#out + 1] = ""
      out[#out + 1] = "**Verify gate** (runs after the steps; a failure runs the rollback):"
      out[#out + 1] = ""
      md_sql(ph.verify, out)
    end
  end
  out[#out + 1] = ""
  out[#out + 1] = "## Validation"
  out[#out + 1] = ""
  local gates = {}
  for _, ph in ipairs(plan.phases) do
    if ph.verify then gates[#gates + 1] = "`" .. ph.name .. "`" end
  end
  if #gates > 0 then
    out[#out + 1] = "- Verify gates run after phases " .. table.concat(gates, ", ")
      .. "; `pgshift verify " .. plan.file .. "` re-runs them at any time."
  else
    out[#out + 1] = "- No phase has a verify gate; validation is whatever the phases themselves check."
  end
  out[#out + 1] = "- Every step and its outcome is recorded in `shift.event` (`SELECT * FROM shift.history`)."
  out[#out + 1] = ""
  out[#out + 1] = "## Success criteria"
  out[#out + 1] = ""
  out[#out + 1] = "- `pgshift run " .. plan.file .. "` exits 0."
  out[#out + 1] = "- `SELECT status, phase FROM shift.status WHERE migration = "
    .. quote_literal(nil, plan.migration) .. "` shows `done`, " .. n .. " of " .. n .. "."
  if #gates > 0 then out[#out + 1] = "- `pgshift verify " .. plan.file .. "` exits 0." end
  out[#out + 1] = ""
  out[#out + 1] = "## Rollback"
  out[#out + 1] = ""
  out[#out + 1] = "- A phase that fails runs its own rollback at once; earlier phases stay done."
  out[#out + 1] = "- `pgshift rollback " .. plan.file .. " [--to PHASE]` undoes completed phases, last first."
  if #plan.points_of_no_return > 0 then
    out[#out + 1] = "- Rollback stops at the points of no return: `"
      .. table.concat(plan.points_of_no_return, "`, `") .. "`."
  end
  out[#out + 1] = ""
  out[#out + 1] = "## Sign-off"
  out[#out + 1] = ""
  out[#out + 1] = "- [ ] Reviewed by: ____________________  Date: __________"
  return table.concat(out, "\n") .. "\n"
end

function G.render(plan, format)
  if format == "json" then return output.json(plan) .. "\n" end
  if format == "markdown" then return plan_markdown(plan) end
  return plan_text(plan)
end

-- "3 findings: 1 CRITICAL, 2 HIGH" / "no findings" / "skipped (offline)"
function G.lint_summary(plan)
  local l = plan.lint
  if l == nil then return nil end
  if l.skipped then return "skipped (" .. l.skipped .. ")" end
  if l.findings == 0 then return "no findings" end
  local parts = {}
  for i = #SEVERITIES, 1, -1 do
    local n = l.counts[SEVERITIES[i]]
    if n then parts[#parts + 1] = n .. " " .. SEVERITIES[i] end
  end
  return string.format("%d finding%s: %s", l.findings, l.findings == 1 and "" or "s",
    table.concat(parts, ", "))
end

-- The comment lines plan shows under a statement with findings.
function G.lint_notes(st)
  local out = {}
  for _, f in ipairs(st.findings or {}) do
    out[#out + 1] = string.format("-- lint %s %s: %s", f.severity, f.rule, f.message)
    if f.hint then out[#out + 1] = "--   hint: " .. f.hint end
  end
  return out
end

return G
