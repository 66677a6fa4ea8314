# Check helpers shared by the command-line tests (sourced, not run). Each
# check counts; a failed check prints why and the test goes on, so one run
# lists every failure. checks_finish prints the count and sets the status.
failures=0
checks=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# expect_exit CODE CMD...: runs CMD with stdout in out.txt and stderr in err.txt.
expect_exit() {
	local want=$1
	shift
	checks=$((checks + 1))
	"$@" >out.txt 2>err.txt
	local got=$?
	if [ "$got" != "$want" ]; then
		fail "'$*' exited $got, expected $want; stdout: $(cat out.txt); stderr: $(cat err.txt)"
	fi
}

# expect_in FILE TEXT: FILE contains the fixed string TEXT.
expect_in() {
	checks=$((checks + 1))
	if ! grep -qF -- "$2" "$1"; then
		fail "expected '$2' in $1, got: $(cat "$1")"
	fi
}

# expect_not_in FILE TEXT: FILE does not contain TEXT.
expect_not_in() {
	checks=$((checks + 1))
	if grep -qF -- "$2" "$1"; then
		fail "did not expect '$2' in $1, got: $(cat "$1")"
	fi
}

# expect_line FILE LINE: FILE contains LINE as a whole line.
expect_line() {
	checks=$((checks + 1))
	if ! grep -qxF -- "$2" "$1"; then
		fail "$1 lacks the line '$2'; it holds: $(cat "$1")"
	fi
}

# expect_empty FILE: FILE is empty or missing.
expect_empty() {
	checks=$((checks + 1))
	if [ -s "$1" ]; then
		fail "expected $1 to be empty, got: $(cat "$1")"
	fi
}

# expect_json PYTHON-EXPR: evaluates the expression with j = the JSON in out.txt.
expect_json() {
	checks=$((checks + 1))
	if ! python3 -c "import json,sys; j=json.load(open('out.txt')); sys.exit(0 if ($1) else 1)"; then
		fail "JSON check '$1' failed on: $(cat out.txt)"
	fi
}

checks_finish() {
	echo "$checks checks, $failures failures"
	[ "$failures" -eq 0 ]
}
