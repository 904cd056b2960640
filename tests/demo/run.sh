#!/bin/sh
# The gridsync demo (make demo): a district server on loopback with the demo
# profile, three grid workers' handhelds (A and B share a micro-grid, C works
# another) and a street centre, all enrolled with TLS certificates. They
# record visits and conflicting household edits offline, report an issue and
# carry it from report to closure across the devices, then show the
# conflicts, the issue's history and the converged state. GS_BINDIR names
# the folder holding gridsync and gridsyncd. Leaves no process behind.
set -eu
bindir=${GS_BINDIR:-build/bin}
gs_bin="$bindir/gridsync"
gsd_bin="$bindir/gridsyncd"
work=$(mktemp -d "${TMPDIR:-/tmp}/gridsync-demo-XXXXXX")
server_pid=""
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
start=$(date +%s)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Run the handheld CLI on device $1 and echo the command.
dev() {
	d=$1
	shift
	echo "[$d] \$ gridsync $*"
	"$gs_bin" --db "$work/$d.db" "$@"
}
quiet() { d=$1; shift; "$gs_bin" --db "$work/$d.db" "$@"; }
sync() { quiet "$1" sync --once | sed -n 's/^\(pushed\|acknowledged\|rejected\|conflicts\|pulled\): /  \1=/p' | tr '\n' ' '; echo "  [$1 synced]"; }
json_id() { sed -n 's/.*"id":"\([^"]*\)".*/\1/p'; }

db="$work/server.db"
say "District IT sets up gridsyncd (demo profile: one street, one community)"
"$gsd_bin" init --db "$db" --journal "$work/journal.git"
"$gsd_bin" seed --db "$db" --profile demo
"$gsd_bin" serve --db "$db" --listen 127.0.0.1:0 --journal "$work/journal.git" \
	--ready-file "$work/port" 2>"$work/server.log" &
server_pid=$!
i=0
while [ ! -s "$work/port" ]; do
	i=$((i + 1))
	if [ $i -gt 500 ] || ! kill -0 "$server_pid" 2>/dev/null; then
		echo "gridsyncd did not start:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	sleep 0.02
done
addr="127.0.0.1:$(cat "$work/port")"
echo "gridsyncd listening on $addr (TLS 1.3, mutual authentication)"

# Workers: A = responsible of the first micro-grid, B = the full-time
# worker assisting it, C = responsible of another micro-grid, S = street.
workers=$("$gsd_bin" workers --db "$db")
pick() { printf '%s\n' "$workers" | awk -v RS= "$1" | sed -n "s/^$2: //p" | head -n 1; }
gw_a=$(pick '/role: GW/ && /duties: responsible$/' id)
grid_a=$(pick '/role: GW/ && /duties: responsible$/' grid_codes)
gw_b=$(printf '%s\n' "$workers" | awk -v RS= -v g="$grid_a" '/role: GW/ && /assistant/ && index($0, g)' | sed -n 's/^id: //p' | head -n 1)
gw_c=$(printf '%s\n' "$workers" | awk -v RS= -v g="$grid_a" '/role: GW/ && /duties: responsible$/ && !index($0, g)' | sed -n 's/^id: //p' | head -n 1)
grid_c=$(printf '%s\n' "$workers" | awk -v RS= -v g="$grid_a" '/role: GW/ && /duties: responsible$/ && !index($0, g)' | sed -n 's/^grid_codes: //p' | head -n 1)
sc=$(pick '/role: SC/' id)
street=$(sqlite3 "$db" "SELECT code FROM admin_area WHERE level = 'street' LIMIT 1" 2>/dev/null || true)

say "Enrolment: each handheld gets a certificate and its scope"
"$gsd_bin" enroll --db "$db" --device hh-a --worker "$gw_a" --scope "$grid_a" --server "$addr" --out "$work/a.bundle"
"$gsd_bin" enroll --db "$db" --device hh-b --worker "$gw_b" --scope "$grid_a" --server "$addr" --out "$work/b.bundle"
"$gsd_bin" enroll --db "$db" --device hh-c --worker "$gw_c" --scope "$grid_c" --server "$addr" --out "$work/c.bundle"
"$gsd_bin" enroll --db "$db" --device centre --worker "$sc" --scope "$street" --server "$addr" --out "$work/s.bundle"
for d in a b c s; do
	name=hh-$d
	[ $d = s ] && name=centre
	quiet "$name" init --bundle "$work/$d.bundle" >/dev/null
