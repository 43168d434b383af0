-- scripts/prelude/api.lua: what the C side of the runner calls in the
-- prelude (pgs_push_prelude_function), by name.  Loaded last.

local C, P = ...

return {
  configure = P.output.configure,       -- script.c: the command's settings
  emit = P.output.emit,                 -- pgs_emit: a progress event
  json = P.output.json,
  json_line = P.output.json_line,       -- pgs_json_line: compare's JSON lines
  load = P.loader.load,                 -- pgs_load_migration
  phases_json = P.loader.phases_json,   -- engine.c: for shift.migration_begin
  plan = P.lint.plan,                   -- inspect.c: pgshift plan
  render_plan = P.plan.render,
  lint_report = P.lint.report,          -- inspect.c: pgshift lint
  status = P.status.status,             -- inspect.c: pgshift status
  project_status = P.status.project,    -- project.c: pgshift status DIR
  report = P.report.report,             -- report.c: pgshift report
}
