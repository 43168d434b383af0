#!/usr/bin/env bash
# Help that answers: every command's --help against the parser (each option
# it lists parses for that command, each option the parser takes for it is
# listed, help COMMAND = COMMAND --help), the installed man page (renders
# without a warning, names every command and option), the installed bash
# completion run for real in bash, the zsh one parsed by zsh, and colour
# (--color, NO_COLOR, TERM=dumb, a pty for auto; never in JSON, never for
# what a migration prints).
. "$(dirname "$0")/lib.sh"

SHARE=$(cd "$(dirname "$PGSHIFT")/.." && pwd)/share
MAN=$SHARE/man/man1/pgshift.1
BASH_COMP=$SHARE/bash-completion/completions/pgshift
ZSH_COMP=$SHARE/zsh/site-functions/_pgshift

# ---- what make install put next to the binary is what the binary says
for f in "$MAN" "$BASH_COMP" "$ZSH_COMP"; do
  if [ -s "$f" ]; then ok "installed: ${f#"$SHARE"/}"; else not_ok "make install did not install $f"; fi
done
pgshift --man
expect_eq "the installed man page is pgshift --man's" "$(cat "$MAN")" "$OUT"
pgshift completion bash
expect_eq "the installed bash completion is pgshift completion bash's" "$(cat "$BASH_COMP")" "$OUT"
pgshift completion zsh
expect_eq "the installed zsh completion is pgshift completion zsh's" "$(cat "$ZSH_COMP")" "$OUT"

# complete WORD...: the installed bash completion's answer for the command
# line WORD... (the last word is the one completed), one per line, sorted
complete() {
  bash -c 'source "$1"; shift
           COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
           _pgshift || exit 1
           printf "%s\n" "${COMPREPLY[@]}"' _ "$BASH_COMP" "$@" | sed '/^$/d' | sort
}

# ---- the commands, as --help and the completion know them
pgshift --help
expect_rc "pgshift --help" 0
GLOBAL_HELP=$OUT
help_commands=$(sed -n 's/^  pgshift \[OPTION\]\.\.\. \([a-z-]*\).*/\1/p' <<<"$GLOBAL_HELP" | sort)
COMMANDS=$(complete pgshift "")
expect_eq "the completion offers the commands --help lists" "$COMMANDS" "$help_commands"
expect_in "help is one" "$COMMANDS" "help"
expect_in "completion is one" "$COMMANDS" "completion"
[ "$(wc -l <<<"$COMMANDS")" -ge 9 ] && ok "nine commands or more" || not_ok "commands: $COMMANDS"

# long options that take a value, from the global help ("--name=VALUE"),
# and each short letter's long name ("-d, --dsn")
declare -A VALUED LONG_OF
while read -r o; do VALUED[$o]=1; done < <(grep -oE -- '--[a-z][a-z-]*=' <<<"$GLOBAL_HELP" | tr -d =)
while read -r l o; do LONG_OF[$l]=$o; done < <(grep -oE -- '^  -[a-zA-Z], --[a-z-]+' <<<"$GLOBAL_HELP" | tr -d ,)

# the options a command's help lists, one per line, long and short
help_options() { sed -n '/^Options:$/,/^$/p' <<<"$1" | grep -oE -- '^  (-[a-zA-Z], |    )--[a-z][a-z-]*' |
                 tr -d , | tr ' ' '\n' | sed '/^$/d' | sort; }

# every option any command takes (as the completion offers them) and the global help lists
# (each command's offered options and each option's arguments are asked of the
# completion once, and kept: the loops below use them many times)
declare -A OFFERED
for c in $COMMANDS; do OFFERED[$c]=$(complete pgshift "$c" -); done
UNIVERSE=$({ for c in $COMMANDS; do printf '%s\n' "${OFFERED[$c]}"; done; help_options "$GLOBAL_HELP"; } | sed '/^$/d' | sort -u)
expect_in "the options include --dsn" "$UNIVERSE" "--dsn"
expect_in "and --color" "$UNIVERSE" "--color"

