#!/bin/bash
# Runs `swift test ARGS...` within LIMIT (seconds), its output line-buffered.
#
# The test process has been seen, rarely, to stay alive after its last test finished, every thread
# idle (the cause is not found; see docs/development.md). So a run that is stopped at its limit
# counts as passed when it had printed its summary and that summary says every test passed;
# otherwise a stopped run fails, rather than holding CI until its own time limit.
limit=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set -o pipefail
timeout --kill-after=10 "$limit" stdbuf -oL -eL "${SWIFT:-swift}" test "$@" 2>&1 | tee "$log"
status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  if grep -q "^✔ Test run with .* passed after" "$log" && ! grep -q "^✘ Test run with" "$log"; then
    echo "swift-test.sh: every test passed, but the test process did not end after its summary; stopped after ${limit} s"
    exit 0
  fi
  echo "swift-test.sh: swift test did not end within ${limit} s"
fi
exit $status
