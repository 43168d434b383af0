#!/usr/bin/env python3
"""Runs every code block of the documentation, so the docs cannot drift.

    doctest.py FILE.md ...

Each Markdown file gets a fresh database (doc_<file stem>) and a scratch
directory ($DOCDIR, where `scripts` links to the repository's scripts/, so
`scripts/examples/...` reads as from the repository's root), and its blocks
run in order in that directory, against that database, as a reader would
type them, with PGDATABASE set and the installed pgshift on PATH:

  ```sql    psql -v ON_ERROR_STOP=1 runs it
  ```sh     bash -e -o pipefail runs it
  ```lua    a migration file: `pgshift plan --offline` checks it (it is
            loaded, validated, and every up, down and verify function runs
            against the dry-run db); the dry run must not stop (a misspelt
            option of a db call stops it too), unless the block is also run
            for real (`run`) or written to a file for later blocks (`file`)
  ```yaml   a declarative migration document (also ```json): checked and
            marked like a lua block
  ```text   output or a synopsis: not code, not run

Any other block (no language, or another one) is a failure: every block is
either run or marked as text.

A comment on the line just before a block's fence changes what happens to it
(none of this shows on a rendered page):

  <!-- doctest: error -->        the block must fail (a non-zero exit)
  <!-- doctest: expect TEXT -->  its output must contain TEXT (several expect
                                 lines: all of them)
  <!-- doctest: file PATH -->    a lua block is also written to PATH (under
                                 the file's scratch directory, $DOCDIR), for
                                 the blocks after it to run
  <!-- doctest: run -->          a lua block is also run for real (`pgshift
                                 run`) against the file's database
  <!-- doctest: repo -->         run in the repository's root instead of
                                 $DOCDIR (`make ...`)
  <!-- doctest: phases -->       a lua block is a list of phases: it is checked
                                 inside a migration
  <!-- doctest: body -->         a lua block is the body of a phase's up
  <!-- doctest: skip REASON -->  not run, and the reason is printed (the quick
                                 start's `make test` cannot run inside make test)

Setup a reader does not need to see goes in a hidden block, run like a
visible one:

  <!-- doctest: setup
  ```sql
  CREATE TABLE users (...);
  ```
  -->

One mark may follow `setup` on its line (`<!-- doctest: setup file x.lua`),
since a comment cannot hold another.

Prints TAP: one line per block, "ok N - FILE:LINE sql"; with DOCTEST_VERBOSE
set, every block's output follows its line as TAP comments.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

FENCE = re.compile(r'^(\s*)```(\w*)\s*$')
MARK = re.compile(r'^\s*<!--\s*doctest:\s*(\w+)\s*(.*?)\s*(-->)?\s*$')
LANGS = ('sql', 'sh', 'lua', 'yaml', 'json')


class Block:
    def __init__(self, path, line, lang, text, marks, hidden):
        self.path, self.line, self.lang, self.text = path, line, lang, text
        self.marks, self.hidden = marks, hidden

    def mark(self, name):
        for m, arg in self.marks:
            if m == name:
                return arg
        return None

    def all_marks(self, name):
        return [arg for m, arg in self.marks if m == name]

    def where(self):
        return f'{self.path}:{self.line} {self.lang}' + (' (setup)' if self.hidden else '')


def parse(path):
    """The fenced blocks of a Markdown file, with their doctest marks."""
    lines = open(path, encoding='utf-8').read().split('\n')
    blocks, marks, hidden = [], [], False
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARK.match(line)
        if m:
            if m.group(1) == 'setup':
                hidden = True
                if m.group(2):
                    name, _, arg = m.group(2).partition(' ')
                    marks.append((name, arg.strip()))
            else:
                marks.append((m.group(1), m.group(2)))
            i += 1
            continue
        if hidden and line.strip() == '-->':
            hidden = False
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            indent, lang = f.group(1), f.group(2)
            start = i + 1
            j = start
            while j < len(lines) and not re.match(r'^\s*```\s*$', lines[j]):
                j += 1
            if j == len(lines):
                raise SystemExit(f'{path}:{i + 1}: a code block is not closed')
            body = [l[len(indent):] if l.startswith(indent) else l for l in lines[start:j]]
            blocks.append(Block(path, i + 1, lang, '\n'.join(body) + '\n', marks, hidden))
            marks = []
            i = j + 1
            continue
        if line.strip():
            marks = []
        i += 1
    return blocks


TIMEOUT = 300


def sh(cmd, env, cwd, stdin=None):
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, input=stdin, capture_output=True, text=True,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b'') + (e.stderr or b'')
        if isinstance(out, bytes):
            out = out.decode('utf-8', 'replace')
        return -1, out + f'\n(stopped after {TIMEOUT} s)'
    return p.returncode, p.stdout + p.stderr


def lua_file(block, scratch, n):
    text = block.text
    if block.mark('phases') is not None:
        text = 'return migration {\n  name = "doc_phases_%d",\n  phases = {\n%s\n  },\n}\n' % (n, text)
    elif block.mark('body') is not None:
        text = ('return migration {\n  name = "doc_body_%d",\n  phases = {\n'
                '    { name = "p", up = function(db)\n%s\n    end },\n  },\n}\n') % (n, text)
    path = os.path.join(scratch, 'block_%d.%s' % (n, block.lang))
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def run_file(md, root, pgshift, counter):
    stem = re.sub(r'[^a-z0-9]+', '_', os.path.splitext(os.path.basename(md))[0].lower())
    db = 'doc_' + stem
    scratch = tempfile.mkdtemp(prefix='pgshift-doc-')
    os.chmod(scratch, 0o755)
    os.symlink(os.path.join(root, 'scripts'), os.path.join(scratch, 'scripts'))
    env = dict(os.environ)
    env.update(PGDATABASE=db, DOCDIR=scratch,
               PATH=os.path.dirname(pgshift) + os.pathsep + env.get('PATH', ''))
    env.setdefault('PGOPTIONS', '-c client_min_messages=warning')
    subprocess.run(['dropdb', '--if-exists', '--force', db], env=env, capture_output=True)
    rc, out = sh(['createdb', db], env, root)
    if rc != 0:
        print(f'Bail out! createdb {db}: {out}')
        sys.exit(1)
    failed = 0
    try:
        for b in parse(md):
            if b.lang == 'text':
                continue
            counter[0] += 1
            n = counter[0]
            if b.lang not in LANGS:
                failed += 1
                print(f'not ok {n} - {b.where()}: a block that is neither run ({", ".join(LANGS)}) '
                      'nor marked text')
                continue
            skip = b.mark('skip')
            if skip is not None:
                print(f'ok {n} - {b.where()} # SKIP {skip}')
                continue
            cwd = root if b.mark('repo') is not None else scratch
            unchecked = None
            started = time.monotonic()
            if b.lang == 'sql':
                rc, out = sh(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'], env, cwd, b.text)
            elif b.lang == 'sh':
                rc, out = sh(['bash', '-e', '-o', 'pipefail', '-c', b.text], env, cwd)
            else:
                dest = b.mark('file')
                if dest:
                    target = os.path.join(scratch, dest)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, 'w', encoding='utf-8') as f:
                        f.write(b.text)
                path = lua_file(b, scratch, n)
                rc, out = sh([pgshift, 'plan', '--offline', path], env, cwd)
                stopped = [l.strip() for l in out.split('\n') if 'the dry run stopped here' in l]
                if rc == 0 and b.mark('run') is not None:
                    rc, more = sh([pgshift, 'run', path], env, cwd)
                    out += more
                elif rc == 0 and stopped and dest is None:
                    unchecked = 'nothing runs it for real, and its dry run stopped (' + stopped[0] + ')'
            want_error = b.mark('error') is not None
            problems = []
            if want_error and rc == 0:
                problems.append('expected it to fail, it exited 0')
            if not want_error and rc != 0:
                problems.append(f'exited {rc}')
            for expect in b.all_marks('expect'):
                if expect not in out:
                    problems.append(f'its output lacks {expect!r}')
            if unchecked:
                problems.append(unchecked)
            if problems:
                failed += 1
                print(f'not ok {n} - {b.where()}: ' + '; '.join(problems))
                for l in (b.text.rstrip('\n').split('\n') + ['--- output'] + out.rstrip('\n').split('\n')):
                    print('#   ' + l)
            else:
                print(f'ok {n} - {b.where()}')
                if os.environ.get('DOCTEST_VERBOSE'):
                    print(f'#   ({time.monotonic() - started:.1f} s)')
                    for l in out.rstrip('\n').split('\n'):
                        print('#   ' + l)
    finally:
        subprocess.run(['dropdb', '--if-exists', '--force', db], env=env, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return failed


def main():
    root = os.environ.get('PGSHIFT_ROOT') or os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    pgshift = os.environ.get('PGSHIFT') or shutil.which('pgshift')
    if not pgshift:
        raise SystemExit('doctest.py: set PGSHIFT to the installed runner')
    counter = [0]
    failed = 0
    for md in sys.argv[1:]:
        failed += run_file(os.path.relpath(md, root) if os.path.isabs(md) else md, root, pgshift, counter)
    print(f'1..{counter[0]}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