done

say "First sync: every device bootstraps its scope from the server"
for d in hh-a hh-b hh-c centre; do sync $d; done
dev hh-a status | sed -n 's/^\(role\|scope\|households\): /  \1=/p' | tr '\n' ' '; echo

hh=$(quiet hh-a household list --json | json_id | head -n 1)
hh_c=$(quiet hh-c household list --json | json_id | head -n 1)

say "Offline, in the basement: visits, and the same household edited on A and B"
dev hh-a visit add --household "$hh" --kind care --outcome met --summary "独居老人身体状况良好，已检查燃气阀门" >/dev/null
dev hh-c visit add --household "$hh_c" --kind routine --outcome not_home >/dev/null
dev hh-a household edit "$hh" --note "A：老人子女每周探望" --size 2 >/dev/null
dev hh-b household edit "$hh" --note "B：已登记为独居" --tenure 租住 >/dev/null
cat_code=$(quiet hh-a category list --json | sed -n 's/.*"category":\[{"code":"\([^"]*\)".*/\1/p')
issue=$(dev hh-a issue report --category "$cat_code" --title "3栋2单元楼道堆放纸箱杂物，堵塞疏散通道" \
	--household "$hh" --grade yellow --json | json_id)
echo "issue reported offline: $issue"

say "Back online: B syncs first, then A (A's older note loses, its size stays)"
sync hh-b
sync hh-a
sync hh-b
dev hh-a conflicts
echo "-- the server's view:"
"$gsd_bin" conflicts --db "$db" | head -n 12

say "社区发现、街道呼叫、集中派单: the street centre accepts and dispatches to A"
sync centre
dev centre issue move "$issue" --to accepted >/dev/null
dev centre issue move "$issue" --to dispatched --assignee "$gw_a" --due 2030-01-01T18:00:00Z >/dev/null
sync centre

say "协同整治: A receives the order, signs it and handles it"
sync hh-a
dev hh-a issue move "$issue" --to in_progress >/dev/null
dev hh-a issue move "$issue" --to handled --note "纸箱已清运" >/dev/null
sync hh-a

say "B verifies on site; the centre closes the work order"
sync hh-b
dev hh-b issue move "$issue" --to verified >/dev/null
sync hh-b
sync centre
dev centre issue move "$issue" --to closed >/dev/null
sync centre

say "Everyone syncs; the issue's history is the same everywhere"
for d in hh-a hh-b hh-c centre; do sync $d; done
dev hh-a issue show "$issue" --json | sed 's/},{/},\n{/g' | sed -n 's/.*"from_state":"\([^"]*\)","to_state":"\([^"]*\)".*"actor_role":"\([^"]*\)".*"apply_status":"\([^"]*\)".*/  \1 -> \2 by \3: \4/p'
for d in hh-a hh-b centre; do
	printf '  %-7s state=%s\n' "$d" "$(quiet $d issue list --json | sed -n "s/.*\"id\":\"$issue\",\"code\":\"[^\"]*\",\"state\":\"\([^\"]*\)\".*/\1/p")"
done

say "Converged: devices sharing a scope hold the same rows (content hash)"
for d in hh-a hh-b hh-c centre; do
	printf '  %-7s %s  outbox=%s\n' "$d" "$(quiet $d status --json | sed -n 's/.*"content_hash":"\([^"]*\)".*/\1/p')" \
		"$(quiet $d status --json | sed -n 's/.*"outbox_depth":\([0-9]*\).*/\1/p')"
done
ha=$(quiet hh-a status --json | sed -n 's/.*"content_hash":"\([^"]*\)".*/\1/p')
hb=$(quiet hh-b status --json | sed -n 's/.*"content_hash":"\([^"]*\)".*/\1/p')
[ "$ha" = "$hb" ] || { echo "hh-a and hh-b differ" >&2; exit 1; }

say "The journal matches the store"
kill "$server_pid"
wait "$server_pid" || true
server_pid=""
"$gsd_bin" journal verify --db "$db" --journal "$work/journal.git"
"$gsd_bin" stats --db "$db" | head -n 12
echo
echo "demo finished in $(( $(date +%s) - start )) s; no process left behind"
