#!/usr/bin/python3
"""A model-based test of operator sequences (issue 24).

Runs random sequences of what operators do -- run, run --to, Ctrl-C, SIGTERM
or SIGKILL of the runner at a random moment, pg_terminate_backend of its
session, an immediate server restart, rollback, rollback --to, a backfill
paused, resumed, cancelled or retuned from SQL, a backfill run from another
session as pg_cron would, a cut-over and its revert from SQL -- against two
migrations (a backfill whose SET is not idempotent, and an int -> bigint key
change through a synced copy), while writers keep writing both tables.
After every action, once no runner is left, it checks the invariants:

  - no application write failed, but for retried lock timeouts, deadlocks,
    serialization failures and the server restarts the sequence itself made;
  - every row of the non-idempotent backfill was changed at most once, every
    row up to a job's checkpoint exactly once, every row once the phase is done;
  - a sync's two tables are equal (shift.compare) whenever its backfill is done;
  - the bookkeeping says what the database holds: no migration running
    without its runner, no backfill job of a phase that is rolled back or
    pending, no phase done whose effects are missing;
  - the live table's sequence is ahead of every id either table holds.

A failing sequence is printed as a replayable JSON list of actions
(--replay FILE) and shrunk to a shorter one that still fails.  The output is
TAP, counted by test/harness.sh.

  operator_model.py --seed N --sequences K --actions M      (make test: fixed seed, short)
  operator_model.py --seed N --minutes T                    (make soak)
  operator_model.py --terminations 20                       (terminations under load)
  operator_model.py --replay FILE
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psycopg2
import psycopg2.extensions

PGSHIFT = os.environ.get("PGSHIFT", "pgshift")
PGBIN = os.environ.get("PGSHIFT_PGBIN", "/usr/lib/postgresql/15/bin")
PGDATA = os.environ.get("PGSHIFT_DATA")
PGLOG = os.environ.get("PGSHIFT_LOG")

ROWS = int(os.environ.get("MODEL_ROWS", "12000"))
RETRYABLE = {"55P03", "40P01", "40001", "57014"}

BUMP = """
return migration {
  name = "bump",
  phases = {
    { name = "expand",
      up = function(db) db:ddl "ALTER TABLE counters ADD COLUMN IF NOT EXISTS bumped int NOT NULL DEFAULT 0" end,
      down = function(db) db:ddl "ALTER TABLE counters DROP COLUMN IF EXISTS bumped" end },
    { name = "backfill",
      -- not idempotent: run twice on a row, it shows
      up = function(db)
        db:backfill { table = "counters", set = "bumped = bumped + 1", batch_min = 100, batch_max = 100,
                      target_ms = 20, sleep_ratio = 8 }
      end,
      -- as in the README's examples: nothing to undo, the column goes with expand's down
      down = function(db) end },
    { name = "validate",
      up = function(db) end,
      verify = function(db)
        local bad = db:value "SELECT count(*) FROM counters WHERE bumped < 1"
        assert(bad == 0, tostring(bad) .. " rows not bumped")
      end,
      down = function(db) end },
  },
}
"""

ORDERS = """
return migration {
  name = "orders",
  phases = {
    { name = "expand",
      up = function(db)
        db:ddl [[CREATE TABLE IF NOT EXISTS orders_v2 (
                   id bigint PRIMARY KEY DEFAULT nextval('orders_id_seq'),
                   customer text NOT NULL, amount int NOT NULL)]]
      end,
      down = function(db) db:ddl "DROP TABLE IF EXISTS orders_v2" end },
    { name = "sync",
      up = function(db)
        db:value "SELECT shift.copy_grants('orders', 'orders_v2')"
        db:sync { name = "orders", table = "orders", into = "orders_v2" }
      end,
      down = function(db)
        db:sync_drop "orders"
        db:ddl "TRUNCATE orders_v2"
      end },
    { name = "backfill",
      up = function(db)
        db:backfill { table = "orders", into = "orders_v2", on_conflict = "nothing",
                      batch_min = 100, batch_max = 100, target_ms = 20, sleep_ratio = 8 }
      end,
      down = function(db) end },
    { name = "validate",
      up = function(db)
        local r = db:compare { source = "orders", target = "orders_v2" }
        if not r.equal then error("orders_v2 differs: " .. r.summary) end
      end,
      down = function(db) end },
    { name = "cutover",
      up = function(db) db:cutover { sync = "orders", lock_timeout = "300ms", retries = 30 } end,
      down = function(db) db:cutover_revert { sync = "orders", lock_timeout = "300ms", retries = 30 } end },
    { name = "contract",
      up = function(db)
        db:sync_drop "orders"
        db:ddl "DROP TABLE IF EXISTS orders_archive"
      end },
  },
}
"""

MIGRATIONS = {"bump": BUMP, "orders": ORDERS}
PHASES = {"bump": ["expand", "backfill", "validate"],
          "orders": ["expand", "sync", "backfill", "validate", "cutover", "contract"]}
JOBS = {"bump": "bump:backfill", "orders": "orders:backfill"}


def tap(ok, n, desc, lines=()):
    print(("ok" if ok else "not ok") + " %d - %s" % (n, desc))
    for line in lines:
        for part in str(line).splitlines():
            print("#   " + part)
    sys.stdout.flush()


class Violation(Exception):
    pass


def as_postgres(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class World:
    """One database, its migrations' files and its writers."""

    def __init__(self, name, workdir):
        self.db = name
        self.workdir = workdir
        self.paths = {}
        for mig, text in MIGRATIONS.items():
            path = os.path.join(workdir, mig + ".lua")
            with open(path, "w") as f:
                f.write(text)
            self.paths[mig] = path
        self.failures = []
        self.retries = 0
        self.restarting = threading.Event()
        self.restarts = 0               # server restarts the sequence made so far
        self.stop = threading.Event()
        self.writers = []
        self.contracted = False

    # ---- connections
    def connect(self, dbname=None, autocommit=True):
        c = psycopg2.connect(dbname=dbname or self.db)
        c.autocommit = autocommit
        return c

    def q(self, sql, args=None):
        """One statement in its own connection, tried again while the server
        restarts (a lost or refused connection); SQL errors are raised."""
        for attempt in range(60):
            try:
                c = self.connect()
            except psycopg2.OperationalError:
                time.sleep(0.5)
                continue
            try:
                cur = c.cursor()
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
            except psycopg2.Error as e:
                if e.pgcode is None or e.pgcode.startswith(("08", "57P")):
                    time.sleep(0.5)
                    continue
                raise
            finally:
                c.close()
        raise Violation("the server did not come back: " + sql)

    def v(self, sql, args=None):
        rows = self.q(sql, args)
        return rows[0][0] if rows else None

    # ---- setup
    def create(self):
        c = self.connect("postgres")
        cur = c.cursor()
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db)
        cur.execute("CREATE DATABASE %s" % self.db)
        c.close()
        self.q("""
            CREATE EXTENSION pg_shift;
            CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, note text);
            INSERT INTO counters SELECT g, 0, 'c' FROM generate_series(1, %d) g;
            CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
            INSERT INTO orders (customer, amount) SELECT 'c' || g, g %% 100 FROM generate_series(1, %d) g;
            ANALYZE counters; ANALYZE orders;
        """ % (ROWS, ROWS))

    # ---- writers: the application, writing all along
    def writer(self, seed, kind):
        rnd = random.Random(seed)
        conn = None
        # the restarts finished before the connection was opened (-1: it was
        # opened while one was going on, and may go with it)
        seen = self.restarts
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    seen = -1 if self.restarting.is_set() else self.restarts
                    conn = self.connect(autocommit=False)
                    conn.cursor().execute("SET lock_timeout = '2s'")
                    conn.commit()
                cur = conn.cursor()
                r = rnd.random()
                if kind == "counters":
                    k = rnd.randint(1, ROWS)
                    if r < 0.8:
                        cur.execute("UPDATE counters SET n = n + 1, note = %s WHERE id = %s", ("w", k))
                    else:
                        cur.execute("DELETE FROM counters WHERE id = %s", (k,))
                else:
                    if r < 0.4:
                        cur.execute("INSERT INTO orders (customer, amount) VALUES (%s, %s)",
                                    ("w", rnd.randint(1, 99)))
                    elif r < 0.85:
                        cur.execute("UPDATE orders SET amount = amount + 1 WHERE id = "
                                    "(SELECT max(id) - %s FROM orders)", (rnd.randint(0, 200),))
                    else:
                        cur.execute("DELETE FROM orders WHERE id = (SELECT max(id) - %s FROM orders)",
                                    (rnd.randint(0, 2000),))
                conn.commit()
            except psycopg2.Error as e:
                state = getattr(e, "pgcode", None)
                try:
                    if conn is not None:
                        conn.rollback()
                except psycopg2.Error:
                    pass
                # a lost connection has no SQLSTATE; psycopg2 raises it as an
                # OperationalError, or, lost in commit, as a plain DatabaseError
                # after which neither conn.closed nor libpq's status tells: the
                # message of libpq does
                gone = conn is None or conn.closed != 0 or any(
                    m in str(e) for m in ("server closed the connection", "connection to server",
                                          "no connection to the server"))
                if state in RETRYABLE:
                    self.retries += 1
                elif (state is None and (gone or isinstance(e, (psycopg2.OperationalError,
                                                                  psycopg2.InterfaceError)))) \
                        or (state and state.startswith(("08", "57P"))):
                    # the connection went: only a server restart of the sequence may do that
                    if not self.restarting.is_set() and self.restarts == seen:
                        self.failures.append("%s writer: %s (%s)" % (kind, str(e).strip(), state))
                    try:
                        if conn is not None:
                            conn.close()
                    except psycopg2.Error:
                        pass
                    conn = None
                    time.sleep(0.2)
                else:
                    self.failures.append("%s writer: %s (%s)" % (kind, str(e).strip(), state))
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    def start_writers(self, seed):
        self.stop.clear()
        for i, kind in enumerate(["counters", "orders"]):
            t = threading.Thread(target=self.writer, args=(seed * 10 + i, kind), daemon=True)
            t.start()
            self.writers.append(t)

    def stop_writers(self):
        self.stop.set()
        for t in self.writers:
            t.join(10)
        self.writers = []

    # ---- the runner
    def pgshift(self, args, background=False):
        cmd = [PGSHIFT, "--dsn", "dbname=" + self.db] + args
        if background:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout

    def wait_no_runner(self, timeout=30):
        """Until no session of pgshift is left (a killed runner's ends within a second)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            n = self.v("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE 'pgshift%%' AND pid <> pg_backend_pid()")
            if n == 0:
                return
            time.sleep(0.05)
        raise Violation("a pgshift session is still there %d s after its runner ended" % timeout)

    def restart_server(self):
        self.restarting.set()
        try:
            subprocess.run(as_postgres([os.path.join(PGBIN, "pg_ctl"), "-D", PGDATA, "-l", PGLOG,
                                        "-m", "immediate", "-w", "-t", "60", "restart"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        finally:
            time.sleep(1.0)
            self.restarts += 1
            self.restarting.clear()


# ---------------------------------------------------------------- actions

def random_action(rnd, world_state):
    mig = rnd.choice(["bump", "orders"])
    phases = PHASES[mig]
    # the orders contract is a point of no return: rarely, and then that migration is over
    runnable = phases if rnd.random() < 0.05 else phases[:-1] if mig == "orders" else phases
    kinds = [("run", 3), ("run_to", 3), ("interrupt", 4), ("terminate", 3), ("restart", 1),
             ("rollback", 2), ("rollback_to", 2), ("job", 3), ("external_run", 2),
             ("cutover_sql", 1), ("wait", 1)]
    total = sum(w for _, w in kinds)
    x = rnd.uniform(0, total)
    for kind, w in kinds:
        x -= w
        if x <= 0:
            break
    if kind in ("interrupt", "terminate", "restart"):
        # faults hit the backfills most (the non-idempotent one more often),
        # through a run that goes past them
        mig = "bump" if rnd.random() < 0.6 else "orders"
        phases = PHASES[mig]
        runnable = phases[phases.index("backfill"):]
        if mig == "orders":
            runnable = runnable[:-1]
    a = {"kind": kind, "mig": mig}
    if kind == "run_to":
        a["to"] = rnd.choice(runnable)
    elif kind == "interrupt":
        a["signal"] = rnd.choice(["INT", "TERM", "KILL"])
        a["delay"] = round(rnd.uniform(0.1, 1.8), 2)
        a["to"] = rnd.choice(runnable)
    elif kind in ("terminate", "restart"):
        a["delay"] = round(rnd.uniform(0.2, 1.8), 2)
        a["to"] = rnd.choice(runnable)
    elif kind == "run" and mig == "orders" and rnd.random() > 0.05:
        # a run of orders stops before its contract, but rarely
        a["kind"], a["to"] = "run_to", "cutover"
    elif kind == "rollback_to":
        a["to"] = rnd.choice(phases[:-1])
    elif kind == "job":
        # (not backfill_drop: dropping a job throws its checkpoint away, by design)
        a["op"] = rnd.choice(["pause", "resume", "resume", "cancel", "set"])
        a["sleep_ratio"] = rnd.choice([0, 1, 4])
    elif kind == "external_run":
        a["batches"] = rnd.randint(1, 20)
    elif kind == "cutover_sql":
        a["op"] = rnd.choice(["cutover", "cutover_revert"])
    elif kind == "wait":
        a["seconds"] = round(rnd.uniform(0.2, 1.5), 2)
    return a


def run_action(w, a):
    """Carries out action a; returns a short description of what happened."""
    kind, mig = a["kind"], a["mig"]
    path = w.paths[mig]
    if w.contracted and mig == "orders" and kind in ("run", "run_to", "interrupt", "terminate",
                                                     "restart", "rollback", "rollback_to"):
        return "skipped: orders is contracted"
    if kind == "run":
        rc, out = w.pgshift(["run", path, "--lock-wait", "5"])
        return "run %s: exit %d" % (mig, rc)
    if kind == "run_to":
        rc, out = w.pgshift(["run", path, "--to", a["to"], "--lock-wait", "5"])
        return "run %s --to %s: exit %d" % (mig, a["to"], rc)
    if kind == "rollback":
        rc, out = w.pgshift(["rollback", path, "--lock-wait", "5"])
        return "rollback %s: exit %d" % (mig, rc)
    if kind == "rollback_to":
        rc, out = w.pgshift(["rollback", path, "--to", a["to"], "--lock-wait", "5"])
        return "rollback %s --to %s: exit %d" % (mig, a["to"], rc)
    if kind in ("interrupt", "terminate", "restart"):
        p = w.pgshift(["run", path, "--to", a["to"], "--lock-wait", "5"], background=True)
        time.sleep(a["delay"])
        what = "finished first"
        if p.poll() is None:
            if kind == "interrupt":
                p.send_signal({"INT": signal.SIGINT, "TERM": signal.SIGTERM,
                               "KILL": signal.SIGKILL}[a["signal"]])
                what = "SIG" + a["signal"]
            elif kind == "terminate":
                n = w.v("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = 'pgshift'")
                what = "terminated %s session(s)" % n
            else:
                w.restart_server()
                what = "server restarted"
        try:
            p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise Violation("the runner did not end within 120 s after: " + what)
        return "%s %s --to %s after %.2fs: %s, exit %d" % (kind, mig, a["to"], a["delay"], what, p.returncode)
    if kind == "job":
        job = JOBS[mig]
        try:
            if a["op"] == "set":
                w.q("SELECT shift.backfill_set(%s, sleep_ratio => %s)", (job, a["sleep_ratio"]))
            else:
                w.q("SELECT shift.backfill_%s(%%s)" % a["op"], (job,))
            return "backfill_%s(%s): done" % (a["op"], job)
        except psycopg2.Error as e:
            return "backfill_%s(%s): %s" % (a["op"], job, str(e).splitlines()[0])
    if kind == "external_run":
        job = JOBS[mig]
        try:
            w.q("CALL shift.backfill_run(%s, max_batches => %s)", (job, a["batches"]))
            return "CALL backfill_run(%s, %d batches): done" % (job, a["batches"])
        except psycopg2.Error as e:
            return "CALL backfill_run(%s): %s" % (job, str(e).splitlines()[0])
    if kind == "cutover_sql":
        try:
            w.q("SELECT * FROM shift.%s('orders', lock_timeout => '300ms', retries => 30)" % a["op"])
            return "%s(orders): done" % a["op"]
        except psycopg2.Error as e:
            return "%s(orders): %s" % (a["op"], str(e).splitlines()[0])
    if kind == "wait":
        time.sleep(a["seconds"])
        return "waited %.2fs" % a["seconds"]
    raise ValueError(kind)


# ---------------------------------------------------------------- invariants

def check(w):
    """Raises Violation naming every invariant that does not hold."""
    w.wait_no_runner()
    bad = []
    if w.failures:
        bad += ["an application write failed: " + f for f in w.failures[:5]]
        w.failures.clear()
    # the bookkeeping: no migration running without its runner
    for name, status in w.q("SELECT migration, status FROM shift.status WHERE status = 'running'"):
        bad.append("migration %s is shown running, but no runner is left" % name)
    for mig, phase, status in w.q(
            "SELECT b.migration, b.phase, p.status FROM shift.backfill b "
            "JOIN shift.phase p ON p.migration = b.migration AND p.name = b.phase "
            "WHERE p.status IN ('rolled_back', 'pending')"):
        bad.append("backfill job of %s.%s is left although the phase is %s" % (mig, phase, status))
    status = dict(((m, p), s) for m, p, s in w.q("SELECT migration, name, status FROM shift.phase"))

    # bump: its backfill's down undoes nothing (as in the README's examples),
    # so each rollback of it by an operator, since the column was last made,
    # allows one more bump of a row (the next run's job does them again); an
    # interruption allows none: it must be resumed, never undone and redone
    has_col = w.v("SELECT count(*) FROM pg_attribute WHERE attrelid = 'counters'::regclass "
                  "AND attname = 'bumped' AND NOT attisdropped")
    if has_col:
        rolled = w.v("""SELECT count(*) FROM shift.event e
                         WHERE e.migration = 'bump' AND e.phase = 'backfill' AND e.kind = 'phase_rolled_back'
                           AND e.id > coalesce((SELECT max(x.id) FROM shift.event x WHERE x.migration = 'bump'
                                                  AND x.phase = 'expand' AND x.kind = 'phase_rolled_back'), 0)""")
        over = w.v("SELECT count(*) FROM counters WHERE bumped > 1 + %s OR bumped < 0", (rolled,))
        if over:
            bad.append("%d rows of counters were bumped more than once per job (%d operator rollbacks "
                       "of the backfill allow %d)" % (over, rolled, 1 + rolled))
        job = w.q("SELECT state, last_key_text FROM shift.backfill WHERE name = 'bump:backfill'")
        if job and job[0][1] is not None:
            missed = w.v("SELECT count(*) FROM counters WHERE id <= %s AND bumped < 1",
                         (int(job[0][1]),))
            if missed:
                bad.append("%d rows up to the checkpoint %s were not bumped" % (missed, job[0][1]))
        if status.get(("bump", "backfill")) == "done":
            missed = w.v("SELECT count(*) FROM counters WHERE bumped < 1")
            if missed:
                bad.append("bump's backfill is done but %d rows are not bumped" % missed)
    elif status.get(("bump", "expand")) == "done":
        bad.append("bump's expand is done but counters.bumped does not exist")

    # orders: the sync's two tables equal once its backfill is done
    # (definition_ok came with 0.2.0: the model runs against 0.1.0 too, to show what it finds there)
    ok_col = "definition_ok" if w.v("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                    "'shift.sync_status'::regclass AND attname = 'definition_ok'") else "true"
    sync = w.q("SELECT source::text, destination::text, direction, %s FROM shift.sync_status "
               "WHERE name = 'orders'" % ok_col)
    if sync:
        src, dst, direction, ok = sync[0]
        if not ok:
            bad.append("sync orders' definition is not what its triggers were made for")
        if status.get(("orders", "backfill")) == "done":
            diff = w.q("SELECT kind, key::text FROM shift.compare(%s, %s) LIMIT 5", (src, dst))
            if diff:
                bad.append("sync orders: %s and %s differ: %s" % (src, dst, diff))
    elif status.get(("orders", "sync")) == "done" and status.get(("orders", "contract")) != "done":
        bad.append("orders' sync phase is done but there is no sync")
    tables = [t for t in ("orders", "orders_v2", "orders_archive") if w.v("SELECT to_regclass(%s) IS NOT NULL", (t,))]
    if status.get(("orders", "expand")) == "done" and status.get(("orders", "contract")) != "done" \
            and not ("orders_v2" in tables or "orders_archive" in tables):
        bad.append("orders' expand is done but neither orders_v2 nor orders_archive exists")
    # the live table's sequence is ahead of every id either table holds
    top = max([w.v("SELECT coalesce(max(id), 0) FROM %s" % t) for t in tables] + [0])
    last = w.v("SELECT last_value FROM orders_id_seq")
    if last is not None and top > last:
        bad.append("orders_id_seq (at %s) is behind id %s a table holds" % (last, top))
    if bad:
        raise Violation("\n".join(bad))


# ---------------------------------------------------------------- sequences

def run_sequence(actions, db, seed, log):
    """Runs the actions against a fresh database; returns (failed_at, message) or None."""
    work = tempfile.mkdtemp(prefix="pgshift-model.")
    w = World(db, work)
    w.create()
    w.start_writers(seed)
    try:
        for i, a in enumerate(actions):
            what = run_action(w, a)
            if w.v("SELECT status FROM shift.phase WHERE migration = 'orders' AND name = 'contract'") == "done":
                w.contracted = True
            log.append("%3d %s" % (i + 1, what))
            try:
                check(w)
            except Violation as v:
                return i, str(v)
        return None
    finally:
        w.stop_writers()
        c = w.connect("postgres")
        c.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        c.close()


def shrink(actions, db, seed, budget):
    """Removes actions (halves, then one at a time) while the sequence still fails."""
    best = actions
    chunk = max(1, len(best) // 2)
    tries = 0
    while chunk >= 1 and tries < budget:
        i = 0
        progressed = False
        while i < len(best) and tries < budget:
            cand = best[:i] + best[i + chunk:]
            tries += 1
            if cand and run_sequence(cand, db, seed, []) is not None:
                best = cand
                progressed = True
            else:
                i += chunk
        if not progressed:
            chunk //= 2
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "0") or 0) or int(time.time()))
    ap.add_argument("--sequences", type=int, default=0)
    ap.add_argument("--actions", type=int, default=12)
    ap.add_argument("--minutes", type=float, default=0)
    ap.add_argument("--shrink", type=int, default=8, help="re-runs spent shrinking a failure")
    ap.add_argument("--replay")
    ap.add_argument("--terminations", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="print every sequence's actions")
    args = ap.parse_args()

    if args.terminations:
        return terminations(args.terminations, args.seed)
    n = 0
    failed = 0
    counts = {}
    started = time.time()
    rnd = random.Random(args.seed)
    print("# seed %d" % args.seed)
    while True:
        if args.replay:
            with open(args.replay) as f:
                actions = json.load(f)
        else:
            if args.sequences and n >= args.sequences:
                break
            if args.minutes and time.time() - started > args.minutes * 60:
                break
            if not args.sequences and not args.minutes:
                break
            actions = [random_action(rnd, None) for _ in range(args.actions)]
        n += 1
        for a in actions:
            counts[a["kind"]] = counts.get(a["kind"], 0) + 1
        log = []
        res = run_sequence(actions, "model_%d" % n, args.seed + n, log)
        if res is None:
            tap(True, n, "sequence %d: %d actions, every invariant held after each" % (n, len(actions)),
                log if args.verbose else ())
        else:
            failed += 1
            at, msg = res
            short = shrink(actions[:at + 1], "model_%d_shrink" % n, args.seed + n, args.shrink)
            tap(False, n, "sequence %d: invariant broken after action %d" % (n, at + 1),
                ["what broke:"] + msg.splitlines() + ["the sequence:"] + log +
                ["replay the shortest failing sequence found (%d actions) with --replay FILE:" % len(short),
                 json.dumps(short)])
        if args.replay:
            break
    print("# %d sequences, %d failed, in %.0f s; actions run: %s" % (
        n, failed, time.time() - started,
        ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items()))))
    return 1 if failed else 0


def terminations(count, seed):
    """count terminations of the runner's session during the non-idempotent
    backfill, under the writers' load: no row lost, none bumped twice."""
    rnd = random.Random(seed)
    global ROWS
    ROWS = int(os.environ.get("MODEL_TERMINATION_ROWS", "80000"))
    work = tempfile.mkdtemp(prefix="pgshift-model.")
    w = World("model_terminations", work)
    w.create()
    w.start_writers(seed)
    done = 0
    rc = 0
    try:
        started = time.time()
        w.pgshift(["run", w.paths["bump"], "--to", "expand"])
        w.q("SELECT 1")

        # the job's batches, polled every 5 ms through one connection (the
        # server is never restarted here; a connection a poll costs a backend)
        poll = w.connect()

        def batches():
            with poll.cursor() as cur:
                cur.execute("SELECT coalesce(max(batches), 0) FROM shift.backfill WHERE name = 'bump:backfill'")
                return cur.fetchone()[0]
        while done < count:
            before = batches()
            p = w.pgshift(["run", w.paths["bump"], "--to", "backfill", "--lock-wait", "5"], background=True)
            # the kill lands while the job works: after it has committed
            # between one and twenty more batches than before (a fixed delay let
            # a fast machine finish all rows before the last termination);
            # 20 kills x 20 batches of 100 rows stay under ROWS, so each of them
            # finds the job unfinished
            want = before + rnd.randint(1, 20)
            while p.poll() is None and batches() < want:
                time.sleep(0.005)
            time.sleep(rnd.uniform(0, 0.01))
            # on a loaded machine the runner may not have connected yet: a
            # termination that finds no session of it is tried again, until
            # one does or the run has ended
            hit = 0
            while hit == 0 and p.poll() is None:
                hit = w.v("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND application_name = 'pgshift'")
                if hit == 0:
                    time.sleep(0.05)
            if hit == 0:
                break
            p.communicate(timeout=120)
            done += 1
            check(w)
        poll.close()
        # the terminations are over: the rest of the job runs without its
        # rests (sleep_ratio 8 kept the runs above slow enough to be caught),
        # under the writers' load still, and must bump each row left once
        w.q("SELECT shift.backfill_set('bump:backfill', sleep_ratio => 0)")
        last = time.time()
        rc_run, out = w.pgshift(["run", w.paths["bump"], "--lock-wait", "10"])
        check(w)
        print("# %d terminations in %.0f s, then the last run in %.0f s" % (
            done, last - started, time.time() - last))
        bumped = w.q("SELECT bumped, count(*) FROM counters GROUP BY 1 ORDER BY 1")
        ok = rc_run == 0 and bumped and len(bumped) == 1 and bumped[0][0] == 1
        tap(ok, 1, "%d terminations of the runner's session during a non-idempotent backfill under load:"
                   " every row bumped exactly once" % done,
            [] if ok else ["exit %d" % rc_run, out, "bumped -> rows: %s" % bumped])
        tap(done == count, 2, "the backfill was terminated %d times before it finished" % done)
        rc = 0 if ok and done == count else 1
    except Violation as v:
        tap(False, 1, "an invariant broke after termination %d" % done, str(v).splitlines())
        rc = 1
    finally:
        w.stop_writers()
    return rc


if __name__ == "__main__":
    sys.exit(main())
