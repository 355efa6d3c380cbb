#!/usr/bin/env bash
# Runs the README's "A five-minute tour" as written: every ```sh block after a `<!-- tour: run -->`
# line, in one bash with `set -euo pipefail`, against `charla up --test-clock` on free ports with a
# data folder of its own. The only change made to the blocks is the ports (localhost:50051..50053
# become the ones charla up got), so the tour never touches a charla the developer is running.
# Then it checks what the tour did, through the variables the tour set. Needs curl and jq.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/charla/target}"
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "tests/tour: $tool is required" >&2; exit 1; }
done

work=$(mktemp -d /tmp/charla-tour.XXXXXX)
up_pid=
finish() {
  status=$?
  if [ -n "$up_pid" ]; then kill "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  if [ "$status" != 0 ]; then echo "--- charla up's output:"; tail -n 40 "$work/up.log"; fi
  rm -rf "$work"
}
trap finish EXIT

# The tour's blocks, in README order.
awk '
  /^<!-- tour: run -->$/ { marked = 1; next }
  marked && /^```sh$/    { inside = 1; marked = 0; next }
  inside && /^```$/      { inside = 0; print ""; next }
  inside                 { print }
  { marked = 0 }
' README.md >"$work/tour.sh"
blocks=$(grep -c '^<!-- tour: run -->$' README.md)
[ "$blocks" -ge 4 ] || { echo "tests/tour: found $blocks tour blocks in README.md" >&2; exit 1; }

# The tour's own charla: port 0 lets the system pick free ones, which charla up prints.
cargo build -q --locked -p charla
export CHARLA_DATA_DIR="$work/charla-data"
"$CARGO_TARGET_DIR/debug/charla" up --test-clock --contact-port 0 --conversation-port 0 \
  --metrics-port 0 --admin-port-offset 0 >"$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 300); do
  grep -q '^An admin token' "$work/up.log" && break
  kill -0 "$up_pid" 2>/dev/null || { echo "tests/tour: charla up exited" >&2; exit 1; }
  sleep 0.1
done
port() { sed -n "s/^  $1 *[0-9.]*:\([0-9]*\) .*/\1/p" "$work/up.log"; }
contact=$(port contact) conversation=$(port conversation) metrics=$(port metrics)
[ -n "$contact" ] && [ -n "$conversation" ] && [ -n "$metrics" ] ||
  { echo "tests/tour: charla up printed no ports" >&2; exit 1; }
# What the tour must have done, checked in the tour's own shell (its variables and functions).
cat >>"$work/tour.sh" <<'CHECKS'
echo "--- checking what the tour did"
fail() { echo "tests/tour: $*" >&2; exit 1; }
uuid='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
for id in "$SUSANA" "$SUSI" "$CONV" "$CONV2"; do [[ $id =~ $uuid ]] || fail "not an id: '$id'"; done
[ "$SUSANA" != "$SUSI" ] || fail "Susi was resolved to Susana's contact before the merge"
merged=$(api localhost:50051/v1/contacts/$SUSI | jq -r '.contact | .status + " " + .mergedIntoContactId')
[ "$merged" = "CONTACT_STATUS_MERGED $SUSANA" ] || fail "Susi after the merge: $merged"
first=$(api localhost:50052/v1/conversations/$CONV | jq -r 'def secs: sub("\\.[0-9]+Z$"; "Z") | fromdate;
  .conversation | [.closedBy, (.firstResponseAt | secs) - (.openedAt | secs)] | @tsv')
[ "$first" = "$(printf 'CLOSE_SOURCE_WORKFLOW\t180')" ] || fail "first conversation: $first"
auto=$(api localhost:50052/v1/conversations/$CONV2 | jq -r .conversation.closedBy)
[ "$auto" = CLOSE_SOURCE_AUTO_CLOSE ] || fail "second conversation closed by '$auto'"
# The metrics service reads the conversations' events as they come: both closes, within a while.
from=$(date -u -d '00:00 2 days ago' +%FT%TZ) to=$(date -u -d '00:00 3 days' +%FT%TZ)
for _ in $(seq 100); do
  closed=$(api -G localhost:50053/v1/metrics/conversations -d startTime=$from -d endTime=$to \
    -d granularity=GRANULARITY_DAY -d groupBy=GROUP_BY_CLOSED_BY |
    jq -r '[.groups[] | .key.closedBy + "=" + .metrics.closedCount] | sort | join(" ")')
  [ "$closed" = "CLOSE_SOURCE_AUTO_CLOSE=1 CLOSE_SOURCE_WORKFLOW=1" ] && break
  sleep 0.2
done
[ "$closed" = "CLOSE_SOURCE_AUTO_CLOSE=1 CLOSE_SOURCE_WORKFLOW=1" ] || fail "metrics closes: $closed"
echo "tests/tour: the README's tour ran as written ($TOUR_BLOCKS blocks) and did what it says"
CHECKS

sed -i -e "s/localhost:50051/localhost:$contact/g" -e "s/localhost:50052/localhost:$conversation/g" \
  -e "s/localhost:50053/localhost:$metrics/g" "$work/tour.sh"
if grep -n 'localhost:5005[0-9]' "$work/tour.sh"; then
  echo "tests/tour: a port the tour uses is not one charla up serves" >&2
  exit 1
fi


export TOUR_BLOCKS="$blocks"
bash -euo pipefail "$work/tour.sh"
