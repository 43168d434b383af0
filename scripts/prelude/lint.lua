-- scripts/prelude/lint.lua: `pgshift lint` and the findings `pgshift plan`
-- shows.  The plan's dry run gives the statements each phase would send;
-- shift.lint_script on the server lints them with PostgreSQL's own parser,
-- each recorded statement as one part (db:ddl's with its lock_timeout in
-- force).  Contexts: the up steps of all phases in phase order, so that NOT
-- VALID in one phase and VALIDATE in a later one are seen together; each
-- down and verify after the ups up to its own phase, reporting only its own
-- statements.  Findings are attached to the recorded statements.

local C, P = ...
local output, D, plan_mod = P.output, P.db, P.plan
local T = {}

local SEVERITY_RANK = { LOW = 1, MEDIUM = 2, HIGH = 3, CRITICAL = 4 }

local LINT_SQL = "SELECT part, statement, line, severity, rule, lock, object, message, hint"
  .. " FROM shift.lint_script($1::pg_catalog.text[], $2::pg_catalog.text[], $3::pg_catalog.int4[])"
  .. " ORDER BY part, statement"

-- Lints one context: a list of {phase =, step =, report =}; attaches the
-- findings of the reported steps to their statements.
local function lint_context(db, context)
  local parts, timeouts, phases, owners = {}, {}, {}, {}
  for _, c in ipairs(context) do
    local step = c.phase[c.step]
    for i, st in ipairs(step and step.statements or {}) do
      local n = #owners + 1
      parts[n] = st.sql
      timeouts[n] = st.kind == "ddl" and st.lock_timeout or nil
      phases[n] = c.phase.ordinal
      owners[n] = { phase = c.phase, step = c.step, index = i, statement = st, report = c.report }
    end
  end
  if #owners == 0 then return end
  local rows = db:query(LINT_SQL, D.array_literal(parts, #owners),
    D.array_literal(timeouts, #owners), D.array_literal(phases, #owners))
  for _, r in ipairs(rows) do
    local o = owners[r.part]
    if o and o.report then
      local st = o.statement
      st.findings = st.findings or output.array()
      st.findings[#st.findings + 1] = {
        phase = o.phase.name, ordinal = o.phase.ordinal, step = o.step, statement = o.index,
        where = st.where ~= "" and st.where:gsub(":%s*$", "") or nil, line = r.line,
        severity = r.severity, rule = r.rule, lock = r.lock, object = r.object,
        message = r.message, hint = r.hint, sql = st.sql }
    end
  end
end

-- T.lint_plan(plan, db): lints the plan's steps; plan.lint says what was done.
function T.lint_plan(plan, db)
  local ups = {}
  for _, ph in ipairs(plan.phases) do ups[#ups + 1] = { phase = ph, step = "up", report = true } end
  lint_context(db, ups)
  for i, ph in ipairs(plan.phases) do
    for _, step in ipairs({ "verify", "down" }) do
      if ph[step] then
        local context = {}
        for j = 1, i do context[j] = { phase = plan.phases[j], step = "up", report = false } end
        context[#context + 1] = { phase = ph, step = step, report = true }
        lint_context(db, context)
      end
    end
  end
  local counts, total = {}, 0
  for _, f in ipairs(T.findings(plan)) do
    counts[f.severity] = (counts[f.severity] or 0) + 1
    total = total + 1
  end
  plan.lint = { findings = total, counts = counts }
end

-- Every finding of a linted plan, in phase order: up, verify, down.
function T.findings(plan)
  local out = output.array()
  for _, ph in ipairs(plan.phases) do
    for _, step in ipairs({ "up", "verify", "down" }) do
      for _, st in ipairs(ph[step] and ph[step].statements or {}) do
        for _, f in ipairs(st.findings or {}) do out[#out + 1] = f end
      end
    end
  end
  return out
end

-- T.plan(migration, info) -> the plan (plan.build), linted when info.lint_db
-- is a db (connected), marked as not linted when info.offline.
function T.plan(mig, info)
  local plan = plan_mod.build(mig, info)
  if info.lint_db then T.lint_plan(plan, info.lint_db)
  elseif info.offline then plan.lint = { skipped = "offline" } end
  return plan
end

local function first_line(sql)
  local text = plan_mod.dedent(sql)
  local line = text:match("^[^\n]*")
  return line .. (#line < #text and " ..." or "")
end

-- T.report(mig, db, info) -> output, exit code (output: JSON text, or a
-- list of pieces {text, style}).  info: file, sha256,
-- fail_on (a severity), format ("text" or "json").
function T.report(mig, db, info)
  local plan = T.plan(mig, { file = info.file, sha256 = info.sha256, lint_db = db })
  local findings = T.findings(plan)
  local fail_rank = SEVERITY_RANK[info.fail_on]
  local failing = 0
  for _, f in ipairs(findings) do
    if SEVERITY_RANK[f.severity] >= fail_rank then failing = failing + 1 end
  end
  local stopped = output.array()
  for _, ph in ipairs(plan.phases) do
    for _, step in ipairs({ "up", "verify", "down" }) do
      if ph[step] and ph[step].stopped then
        stopped[#stopped + 1] = { phase = ph.name, step = step, reason = ph[step].stopped }
      end
    end
  end
  local rc = failing > 0 and 1 or 0
  if info.format == "json" then
    return output.json({ migration = plan.migration, file = plan.file, fail_on = info.fail_on,
      failed = failing > 0, failing = failing, counts = plan.lint.counts, findings = findings,
      not_linted = stopped }) .. "\n", rc
  end
  -- text: a list of pieces {text, style}, the severities coloured on a
  -- terminal (inspect.c prints it)
  local out = {}
  local function put(text, style) out[#out + 1] = { text, style } end
  for _, f in ipairs(findings) do
    put(string.format("%s: phase '%s' (%s), statement %d: ", plan.file, f.phase, f.step,
      f.statement))
    put(f.severity, f.severity)
    put(string.format(" %s: %s\n", f.rule, f.message))
    put("    " .. (f.where and (f.where .. ": ") or "")
      .. first_line(f.sql) .. (f.line > 1 and string.format("  (line %d)", f.line) or "") .. "\n")
    if f.hint then put("    hint: " .. f.hint .. "\n") end
  end
  for _, s in ipairs(stopped) do
    put(string.format("%s: phase '%s' (%s): not linted past this point: the dry run stopped: %s\n",
      plan.file, s.phase, s.step, s.reason))
  end
  put(string.format("lint of migration %s: %s; %d at or above %s\n", plan.migration,
    plan_mod.lint_summary(plan), failing, info.fail_on))
  return out, rc
end

return T