# with OPT on CMD's command line (and --help, so that nothing runs): its
# value (1 is a good one for every option that takes no word from a list)
opt_args() {
  local o=$1 long=$1
  [ -n "${LONG_OF[$o]:-}" ] && long=${LONG_OF[$o]}
  if [ -n "${VALUED[$long]:-}" ]; then
    local v; v=$(complete pgshift "$long" "" | head -n1)
    if [[ $o == --* ]]; then echo "$o=${v:-1}"; else echo "$o ${v:-1}"; fi
  else
    echo "$o"
  fi
}
declare -A OPT_ARGS
for o in $UNIVERSE; do OPT_ARGS[$o]=$(opt_args "$o"); done

for c in $COMMANDS; do
  pgshift help "$c"
  expect_rc "help $c" 0
  help=$OUT
  pgshift "$c" --help
  expect_eq "$c --help is help $c" "$OUT" "$help"
  expect_in "$c: its synopsis" "$help" "pgshift [OPTION]... $c"
  expect_in "$c: an example" "$(sed -n '/^Example:$/,$p' <<<"$help")" "pgshift $c"
  desc=$(awk 'BEGIN { RS = "" } NR == 3' <<<"$help")
  [ "$(wc -w <<<"$desc")" -ge 15 ] && ok "$c: a paragraph that says what it does" ||
    not_ok "$c: no description paragraph" "$help"

  listed=$(help_options "$help")
  expect_eq "$c: the completion offers the options its help lists" "${OFFERED[$c]}" "$listed"

  # the parser, for each option there is: listed <=> taken
  wrong=()
  for o in $UNIVERSE; do
    # shellcheck disable=SC2086  # OPT_ARGS: the option, and its value as a separate word for a short one
    "$PGSHIFT" "$c" --help ${OPT_ARGS[$o]} >"$WORK/o.out" 2>"$WORK/o.err"
    rc=$?
    # (bash's own tests, not grep: this runs some 400 times)
    if [[ $'\n'$listed$'\n' == *$'\n'"$o"$'\n'* ]]; then
      [ $rc -eq 0 ] && [ -s "$WORK/o.out" ] && [ ! -s "$WORK/o.err" ] ||
        wrong+=("$o is listed but '$c --help ${OPT_ARGS[$o]}' exits $rc: $(cat "$WORK/o.err")")
    else
      long=${LONG_OF[$o]:-$o}
      err=""
      IFS= read -r -d '' err <"$WORK/o.err"
      [ $rc -eq 2 ] && [[ $err == *"$c does not take $long"* ]] ||
        wrong+=("$o is not listed but '$c --help ${OPT_ARGS[$o]}' exits $rc: $(cat "$WORK/o.err")")
    fi
  done
  if [ ${#wrong[@]} -eq 0 ]; then
    ok "$c: every option its help lists parses, every other one is refused ($(wc -w <<<"$listed") listed)"
  else
    not_ok "$c: help and parser disagree" "${wrong[@]}"
  fi
done

# the words the completion offers for an option's value all parse
wrong=()
for o in "${!VALUED[@]}"; do
  for v in $(complete pgshift "$o" ""); do
    for c in $COMMANDS; do
      grep -qxF -- "$o" <<<"${OFFERED[$c]}" || continue
      "$PGSHIFT" "$c" --help "$o=$v" >/dev/null 2>"$WORK/v.err" || wrong+=("$c $o=$v: $(cat "$WORK/v.err")")
      break
    done
  done
done
[ ${#wrong[@]} -eq 0 ] && ok "every value the completion offers parses" || not_ok "values refused" "${wrong[@]}"

# ---- help for what is not a command
pgshift help nosuch
expect_rc "help nosuch is a usage error" 2
expect_first_line "naming it" 'unknown command "nosuch"'
missing=$(for c in $COMMANDS; do grep -qw -- "$c" <<<"$ERR" || echo "$c"; done)
expect_eq "and naming every command there is" "$missing" ""
pgshift nosuch --help
expect_rc "nosuch --help too" 2
pgshift help
expect_eq "pgshift help is pgshift --help" "$OUT" "$GLOBAL_HELP"
pgshift completion fish
expect_rc "completion of another shell" 2
expect_first_line "says which there are" '"fish" is not bash or zsh'
pgshift completion
expect_rc "completion without a shell" 2
pgshift --color=sometimes --help
expect_rc "--color=sometimes" 2
expect_first_line "is refused" '--color: "sometimes" is not auto, always or never'

# ---- bash completion, typed
expect_eq "pgshift ru<TAB>" "$(complete pgshift ru)" "run"
expect_eq "pgshift --color=al<TAB> (bash splits at =)" "$(complete pgshift --color = al)" "always"
expect_eq "pgshift plan --format <TAB>" "$(complete pgshift plan --format "")" "$(printf 'json\nmarkdown\ntext')"
expect_eq "pgshift plan --o<TAB>" "$(complete pgshift plan --o)" "--offline"
expect_eq "pgshift lint --o<TAB>: lint takes no --offline" "$(complete pgshift lint --o)" ""
expect_eq "pgshift -d DSN lint --fa<TAB>: the command after an option's value" \
  "$(complete pgshift -d "dbname=x" lint --fa)" "--fail-on"
expect_eq "pgshift --dsn=DSN compare --target-k<TAB>" \
  "$(complete pgshift --dsn = x compare --target-k)" "--target-key"
expect_eq "pgshift help com<TAB>" "$(complete pgshift help com)" "$(printf 'compare\ncompletion')"
touch "$WORK/m1.lua" "$WORK/m2.lua"
expect_eq "pgshift run FILE<TAB>: files" "$(complete pgshift run "$WORK/m")" "$(printf '%s\n' "$WORK/m1.lua" "$WORK/m2.lua")"
expect_eq "pgshift report NAME --html FILE<TAB>: files" \
  "$(complete pgshift report add_email --html "$WORK/m")" "$(printf '%s\n' "$WORK/m1.lua" "$WORK/m2.lua")"
expect_eq "pgshift report NAME --svg=FILE<TAB> (bash splits at =): files" \
  "$(complete pgshift report add_email --svg = "$WORK/m")" "$(printf '%s\n' "$WORK/m1.lua" "$WORK/m2.lua")"

# ---- zsh completion: zsh parses it
if zsh -n "$ZSH_COMP" 2>"$WORK/zsh.err"; then ok "zsh parses _pgshift"; else not_ok "zsh -n _pgshift" "$(cat "$WORK/zsh.err")"; fi
missing=$(for c in $COMMANDS; do grep -q "^        $c) _arguments" "$ZSH_COMP" || echo "$c"; done)
expect_eq "_pgshift completes the options of every command" "$missing" ""

# ---- the man page
warnings=$(groff -ww -z -man "$MAN" 2>&1)
expect_eq "groff -ww renders the man page without a warning" "$warnings" ""
warnings=$(MANWIDTH=80 man --warnings -l "$MAN" 2>&1 >"$WORK/man.txt")
expect_eq "man -l too" "$warnings" ""
missing=$(for c in $COMMANDS; do grep -qx "   $c" "$WORK/man.txt" || echo "$c"; done)
expect_eq "it has a section for every command" "$missing" ""
missing=$(for o in $UNIVERSE; do grep -qF -- "$o" "$WORK/man.txt" || echo "$o"; done)
expect_eq "and names every option" "$missing" ""
expect_in "and the exit status" "$(cat "$WORK/man.txt")" "EXIT STATUS"

# ---- colour
new_db help
f=$(mig colors <<'LUA'
return migration { name = "colors", phases = {
  { name = "one", up = function(db)
      log("a log line with its own escape: \27[2J")
      db:exec("CREATE TABLE colors_t (id int PRIMARY KEY)")
    end,
    down = function(db) db:exec("DROP TABLE colors_t") end },
} }
LUA
)
ESC=$'\033['
pgshift --dsn "dbname=$DB" --color=always run "$f"
expect_rc "run --color=always" 0
expect_in "colours the phase header" "$OUT" "${ESC}1;36m--> [1/1] one${ESC}0m"
expect_in "and the ok marker" "$OUT" "${ESC}32mdone${ESC}0m in"
expect_in "and the summary" "$OUT" "${ESC}32mfinished${ESC}0m"
expect_in "what the migration prints is still neutralised" "$OUT" 'escape: \x1b[2J'
expect_not_in "(its escape is not let through)" "$OUT" "${ESC}2J"
pgshift --dsn "dbname=$DB" --color=always rollback "$f"
pgshift --dsn "dbname=$DB" --color=never run "$f"
expect_rc "run --color=never" 0
expect_not_in "has no colour" "$OUT" "$ESC"
pgshift --dsn "dbname=$DB" rollback "$f" --color=always --json
expect_rc "rollback --json --color=always" 0
expect_not_in "never colours JSON" "$OUT" "$ESC"
jq -e . <<<"$OUT" >/dev/null && ok "which stays JSON" || not_ok "not JSON" "$OUT"

pgshift --color=always nosuch
expect_in "errors are coloured" "$ERR" "${ESC}1;31mpgshift:${ESC}0m unknown command"
pgshift nosuch
expect_not_in "not when stderr is no terminal (auto)" "$ERR" "$ESC"

q "CREATE TABLE lintme_t (x text)"
lintme=$(mig lintme <<'LUA'
return migration { name = "lintme", phases = {
  { name = "idx", up = function(db) db:exec("CREATE INDEX lintme_x ON lintme_t (x)") end },
} }
LUA
)
pgshift --dsn "dbname=$DB" --color=always lint "$lintme"
expect_in "lint severities are coloured" "$OUT" "${ESC}1;31mHIGH${ESC}0m index-not-concurrent"
pgshift --dsn "dbname=$DB" --color=always lint --json "$lintme"
expect_not_in "not in lint --json" "$OUT" "$ESC"

# auto on a terminal (script gives one): colour unless NO_COLOR or TERM=dumb
# (a run of a migration done already: its header and a skipped phase)
pgshift --dsn "dbname=$DB" run "$f"
tty_run() { env "$@" script -qec "'$PGSHIFT' --dsn 'dbname=$DB' $TTY_ARGS run '$f'" /dev/null 2>&1; }
# sgr DESC WANT(yes|no) OUTPUT: OUTPUT has (or not) a colour sequence
sgr() {
  local has=no
  grep -qE $'\033\\[[0-9;]*m' <<<"$3" && has=yes
  if [ "$has" = "$2" ]; then ok "$1"; else not_ok "$1: colour $has" "$(cat -v <<<"$3")"; fi
}
TTY_ARGS=""
sgr "auto on a terminal: colour" yes "$(tty_run -u NO_COLOR TERM=xterm)"
sgr "(and the run ran)" yes "$(tty_run -u NO_COLOR TERM=xterm | grep -F 'run migration colors')"
sgr "auto with NO_COLOR=1: none" no "$(tty_run TERM=xterm NO_COLOR=1)"
sgr "NO_COLOR empty is not set" yes "$(tty_run TERM=xterm NO_COLOR=)"
sgr "auto with TERM=dumb: none" no "$(tty_run -u NO_COLOR TERM=dumb)"
TTY_ARGS=--color=always
sgr "NO_COLOR gives way to --color=always" yes "$(tty_run TERM=xterm NO_COLOR=1)"
TTY_ARGS=--color=never
sgr "--color=never on a terminal: none" no "$(tty_run -u NO_COLOR TERM=xterm)"

echo "1..$T_NUM"
