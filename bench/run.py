"""Benchmark openblock.storage against the peer (community.general + command tgtadm + a template).

Started by `make bench`. Boots lab/topologies/bench.toml (storage1 + compute1) in LAB_DIR
(.build/lab-bench), times playbooks with ansible-runner events and writes bench/results.json,
bench/RESULTS.md and bench/scale.png. Phases, in order:

1. the peer on freshly booted VMs: the site converge, its no-op re-runs, then the scale figure
   (N thin volumes + N targets, converge and no-op); peer sizes above --peer-max-n are estimated,
   from a straight line through its measured sizes, or with one measured size by scaling its
   looping tasks by N;
2. the lab booted afresh, the same for ours, plus the bare read commands at each N.

`--report` only rewrites RESULTS.md and the plot from bench/results.json.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

from ansible_collections.openblock.storage.plugins.module_utils import lvm, tgt
from ansible_collections.openblock.storage.plugins.module_utils.plan import TOOL_ENV

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, '.build', 'bench')
LAB_DIR = os.environ.get('LAB_DIR', os.path.join(ROOT, '.build', 'lab-bench'))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
PEER_VENV = os.path.join(BUILD, 'peer-venv')
RESULTS_JSON = os.path.join(HERE, 'results.json')
RESULTS_MD = os.path.join(HERE, 'RESULTS.md')
PLOT = os.path.join(HERE, 'scale.png')
INVENTORY = os.path.join(BUILD, 'inventory')
USED = os.path.join(BUILD, 'lab-used')  # boot ids of VMs a bench playbook has run on

# The bare reads our two scale modules do on a no-op run, as the modules build them (lvm_thinvol:
# one vgs and one lvs JSON report; tgt_target: one tgtadm show of targets, and one of accounts only
# when CHAP is in use, which the scale runs do not use).
BARE_READS = '; '.join(
    '%s %s >/dev/null' % (' '.join('%s=%s' % item for item in sorted(TOOL_ENV.items())), shlex.join(argv))
    for argv in (lvm.vg_report_argv('cinder-volumes'), lvm.lv_report_argv('cinder-volumes'), tgt.SHOW_TARGETS))


def log(msg):
    print('[bench %s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


def labctl(*args, check=True, capture=False):
    env = dict(os.environ, LAB_DIR=LAB_DIR, LAB_SLOT_WAIT=os.environ.get('LAB_SLOT_WAIT', '5400'))
    cmd = [os.path.join(VENV_BIN, 'python'), os.path.join(ROOT, 'lab', 'labctl')] + list(args)
    if capture:
        proc = subprocess.run(cmd, env=env, check=check, stdout=subprocess.PIPE, text=True)
        return proc.stdout
    return subprocess.run(cmd, env=env, check=check)


def ssh(node, command):
    """Run a shell command in a VM; its stdout."""
    return labctl('ssh', node, 'bash -c ' + shlex.quote(command), capture=True)


# ------------------------------------------------------------------------------------------
# The lab

def boot_id(node):
    return ssh(node, 'cat /proc/sys/kernel/random/boot_id').strip()


def lab_fresh():
    """Boot the bench topology afresh: bare VMs (overlays on the cached base image).

    A running instance that no bench playbook has touched since it booted counts as bare (so an
    `up` that waited for VM slots is not thrown away)."""
    status = labctl('status', capture=True, check=False).split('machine-wide')[0]
    if 'topology bench' in status and 'not complete' not in status and status.count('SSH ok') == 2:
        write_inventory()
        used = open(USED).read().strip() if os.path.exists(USED) else ''
        if boot_id('storage1') not in used and boot_id('compute1') not in used:
            log('reusing the running lab: booted and untouched since')
            return
    labctl('down', check=False)
    started = time.monotonic()
    labctl('up', 'bench')
    log('lab up in %.0f s' % (time.monotonic() - started))
    write_inventory()


def lab_reuse():
    labctl('up', 'bench')  # returns at once on a running instance
    write_inventory()


def write_inventory():
    """labctl's hosts plus bench/inventory's group_vars and host_vars, in one inventory dir."""
    os.makedirs(INVENTORY, exist_ok=True)
    labctl('inventory', '--output', os.path.join(INVENTORY, 'hosts.yml'))
    for sub in ('group_vars', 'host_vars'):
        link = os.path.join(INVENTORY, sub)
        if not os.path.islink(link):
            os.symlink(os.path.join(HERE, 'inventory', sub), link)


def forks(node):
    """Processes created in the VM since boot (the `processes` line of /proc/stat)."""
    return int(re.search(r'^processes (\d+)', ssh(node, 'cat /proc/stat'), re.M).group(1))


# ------------------------------------------------------------------------------------------
# Timing a playbook with ansible-runner events

def run_playbook(who, playbook, label, extravars=None):
    """Run one playbook; per-play and per-task durations from the runner's events."""
    import ansible_runner  # pylint: disable=import-outside-toplevel

    binary = os.path.join(VENV_BIN if who == 'ours' else os.path.join(PEER_VENV, 'bin'), 'ansible-playbook')
    pdd = os.path.join(BUILD, 'runner', label)
    os.makedirs(pdd, exist_ok=True)
    env = {
        'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
        'ANSIBLE_FORKS': '10',
        'PATH': os.path.dirname(binary) + os.pathsep + os.environ['PATH'],
    }
    with open(USED, 'a') as handle:
        handle.write('%s %s\n' % (boot_id('storage1'), boot_id('compute1')))
    before = {node: forks(node) for node in ('storage1', 'compute1')}
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=pdd, playbook=os.path.join(HERE, playbook), inventory=INVENTORY,
        extravars=extravars or {}, envvars=env, quiet=True, rotate_artifacts=3)
    wall = time.monotonic() - started
    after = {node: forks(node) for node in ('storage1', 'compute1')}
    if runner.rc != 0:
        events = list(runner.events)
        failed = [e['event_data'] for e in events if e['event'] == 'runner_on_failed']
        res = failed[-1].get('res', {}) if failed else {}
        raise PlaybookFailed(label, runner.rc, res.get('msg', 'see %s' % pdd), summarize(events), res)
    result = summarize(list(runner.events))
    result.update(wall=wall, label=label, forks={n: after[n] - before[n] for n in after})
    return result


