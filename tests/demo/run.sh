#!/bin/sh
# The gridsync demo: a grid worker initialises a handheld, records visits
# and reports an issue with no network, then looks at the outbox and the
# status that result. Runs from `make demo`; GS_BINDIR names the folder
# that holds the gridsync program. Leaves nothing behind but its folder.
set -eu
bindir=${GS_BINDIR:-build/bin}
gridsync="$bindir/gridsync"
work=$(mktemp -d "${TMPDIR:-/tmp}/gridsync-demo-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
db="$work/handheld.db"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
gs() { echo "\$ gridsync $*" | sed "s#$db#handheld.db#"; "$gridsync" --db "$db" "$@"; }

say "A grid worker initialises a handheld (demo profile, no server needed)"
gs init --device handheld-01 --insecure --demo

say "The households of the worker's micro-grid (first five)"
"$gridsync" --db "$db" household list | head -n 6

hh=$("$gridsync" --db "$db" household list --json |
	sed -n 's/.*"household":\[{"id":"\([^"]*\)".*/\1/p')
hh2=$("$gridsync" --db "$db" household list --json |
	sed -n 's/.*"household":\[{[^}]*},{"id":"\([^"]*\)".*/\1/p')

say "Door to door, in a basement with no signal: two visits"
gs visit add --household "$hh" --kind care --outcome met \
	--summary "独居老人身体状况良好，已检查燃气阀门和电线，提醒清理楼道杂物"
gs visit add --household "$hh2" --kind routine --outcome not_home

say "A household detail changes"
gs household edit "$hh" --size 2 --residence_type 户籍

say "An issue is reported on the spot"
cat=$("$gridsync" --db "$db" category list --json | sed -n 's/.*"category":\[{"code":"\([^"]*\)".*/\1/p')
gs issue report --category "$cat" \
	--title "3栋2单元楼道堆放纸箱杂物，堵塞疏散通道" --household "$hh" --grade yellow

say "Issues on this handheld"
gs issue list

say "What is waiting to be sent (the outbox)"
gs outbox

say "Status"
gs status
