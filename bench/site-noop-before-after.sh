#!/usr/bin/env bash
# A no-op site.yml of an older commit and of the working tree, side by side on one cinder lab:
#   bench/site-noop-before-after.sh OLD_COMMIT
# Boots the `cinder` topology in LAB_DIR (default .build/lab-noop), converges it with OLD_COMMIT's
# site.yml (a git worktree), times that tree's no-op re-run, converges it with the working tree,
# times its no-op re-run, and prints both: wall seconds of ansible-playbook, changed per host and
# module runs per host (bench/callback/module_runs.py, fact gathering and loop items included).
# Nothing else should run on the machine meanwhile. The lab is taken down at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: $0 OLD_COMMIT}
repo=$PWD
export LAB_DIR=${LAB_DIR:-$repo/.build/lab-noop}
work=$repo/.build/noop-before-after
labctl() { .venv/bin/python lab/labctl "$@"; }
trap 'labctl down; git worktree remove --force "$work/tree" 2>/dev/null || true' EXIT
rm -rf "$work" && mkdir -p "$work/collections/ansible_collections/openblock"
git worktree add --detach "$work/tree" "$old" >/dev/null
ln -s "$work/tree" "$work/collections/ansible_collections/openblock/storage"
labctl up cinder
labctl inventory --output inventories/lab/hosts.yml
labctl inventory --output "$work/tree/inventories/lab/hosts.yml"

# run LABEL TREE COLLECTIONS_PATH: one site.yml run from TREE, its output in $work/LABEL.*
run() {
    local label=$1 tree=$2 collections=$3 started
    started=$(date +%s)
    (cd "$tree" && ANSIBLE_CONFIG="$tree/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$collections" \
        ANSIBLE_CALLBACK_PLUGINS="$repo/bench/callback" ANSIBLE_CALLBACKS_ENABLED=module_runs \
        MODULE_RUNS_JSON="$work/$label.json" ANSIBLE_FORCE_COLOR=0 \
        "$repo/.venv/bin/ansible-playbook" playbooks/site.yml > "$work/$label.log" 2>&1)
    echo $(( $(date +%s) - started )) > "$work/$label.seconds"
    echo "$label: $(cat "$work/$label.seconds") s; $(grep -E '^MODULE RUNS' "$work/$label.log")"
}
run old-converge "$work/tree" "$work/collections"
run old-noop "$work/tree" "$work/collections"
run new-converge "$repo" "$repo/.venv/collections"
run new-noop "$repo" "$repo/.venv/collections"

.venv/bin/python - "$work" "$old" "$(git rev-parse --short HEAD)" <<'EOF'
import json, re, sys
work, old, new = sys.argv[1:]
rows = {}
for side in ('old', 'new'):
    log = open('%s/%s-noop.log' % (work, side)).read()
    changed = dict(re.findall(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)', log, re.M))
    runs = json.load(open('%s/%s-noop.json' % (work, side)))['runs']
    rows[side] = (float(open('%s/%s-noop.seconds' % (work, side)).read()), changed, runs)
print('| No-op site.yml on cinder | %s (before) | %s (now) |' % (old, new))
print('|---|---:|---:|')
print('| Wall time (s) | %.0f | %.0f |' % (rows['old'][0], rows['new'][0]))
for host in sorted(rows['new'][2]):
    print('| %s: module runs / changed | %s / %s | %s / %s |' % (
        host, rows['old'][2].get(host), rows['old'][1].get(host), rows['new'][2].get(host), rows['new'][1].get(host)))
print('| Now / before | | %.2f |' % (rows['new'][0] / rows['old'][0]))
EOF