class PlaybookFailed(Exception):
    """A benchmarked playbook failed; carries what its events tell."""

    def __init__(self, label, rc, msg, summary, res):
        super(PlaybookFailed, self).__init__('%s failed (rc %s): %s' % (label, rc, msg))
        self.msg, self.summary, self.res = msg, summary, res


def _ts(event):
    return datetime.datetime.fromisoformat(event['created']).timestamp()


def summarize(events):
    """Play and task durations (from start events to the next start), module runs, changes, commands."""
    kinds = ('playbook_on_play_start', 'playbook_on_task_start', 'playbook_on_stats',
             'playbook_on_handler_task_start')
    marks = [e for e in events if e['event'] in kinds]
    plays, tasks = [], []
    for index, mark in enumerate(marks[:-1]):
        duration = _ts(marks[index + 1]) - _ts(mark)
        data = mark['event_data']
        if mark['event'] == 'playbook_on_play_start':
            end = next((m for m in marks[index + 1:] if m['event'] in ('playbook_on_play_start', 'playbook_on_stats')))
            plays.append({'name': data.get('play', data.get('name')), 'duration': _ts(end) - _ts(mark)})
        else:
            tasks.append({'name': data.get('task'), 'uuid': data.get('task_uuid'), 'duration': duration,
                          'runs': 0, 'changed': 0, 'commands': 0, 'action': data.get('task_action')})
    by_uuid = dict((t['uuid'], t) for t in tasks)
    by_host = {}
    item_tasks = set(e['event_data'].get('task_uuid') for e in events if e['event'].startswith('runner_item_on_'))
    for event in events:
        name = event['event']
        data = event.get('event_data', {})
        task = by_uuid.get(data.get('task_uuid'))
        if task is None:
            continue
        looped = data.get('task_uuid') in item_tasks
        if name in ('runner_item_on_ok', 'runner_item_on_failed') or (
                not looped and name in ('runner_on_ok', 'runner_on_failed')):
            res = data.get('res') or {}
            task['runs'] += 1
            by_host[data.get('host')] = by_host.get(data.get('host'), 0) + 1
            # ansible-runner leaves out a very large result (N = 500 targets created); its line still says
            changed = res.get('changed') if res else 'changed: [' in event.get('stdout', '')
            task['changed'] += 1 if changed else 0
            task['commands'] += len(res.get('commands') or [])
    first = next(e for e in events if e['event'] == 'playbook_on_start')
    last = next(e for e in reversed(events) if e['event'] == 'playbook_on_stats')
    return {'playbook': _ts(last) - _ts(first), 'plays': plays, 'tasks': tasks,
            'runs': sum(t['runs'] for t in tasks), 'runs_by_host': by_host,
            'changed': sum(t['changed'] for t in tasks),
            'commands': sum(t['commands'] for t in tasks)}


# ------------------------------------------------------------------------------------------
# Phases

CLOCK = {'started': time.monotonic()}  # main() moves it back by the wall time of a resumed bench


def save(data):
    data['meta']['wall'] = time.monotonic() - CLOCK['started']
    with open(RESULTS_JSON, 'w') as handle:
        json.dump(data, handle, indent=1, sort_keys=True)


def show(what, res):
    log('%-34s %7.1f s (playbook %.1f s), %d module runs, %d changed, forks %s'
        % (what, res['wall'], res['playbook'], res['runs'], res['changed'], res['forks']))


def scale_tasks(res):
    """Seconds of the tasks that manage the N objects (all but the bookkeeping)."""
    return sum(t['duration'] for t in res['tasks'])


def clean_scale():
    """Remove the scale objects, untimed: every scale-* target, its conf file, every scale-* LV."""
    ssh('storage1', r"""
        set -e
        for tid in $(tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target \([0-9]*\): .*:scale-[0-9]*$/\1/p'); do
            tgtadm --lld iscsi --mode target --op delete --force --tid "$tid"
        done
        rm -f /etc/tgt/conf.d/openblock-iqn.2010-10.org.openstack:scale-*.conf /etc/tgt/conf.d/peer-scale.conf
        lvremove -y --select 'lv_name=~^scale-' cinder-volumes >/dev/null 2>&1 || true
    """)


def bare_reads(reps):
    """Seconds of the bare read commands in storage1 (median of reps), measured inside the VM."""
    times = []
    for dummy in range(reps):
        out = ssh('storage1', 'a=$(date +%s.%N); ' + BARE_READS + '; b=$(date +%s.%N); echo "$a $b"')
        start, end = out.split()
        times.append(float(end) - float(start))
    return statistics.median(times), times


# Where the untimed no-op run keeps its modules on storage1, to be timed there without Ansible.
KEPT_TMP = '/root/.ansible/bench-kept'
KEPT_MODULES = ('AnsiballZ_lvm_thinvol.py', 'AnsiballZ_tgt_target.py')
# ansible.builtin.ping: what starting any Ansible module costs in the VM (AnsiballZ unpacking,
# the interpreter, ansible.module_utils imported from the zip), with no work of its own.
KEPT_FLOOR = 'AnsiballZ_ping.py'


def time_in_vm(paths):
    """Seconds storage1 takes to run the payloads ``paths`` one after the other with python3;
    each one's JSON result is checked to be a no-op."""
    out = ssh('storage1', 'a=$(date +%%s.%%N); for m in %s; do python3 "$m" > "$m.out"; done; '
                          'b=$(date +%%s.%%N); echo "$a $b"' % ' '.join(paths))
    start, end = out.split()
    for path in set(paths):
        result = json.loads(ssh('storage1', 'cat %s.out' % path))
        if result.get('changed') or result.get('failed'):
            raise SystemExit('%s in the VM was not a no-op: %s' % (path, result.get('msg', result.get('commands'))))
    return float(end) - float(start)


def modules_in_vm(n, reps):
    """Seconds our two scale modules take inside storage1 (median of reps), and the floor: the
    same number of ansible.builtin.ping runs. One untimed no-op run keeps their AnsiballZ payloads
    (arguments included) on the VM, which then runs each with python3 as Ansible would, without ssh
    and module transfer."""
    ssh('storage1', 'rm -rf %s' % KEPT_TMP)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_KEEP_REMOTE_FILES='1',
               ANSIBLE_PIPELINING='0', ANSIBLE_REMOTE_TMP=KEPT_TMP)
    subprocess.run([os.path.join(VENV_BIN, 'ansible-playbook'), '-i', INVENTORY, os.path.join(HERE, 'ours/scale.yml'),
                    '-e', 'bench_n=%d' % n], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(VENV_BIN, 'ansible'), '-i', INVENTORY, 'storage1', '-m', 'ansible.builtin.ping'],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    names = KEPT_MODULES + (KEPT_FLOOR,)
    found = [ssh('storage1', 'ls %s/*/%s' % (KEPT_TMP, name)).split() for name in names]
    if any(len(paths) != 1 for paths in found):
        raise SystemExit('expected one kept payload of each of %s on storage1, found %s' % (names, found))
    paths = [paths[0] for paths in found]
    ours, floor = [], []
    for dummy in range(reps):
        ours.append(time_in_vm(paths[:-1]))
        floor.append(time_in_vm([paths[-1]] * len(KEPT_MODULES)))
    ssh('storage1', 'rm -rf %s' % KEPT_TMP)
    return dict(median=statistics.median(ours), times=ours, floor_median=statistics.median(floor), floor_times=floor)


def git_head():
    """The short commit of the working tree the bench measures."""
    return subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], check=False,
                          stdout=subprocess.PIPE, text=True).stdout.strip() or '?'


def site_done(who, data, reps):
    entry = data.get('site', {}).get(who, {})
    return bool(entry.get('converge')) and len(entry.get('noop', [])) >= reps


def phase_site(who, data, reps, playbook):
    if site_done(who, data, reps):
        log('%s site: kept from results.json' % who)
        return
    entry = data.setdefault('site', {}).setdefault(who, {})
    entry['git'] = git_head()
    res = run_playbook(who, playbook, '%s-site-converge' % who)
    show('%s site converge (bare VMs)' % who, res)
    entry['converge'] = [res]
    entry['noop'] = []
    save(data)
    for rep in range(reps):
        res = run_playbook(who, playbook, '%s-site-noop-%d' % (who, rep))
        show('%s site no-op #%d' % (who, rep + 1), res)
        if res['changed']:
            log('WARNING: the no-op re-run changed %d objects' % res['changed'])
        entry['noop'].append(res)
        save(data)


def phase_scale(who, data, sizes, reps_for, playbook, read_reps=0):
    entry = data.setdefault('scale', {}).setdefault(who, {})
    for n in sizes:
        conv_reps, noop_reps = reps_for(n)
        old = entry.get(str(n), {})
        if len(old.get('converge', [])) >= conv_reps and len(old.get('noop', [])) >= noop_reps and (
                not read_reps or 'floor_median' in old.get('modules_in_vm', {})):
            log('%s N=%d: kept from results.json' % (who, n))
            continue
        point = entry[str(n)] = {'converge': [], 'noop': [], 'git': git_head()}
        for rep in range(conv_reps):
            clean_scale()
            try:
                res = run_playbook(who, playbook, '%s-scale-%d-converge-%d' % (who, n, rep), {'bench_n': n})
            except PlaybookFailed as exc:
                # e.g. tgtd out of memory: record what ran and go on with the other sizes
                log('%s N=%d converge failed: %s' % (who, n, exc.msg))
                tasks = exc.summary['tasks']
                point['failed'] = {
                    'run': '%s-scale-%d-converge-%d' % (who, n, rep), 'message': exc.msg,
                    'thin_volumes': n, 'thin_volumes_task': tasks[0]['duration'] if tasks else 0,
                    'targets_task': tasks[1]['duration'] if len(tasks) > 1 else 0,
                    'target_commands': len(exc.res.get('commands') or []),
                    'targets_made': sum(1 for c in exc.res.get('commands') or [] if '--mode target --op new' in c) - 1}
                save(data)
                break
            show('%s N=%d converge #%d' % (who, n, rep + 1), res)
            point['converge'].append(res)
            save(data)
        if point.get('failed'):
            continue
        for rep in range(noop_reps):
            res = run_playbook(who, playbook, '%s-scale-%d-noop-%d' % (who, n, rep), {'bench_n': n})
            show('%s N=%d no-op #%d' % (who, n, rep + 1), res)
            point['noop'].append(res)
            save(data)
        if read_reps:
            median, times = bare_reads(read_reps)
            point['bare_reads'] = {'median': median, 'times': times}
            log('bare reads (vgs + lvs JSON, tgtadm show) at N=%d: %.2f s' % (n, median))
            point['modules_in_vm'] = in_vm = modules_in_vm(n, read_reps)
            log('our two modules run inside storage1 at N=%d: %.2f s; two ping modules there: %.2f s'
                % (n, in_vm['median'], in_vm['floor_median']))
            save(data)
    clean_scale()


def versions():
    def out(cmd):
        try:
            return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return '?'
    peer_pip = out([os.path.join(PEER_VENV, 'bin', 'pip'), 'list', '--format', 'json'])
    peer = dict((p['name'], p['version']) for p in json.loads(peer_pip)) if peer_pip != '?' else {}
    cg = out([os.path.join(PEER_VENV, 'bin', 'ansible-galaxy'), 'collection', 'list', 'community.general',
              '--format', 'json'])
    cg_version = '?'
    if cg != '?':
        for path in json.loads(cg).values():
            cg_version = path.get('community.general', {}).get('version', cg_version)
    galaxy = open(os.path.join(ROOT, 'galaxy.yml')).read()
    cpu = re.search(r'^model name\s*:\s*(.*)$', open('/proc/cpuinfo').read(), re.M)
    return {
        'date': datetime.date.today().isoformat(),
        'host': '%s, %d CPUs, %s' % (cpu.group(1) if cpu else platform.processor(), os.cpu_count(), platform.platform()),
        'vms': 'qemu TCG (no KVM), 1 vCPU, Debian 12 (lab/topologies/bench.toml)',
        'qemu': out(['qemu-system-x86_64', '--version']).splitlines()[0],
        'ours': 'openblock.storage %s (git %s), ansible-core %s' % (
            re.search(r'^version:\s*(\S+)', galaxy, re.M).group(1),
            git_head(),
            out([os.path.join(VENV_BIN, 'python'), '-c', 'import ansible; print(ansible.__version__)'])),
        'peer': 'ansible %s (community.general %s), ansible-core %s' % (
            peer.get('ansible', '?'), cg_version, peer.get('ansible-core', '?')),
        'vm_tools': ssh('storage1', "lvm version | sed -n 's/^ *LVM version: *//p'; "
                        "dpkg-query -W -f '${Package} ${Version}\\n' tgt open-iscsi multipath-tools").strip()
        .replace('\n', ', '),
    }


# ------------------------------------------------------------------------------------------
# The report

def med(runs, key='wall'):
    return statistics.median(r[key] for r in runs) if runs else None


def per_object_fit(points):
    """Least-squares line t = a + b*N through the measured (N, t) points."""
    xs, ys = zip(*points)
    if len(xs) == 1:
        return 0.0, ys[0] / xs[0]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


# The peer's scale tasks that loop over the N objects; its other tasks run once whatever N is.
PEER_LOOPS = ('Thin volumes', 'Create the targets that are missing', 'Add their LUN', 'Allow the initiator')


def peer_scaled(points, kind, n):
    """The peer at size n from its largest measured size n0: each looping task's time times n/n0,
    the other tasks' time as it is (median over the runs)."""
    n0 = max(int(size) for size, point in points.items() if point[kind])
    runs = points[str(n0)][kind]
    return statistics.median(
        sum(t['duration'] * (float(n) / n0 if t['name'] in PEER_LOOPS else 1.0) for t in r['tasks']) for r in runs)


def scale_table(data):
    """{kind: {N: (ours, peer, peer_estimated)}} of medians of the scale tasks' seconds."""
    table = {}
    sizes = sorted(set(int(n) for who in data['scale'].values() for n in who) | set(data['meta']['sizes']))
    for kind in ('converge', 'noop'):
        measured = {}
        for who in ('ours', 'peer'):
            measured[who] = dict((int(n), med(p[kind], 'tasks_sum')) for n, p in data['scale'].get(who, {}).items()
                                 if p[kind])
        fit = per_object_fit(sorted(measured['peer'].items())) if len(measured['peer']) > 1 else None
        rows = {}
        for n in sizes:
            peer, estimated = measured['peer'].get(n), False
            if peer is None and fit:
                peer, estimated = fit[0] + fit[1] * n, True
            elif peer is None and measured['peer']:
                peer, estimated = peer_scaled(data['scale']['peer'], kind, n), True
            rows[n] = (measured['ours'].get(n), peer, estimated)
        table[kind] = rows
    return table


def fmt(value, digits=1):
    return '–' if value is None else ('%.*f' % (digits, value))


def ratio(ours, peer):
    return '–' if not ours or not peer else '%.1fx' % (peer / ours)


def write_report(data):
    for who in data.get('scale', {}).values():
        for point in who.values():
            for res in point['converge'] + point['noop']:
                res['tasks_sum'] = scale_tasks(res)
    meta = data['meta']
    site = data.get('site', {})
    table = scale_table(data)
    lines = [
        '# Benchmarks: openblock.storage against the peer',
        '',
        'Generated by `make bench` (`bench/run.py`); raw figures in `bench/results.json`, plot in '
        '`bench/scale.png`. The peer is the same work written the way users do it today: community.general '
        '`lvg`, `lvol` and `open_iscsi`, `ansible.builtin.command` around `tgtadm`, a template for '
        'multipath.conf, one task per object in loops (`bench/peer/`). Both run in the same bench run on '
        'the same lab topology (storage1 + compute1), each phase on freshly booted VMs.',
        '',
        '| | |', '|---|---|',
        '| Date | %s |' % meta['date'],
        '| Machine | %s |' % meta['host'],
        '| VMs | %s; %s |' % (meta['vms'], meta.get('qemu', '')),
        '| VM tools | %s |' % meta['vm_tools'],
        '| Ours | %s |' % meta['ours'],
        '| Peer | %s |' % meta['peer'],
        '| Repetitions | site no-op re-run: ours %d, peer %d; converge from bare VMs: 1 each; scale: see the table |'
        % (meta['site_reps'], meta.get('peer_site_reps', meta['site_reps'])),
        '| Total bench wall time | %s |' % (('%.0f min' % (meta['wall'] / 60)) if meta.get('wall') else '–'),
        '',
        '## 1-2. The site: storage1 + compute1, VG, thin pool, 20 volumes, 20 targets, 40 logins, multipath',
        '',
        'Seconds of the whole `ansible-playbook` run (process start to exit), median of the runs; '
        '"ratio" is peer / ours. Module runs are the module executions on the hosts (loop items '
        'count one each, skipped ones not), in all and per host; processes are those created in the '
        'two VMs during the run (`/proc/stat`), ssh sessions and module interpreters included.',
        '',
        '| Run | Ours (s) | Peer (s) | Ratio | Ours: module runs / processes | Peer: module runs / processes '
        '| Ours: module runs per host | Peer: module runs per host |',
        '|---|---:|---:|---:|---:|---:|---|---|',
    ]
    for kind, title in (('converge', 'Converge from bare VMs'), ('noop', 'No-op re-run')):
        o, p = site.get('ours', {}).get(kind, []), site.get('peer', {}).get(kind, [])
        lines.append('| %s (n=%d/%d) | %s | %s | %s | %s | %s | %s | %s |' % (
            title, len(o), len(p), fmt(med(o)), fmt(med(p)), ratio(med(o), med(p)),
            counts(o), counts(p), per_host(o), per_host(p)))
    lines += ['', 'Slowest tasks of the no-op re-run (median seconds, all hosts):', '']
    for who in ('ours', 'peer'):
        runs = site.get(who, {}).get('noop', [])
        if runs:
            lines.append('- %s: %s' % (who, ', '.join('%s %.1f' % (n, s) for n, s in slowest(runs))))
    lines += [
        '',
        '## 3. Scale: N thin volumes and N targets on storage1',
        '',
        'Ours: one `lvm_thinvol` task and one `tgt_target` task. Peer: `lvol` in a loop, one '
        '`tgtadm --op show` then three `tgtadm` commands per missing target in loops, and a template '
        'that persists the targets. Seconds of those tasks (median); per object = seconds / N.',
        '',
        '| N | Run | Ours (s) | Peer (s) | Ratio | Ours per object (ms) | Peer per object (ms) | Reps ours/peer |',
        '|---:|---|---:|---:|---:|---:|---:|---|',
    ]
    for n in sorted(table['converge']):
        for kind in ('converge', 'noop'):
            ours, peer, est = table[kind][n]
            reps = '%d/%s' % (len(data['scale'].get('ours', {}).get(str(n), {}).get(kind, [])),
                              'est.' if est else len(data['scale'].get('peer', {}).get(str(n), {}).get(kind, [])))
            lines.append('| %d | %s | %s | %s%s | %s | %s | %s%s | %s |' % (
                n, 'converge' if kind == 'converge' else 'no-op', fmt(ours), fmt(peer), ' (estimated)' if est else '',
                ratio(ours, peer), fmt(ours and ours / n * 1000, 0), fmt(peer and peer / n * 1000, 0),
                ' (est.)' if est else '', reps))
    for n, point in sorted((int(n), p) for n, p in data['scale'].get('ours', {}).items()):
        failed = point.get('failed')
        if failed:
            lines += ['', '**Ours at N = %d did not finish**: %s. Its thin-volume task had created all %d thin volumes '
                      'in %.0f s (%.2f s per volume); the target task made %d targets (%d `tgtadm` commands) in %.0f s '
                      'before tgtd refused more. No no-op run at this N.' % (
                          n, failed['message'], failed['thin_volumes'], failed['thin_volumes_task'],
                          failed['thin_volumes_task'] / failed['thin_volumes'], failed['targets_made'],
                          failed['target_commands'], failed['targets_task']),
                      '', 'The peer\'s estimate at N = %d assumes a tgtd that holds that many targets, which this '
                      'lab\'s did not. The failed `tgt_target` run reported `changed: false` although it had '
                      'applied those commands.' % n]
    est_n = [n for n in table['noop'] if table['noop'][n][2]]
    measured_n = sorted(int(n) for n, p in data['scale'].get('peer', {}).items() if p['noop'])
    if est_n and len(measured_n) == 1:
        lines += ['', 'Estimated (not run): the peer at N = %s, from its runs at N = %d: each task that loops '
                  'over the objects (%s) scaled by N / %d, the tasks that run once (the `tgtadm --op show`, the '
                  'template) as measured.' % (', '.join(map(str, est_n)), measured_n[0],
                                              ', '.join('"%s"' % t for t in PEER_LOOPS), measured_n[0])]
    elif est_n:
        fit_conv = per_object_fit(sorted((int(n), med(p['converge'], 'tasks_sum'))
                                         for n, p in data['scale']['peer'].items() if p['converge']))
        fit_noop = per_object_fit(sorted((int(n), med(p['noop'], 'tasks_sum'))
                                         for n, p in data['scale']['peer'].items() if p['noop']))
        lines += ['', 'Estimated (not run): the peer at N = %s, from a straight line through its measured '
                  'points (converge %.1f s + %.2f s per object; no-op %.1f s + %.2f s per object).'
                  % (', '.join(map(str, est_n)), fit_conv[0], fit_conv[1], fit_noop[0], fit_noop[1])]
    lines += ['', '### Our no-op against the bare reads it needs', '',
              'The bare reads are the commands our two modules run on a no-op (`vgs` and `lvs` JSON '
              'reports, one `tgtadm --op show`, built by the same functions the modules use), timed inside '
              'storage1 with the N objects present (median). "In the VM" is our two modules run there by '
              '`python3` from the payloads Ansible sent (kept with `ANSIBLE_KEEP_REMOTE_FILES`, arguments '
              'included): ssh and module transfer excluded. "Start-up" is what starting any Ansible module '
              'costs there: two runs of `ansible.builtin.ping`\'s payload, timed the same way (AnsiballZ '
              'unpacking, the interpreter, `ansible.module_utils` imported from the zip). "Module work" is '
              'in the VM minus start-up: argument checks, reads, parsing, planning and the result. "As Ansible '
              'sees it" is the two tasks of the no-op run, ssh and module transfer included.', '',
              '| N | Bare reads (s) | Our modules in the VM (s) | Start-up of two modules (s) | Module work (s) '
              '| Module work / bare | In the VM / bare | Our two tasks as Ansible sees them (s) '
              '| Tool commands of our no-op (reads + `commands` returned) |',
              '|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for n, point in sorted((int(n), p) for n, p in data['scale'].get('ours', {}).items()):
        if not point['noop']:
            continue
        bare, in_vm, floor, work = in_vm_figures(point)
        ours = med(point['noop'], 'tasks_sum')
        cmds = point['noop'][0]['commands']
        lines.append('| %d | %s | %s | %s | %s | %sx | %sx | %s | 3 + %d |' % (
            n, fmt(bare, 2), fmt(in_vm, 2), fmt(floor, 2), fmt(work, 2), fmt(work / bare if work and bare else None, 2),
            fmt(in_vm / bare if in_vm and bare else None, 2), fmt(ours, 2), cmds))
    lines += ['', '### Commands of the no-op runs', '']
    for who in ('ours', 'peer'):
        for n, point in sorted((int(n), p) for n, p in data['scale'].get(who, {}).items()):
            if point['noop']:
                r = point['noop'][0]
                lines.append('- %s, N=%d: %d module runs, %s processes created on storage1' % (
                    who, n, r['runs'], r['forks']['storage1']))
    lines += ['', 'Tool commands the peer\'s no-op ran, counted from its module runs and the module code: '
              '3 per `lvol` run (`lvm version`, `vgs`, `lvs`), 1 per `command` run:', '']
    for n, point in sorted((int(n), p) for n, p in data['scale'].get('peer', {}).items()):
        if point['noop']:
            r = point['noop'][0]
            lvol = sum(t['runs'] for t in r['tasks'] if (t.get('action') or '').endswith('lvol'))
            cmd = sum(t['runs'] for t in r['tasks'] if (t.get('action') or '').endswith('command'))
            lines.append('- peer, N=%d: %d `lvol` runs and %d `command` runs = %d tool commands' % (
                n, lvol, cmd, 3 * lvol + cmd))
    lines += ['', '## Targets of issue #10', '']
    lines += targets(site, table, data)
    lines += ['', '## Notes', '',
              '- The VMs are emulated (TCG) and share the host with other lab VMs (up to 4 on the host\'s CPUs), '
              'so absolute times are slow and vary from run to run; compare the two sides within this run.',
              '- Process counts include what the VMs start on their own meanwhile (a storage-only scale run '
              'still shows some on compute1); module runs are exact.',
              '- The peer logs in per (volume, portal) with `open_iscsi`; its single-target login omits '
              '`--portal` (a known defect of the module), so the first portal\'s item logs in through both '
              'portals and the second one finds the session. Its tgt loops skip the targets the one '
              '`tgtadm --op show` already lists, so on storage1 its no-op re-run mostly pays the `lvol` loop.',
              '- Each Ansible module task costs seconds in these VMs whatever it does: the start-up column '
              '(Python and ansible.module_utils under TCG), and ssh and module transfer on top of that (the '
              'gap between our modules in the VM and our two tasks).',
              ]
    commits = {}  # phase -> the commit it was measured at (runs older than the record have none)
    for who, entry in site.items():
        if entry.get('git'):
            commits['%s site' % who] = entry['git']
    for who, points in data.get('scale', {}).items():
        for n, point in points.items():
            # noop_git: the no-op figures were measured again, later, on the converge kept from git
            if point.get('noop_git'):
                commits['%s N=%s converge' % (who, n)] = point['git']
                commits['%s N=%s no-op' % (who, n)] = point['noop_git']
            elif point.get('git'):
                commits['%s N=%s' % (who, n)] = point['git']
    if len(set(commits.values())) > 1:
        lines += ['- The phases were measured at different commits: %s.'
                  % '; '.join('%s at git %s' % item for item in sorted(commits.items()))]
    if meta.get('resumed'):
        lines += ['- This bench ran in %d invocations: `run.py --resume` kept the finished runs of the interrupted '
                  'ones (the repetitions were cut to fit the time), so the wall time is their sum.'
                  % (meta['resumed'] + 1)]
    lines += ['']
    lines += ['', '![time against N](scale.png)', '']
    with open(RESULTS_MD, 'w') as handle:
        handle.write('\n'.join(lines))
    plot(table)


def counts(runs):
    if not runs:
        return '–'
    r = runs[0]
    return '%d / %d' % (r['runs'], sum(r['forks'].values()))


def per_host(runs):
    """Module runs by host of the first run (a bench from before this column has none: '–')."""
    by_host = runs[0].get('runs_by_host') if runs else None
    return ', '.join('%s %d' % (host, by_host[host]) for host in sorted(by_host)) if by_host else '–'


def slowest(runs, top=4):
    names = {}
    for res in runs:
        for task in res['tasks']:
            names.setdefault(task['name'], []).append(task['duration'])
    return sorted(((n, statistics.median(v)) for n, v in names.items()), key=lambda x: -x[1])[:top]


def in_vm_figures(point):
    """(bare reads, our modules in the VM, start-up of as many ping modules, in the VM less start-up)
    of a scale point, medians in seconds; None where the run has no such figure."""
    bare = point.get('bare_reads', {}).get('median')
    in_vm = point.get('modules_in_vm', {}).get('median')
    floor = point.get('modules_in_vm', {}).get('floor_median')
    return bare, in_vm, floor, in_vm - floor if in_vm and floor else None


def targets(site, table, data):
    out = []
    o, p = med(site.get('ours', {}).get('noop', [])), med(site.get('peer', {}).get('noop', []))
    if o and p:
        out.append('- Site no-op at most half the peer\'s: ours %.1f s, peer %.1f s, ours/peer = %.2f: %s.'
                   % (o, p, o / p, 'met' if o <= p / 2 else 'NOT met'))
    wanted = max(table['noop']) if table['noop'] else None
    done = [n for n, row in table['noop'].items() if row[0] and row[1]]
    big = max(done) if done else None
    if wanted and big is None:
        out.append('- No size has figures of both sides (a run of one side only), so the scale targets are not judged.')
    elif wanted and big != wanted:
        out.append('- N = %d: our runs did not finish (see above), so the N = %d targets are judged at N = %d, the '
                   'largest size with our figures.' % (wanted, wanted, big))
    if big:
        ours, peer, est = table['noop'][big]
        if ours and peer:
            out.append('- No-op at least 100x faster than the peer, at N = %d%s: %.1fx: %s.' % (
                big, ' (peer estimated)' if est else '', peer / ours, 'met' if peer / ours >= 100 else 'NOT met'))
            if wanted and big != wanted and table['noop'][wanted][1]:
                small = min(done)
                slope = (ours - table['noop'][small][0]) / (big - small)
                guess = ours + slope * (wanted - big)
                out.append('  Extrapolated, not measured: our no-op grew %.0f ms per object from N = %d to %d; at that '
                           'rate it would take %.1f s at N = %d, against the peer\'s estimated %.0f s: %.0fx.' % (
                               slope * 1000, small, big, guess, wanted, table['noop'][wanted][1],
                               table['noop'][wanted][1] / guess))
        bare, in_vm, floor, work = in_vm_figures(data['scale'].get('ours', {}).get(str(big), {}))
        if work and bare:
            out.append('- No-op within 2x of the bare reads, at N = %d: our modules\' work takes %.2f s in the VM '
                       '(%.2f s run there, less %.2f s that starting any two Ansible modules costs) against %.2f s '
                       'of bare reads = %.2fx: %s. With the start-up counted, %.2fx: %s.'
                       % (big, work, in_vm, floor, bare, work / bare, 'met' if work <= 2 * bare else 'NOT met',
                          in_vm / bare, 'met' if in_vm <= 2 * bare else 'NOT met'))
    return out


def plot(table):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for axis, kind, title in ((axes[0], 'converge', 'Converge'), (axes[1], 'noop', 'No-op re-run')):
        rows = table[kind]
        for who, index, style in (('ours', 0, 'o-'), ('peer', 1, 's-')):
            points = [(n, r[index]) for n, r in sorted(rows.items()) if r[index] is not None]
            measured = [(n, v) for n, v in points if who == 'ours' or not rows[n][2]]
            if measured:
                axis.plot(*zip(*measured), style, label='openblock.storage' if who == 'ours' else 'peer (loops)')
            if who == 'peer':
                est = [(n, v) for n, v in points if rows[n][2]]
                if est and measured:
                    axis.plot([measured[-1][0]] + [p[0] for p in est], [measured[-1][1]] + [p[1] for p in est],
                              's--', color=axis.lines[-1].get_color(), alpha=0.6, label='peer, estimated')
        axis.set_xscale('log')
        axis.set_yscale('log')
        axis.set_xlabel('N (thin volumes + targets)')
        axis.set_ylabel('seconds')
        axis.set_title('%s of N volumes and N targets' % title)
        axis.grid(True, which='both', alpha=0.3)
        axis.legend()
    axis = axes[2]
    for kind, marker in (('converge', 'o'), ('noop', 's')):
        for who, index, style in (('ours', 0, '-'), ('peer', 1, '--')):
            points = [(n, r[index] / n) for n, r in sorted(table[kind].items()) if r[index] is not None]
            if points:
                est = [str(n) for n, r in sorted(table[kind].items()) if r[2]]
                axis.plot(*zip(*points), marker + style, label='%s %s%s' % (
                    'ours' if who == 'ours' else 'peer', 'converge' if kind == 'converge' else 'no-op',
                    ' (est. at N=%s)' % ', '.join(est) if who == 'peer' and est else ''))
    axis.set_xscale('log')
    axis.set_yscale('log')
    axis.set_xlabel('N (thin volumes + targets)')
    axis.set_ylabel('seconds per object')
    axis.set_title('Time per object as N grows')
    axis.grid(True, which='both', alpha=0.3)
    axis.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


# ------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', default='10,100,500', help='N of the scale figure')
    parser.add_argument('--reps', type=int, default=2, help='repetitions of our scale runs and of the bare reads')
    parser.add_argument('--site-reps', type=int, default=2, help='no-op re-runs of our site')
    parser.add_argument('--peer-site-reps', type=int, default=1,
                        help='no-op re-runs of the peer\'s site (about 10 minutes each under TCG)')
    parser.add_argument('--peer-reps', type=int, default=2,
                        help='repetitions of the peer\'s scale runs (its loops are slow)')
    parser.add_argument('--big-n', type=int, default=100,
                        help='from this N on, our converge runs once (each thin volume is one lvcreate)')
    parser.add_argument('--peer-max-n', type=int, default=10,
                        help='larger peer sizes are estimated from the measured ones')
    parser.add_argument('--resume', action='store_true',
                        help='keep the runs bench/results.json already has (an interrupted bench) and do the rest')
    parser.add_argument('--report', action='store_true', help='only rewrite RESULTS.md and the plot')
    parser.add_argument('--keep', action='store_true', help='leave the lab running at the end')
    parser.add_argument('--only', choices=('ours', 'peer'), help='run one side only (for testing)')
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(',')]

    if args.report:
        with open(RESULTS_JSON) as handle:
            write_report(json.load(handle))
        return 0
    if not os.path.exists(os.path.join(PEER_VENV, 'bin', 'ansible-playbook')):
        raise SystemExit('the peer venv %s is missing: run `make bench`' % PEER_VENV)

    started = time.monotonic()
    data = {'meta': {}}
    if args.resume and os.path.exists(RESULTS_JSON):
        with open(RESULTS_JSON) as handle:
            data = json.load(handle)
        started -= data['meta'].get('wall', 0)
        data['meta']['resumed'] = data['meta'].get('resumed', 0) + 1
    CLOCK['started'] = started
    data['meta'].update(sizes=sizes, site_reps=args.site_reps, peer_site_reps=args.peer_site_reps)
    try:
        if args.only != 'ours':
            if site_done('peer', data, args.peer_site_reps):
                lab_reuse()
            else:
                log('peer: booting bare VMs')
                lab_fresh()
            data['meta'].update(versions())
            phase_site('peer', data, args.peer_site_reps, 'peer/site.yml')
            phase_scale('peer', data, [n for n in sizes if n <= args.peer_max_n],
                        lambda n: (args.peer_reps, args.peer_reps), 'peer/scale.yml')
        if args.only != 'peer':
            if site_done('ours', data, args.site_reps):
                lab_reuse()
            else:
                log('ours: booting bare VMs')
                lab_fresh()
            data['meta'].update(versions())
            phase_site('ours', data, args.site_reps, 'ours/site.yml')
            phase_scale('ours', data, sizes,
                        lambda n: (1 if n >= args.big_n else args.reps, args.reps), 'ours/scale.yml',
                        read_reps=args.reps)
    finally:
        data['meta']['wall'] = time.monotonic() - started
        save(data)
        if not args.keep:
            labctl('down', check=False)
    write_report(data)
    log('done in %.0f min: %s, %s' % (data['meta']['wall'] / 60, RESULTS_MD, PLOT))
    return 0


if __name__ == '__main__':
    sys.exit(main())
