# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared (sanlock) volume groups: readers of lvmconfig, systemctl, sanlock and lvmlockctl output,
input rules and the planner of the sanlock_vg module.

The LVM reports themselves are read with the JSON helpers of ``lvm.py``. The planner is pure: it
takes what the readers returned and the validated input, and returns the ordered ``Action`` list
plus the state expected afterwards, or raises ``Refusal`` naming every step it will not take.
"""

from __future__ import annotations

import copy
import json
import re

from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    Refusal, name_error, parse_report, report_argv)
from ansible_collections.openblock.storage.plugins.module_utils.plan import Action, FileWrite
from ansible_collections.openblock.storage.plugins.module_utils.sizes import SizeError, human, parse_size, round_up

SERVICES = ('wdmd', 'sanlock', 'lvmlockd')
HOST_ID_MAX = 2000
MODES = ('exclusive', 'shared', 'inactive')
# The module's lock_start_timeout default: sanlock joins a lockspace in 20 s to 3 min.
LOCK_START_TIMEOUT = 300
# lvmlockd names the sanlock lockspace of VG "x" "lvm_x".
LOCKSPACE_PREFIX = 'lvm_'
# A systemd unit name (with or without its .service suffix), never an option.
UNIT_RE = re.compile(r'^[A-Za-z0-9_:@\\][A-Za-z0-9_.:@\\-]*$')

VG_FIELDS = ('vg_name', 'vg_uuid', 'vg_attr', 'vg_lock_type', 'vg_extent_size', 'vg_size', 'vg_free',
             'lv_count')
LV_FIELDS = ('lv_name', 'lv_uuid', 'lv_attr', 'lv_size', 'segtype', 'lv_path', 'lv_active_locally')
# lvs hides the VG's own lock LV ([lvmlock]) without -a; the planner also skips it by name.
LOCK_LV = 'lvmlock'

# What LVM prints when another host holds the lock (lvmlockd's -EAGAIN on an LV or VG lock).
LOCKED_ELSEWHERE_RE = re.compile(r'locked by other host', re.I)


# ---------------------------------------------------------------------------------------------
# Reading

# The commands of the three packages a sanlock VG needs, each with its package.
TOOLS = {'lvmconfig': 'lvm2', 'lvmlockd': 'lvm2-lockd', 'sanlock': 'sanlock'}
CONFIG_ARGV = ['lvmconfig', '--type', 'full', 'global/use_lvmlockd', 'local/host_id']
SERVICES_ARGV = ['systemctl', 'is-active'] + ['%s.service' % s for s in SERVICES]
# -D adds each lockspace's renewal state: the plain listing looks the same after its lease is lost.
SANLOCK_STATUS_ARGV = ['sanlock', 'client', 'status', '-D']
# The last step of a removal runs LVM without lvmlockd: the VG is local by then.
NO_LVMLOCKD = 'global/use_lvmlockd=0'
LVM_VERSION_ARGV = ['lvm', 'version']


def vgs_argv(vg):
    return report_argv('vgs', VG_FIELDS, '--select', 'vg_name=%s' % vg)


def lvs_argv(vg):
    return report_argv('lvs', LV_FIELDS, '--binary', vg)


def parse_lvmconfig(text):
    """``{'use_lvmlockd': 1, 'host_id': 0}`` from ``lvmconfig --type full KEY...`` (``key=value`` lines)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition('=')
        if sep:
            value = value.strip().strip('"')
            values[key.strip()] = int(value) if re.match(r'^-?\d+$', value) else value
    return values


def parse_is_active(text, units=SERVICES):
    """unit -> state (``active``, ``inactive``, ``failed``...) from ``systemctl is-active U...``."""
    states = [line.strip() for line in text.splitlines() if line.strip()]
    return dict(zip(units, states + ['unknown'] * (len(units) - len(states))))


def parse_sanlock_status(text):
    """Lockspaces and resource leases from ``sanlock client status``.

    Returns ``{'lockspaces': {name: {'host_id', 'path', 'adding', 'removing', 'detail'}},
    'resources': {lockspace: {resource: {'mode': 'ex'|'sh', 'orphan': bool}}}, 'daemon': {key: value}}``
    (``daemon``: the daemon's own ``-D`` settings, such as ``use_watchdog``; empty without ``-D``). A lockspace line
    ends with ``ADD`` while sanlock is still joining it (a lock-start is waiting for its delta lease)
    and ``REM`` while leaving it. lvmlockd names an LV's resource by the LV's UUID; a shared lease
    ends with ``:SH``; leases left behind by a dead lvmlockd are flagged ``ORPHAN``. With ``-D``, the
    indented ``key=value`` lines under a lockspace (``renew_fail``, ``space_dead``,
    ``renewal_last_result``...) are its ``detail``.
    """
    lockspaces, resources, daemon = {}, {}, {}
    current = None  # the lockspace (or the daemon) whose -D detail lines follow
    for line in text.splitlines():
        fields = line.split()
        if current is not None and line[:1].isspace() and len(fields) == 1 and '=' in fields[0]:
            key, value = fields[0].split('=', 1)
            current['detail'][key] = value
            continue
        current = None
        if len(fields) == 2 and fields[0] == 'daemon':
            # daemon UUID.HOST, then with -D the daemon's settings (use_watchdog=0|1, version_str...)
            current = dict(detail=daemon)
            continue
        if len(fields) < 2 or fields[0] not in ('s', 'r'):
            continue
        if fields[0] == 's':
            # s LOCKSPACE:HOST_ID:PATH:OFFSET [ADD|REM]
            name, host_id, rest = (fields[1].split(':', 2) + ['', ''])[:3]
            flags = fields[2:]
            current = lockspaces[name] = dict(host_id=int(host_id) if host_id.isdigit() else None,
                                              path=rest.rsplit(':', 1)[0], adding='ADD' in flags,
                                              removing='REM' in flags, detail={})
        else:
            # r LOCKSPACE:RESOURCE:PATH:OFFSET[:LVER|:SH] p PID [ORPHAN]
            parts = fields[1].split(':')
            if len(parts) > 1:
                resources.setdefault(parts[0], {})[parts[1]] = dict(
                    mode='sh' if parts[-1] == 'SH' else 'ex', orphan='ORPHAN' in fields[2:])
    return dict(lockspaces=lockspaces, resources=resources, daemon=daemon)


def parse_lvm_version(text):
    """(major, minor, patch) of ``lvm version`` (``LVM version:     2.03.31(2) (2025-02-27)``), or None."""
    match = re.search(r'LVM version:\s*(\d+)\.(\d+)\.(\d+)', text or '')
    return tuple(int(part) for part in match.groups()) if match else None


def parse_host_status(text):
    """host_id -> last renewal timestamp from ``sanlock client host_status -s LOCKSPACE``.

    A host with a timestamp of 0 has never joined or has left cleanly; any other value means it
    holds (or held until it died) the lockspace.
    """
    hosts = {}
    for line in text.splitlines():
        match = re.match(r'^(\d+)\s+timestamp\s+(\d+)', line.strip())
        if match:
            hosts[int(match.group(1))] = int(match.group(2))
    return hosts


def parse_vg(text):
    """The VG report row (or None) of ``vgs_argv``."""
    rows = parse_report(text, 'vg')
    return rows[0] if rows else None


def parse_lvs(text, leases):
    """LV rows of ``lvs_argv`` with ``mode`` on this host: exclusive, shared or inactive.

    ``leases`` are the VG's resource leases from ``parse_sanlock_status``. The mode comes from the
    LV's lease (lvmlockd names it by LV UUID; ``lv_active_exclusively`` reads 1 for shared LVs too).
    An active LV without a lease (lvmlockd lost it) reads ``unlocked``.
    """
    rows = []
    for row in parse_report(text, 'lv'):
        if row['lv_name'] == LOCK_LV or row['lv_name'].startswith('['):
            continue
        row['mode'] = lv_mode(row, leases.get(row['lv_uuid']))
        row['orphan'] = bool(leases.get(row['lv_uuid'], {}).get('orphan'))
        rows.append(row)
    return rows


def lv_mode(row, lease):
    """exclusive / shared / inactive / unlocked of one LV report row (``--binary``: "1"/"0")."""
    if row.get('lv_active_locally') not in ('1', 1):
        return 'inactive'
    if not lease:
        return 'unlocked'
    return 'shared' if lease['mode'] == 'sh' else 'exclusive'


def lease_state(detail):
    """held / failing / lost of a lockspace's delta lease, from its ``sanlock client status -D`` detail:
    ``space_dead`` once its renewals failed past the lease's life (sanlock then kills what holds its
    leases), ``renew_fail`` while they fail (the storage of the leases is unreachable)."""
    if detail.get('space_dead', '0') != '0':
        return 'lost'
    if detail.get('renew_fail', '0') != '0':
        return 'failing'
    return 'held'


def lockspace_facts(vg_name, status, host_id):
    """What the module returns about the VG's lockspace on this host."""
    space = status['lockspaces'].get(LOCKSPACE_PREFIX + vg_name)
    if not space:
        return dict(name=LOCKSPACE_PREFIX + vg_name, joined=False, joining=False, host_id=host_id, locks=0,
                    lease=None)
    return dict(name=LOCKSPACE_PREFIX + vg_name, joined=not space['adding'] and not space['removing'],
                joining=space['adding'], host_id=space['host_id'], path=space['path'],
                locks=len(status['resources'].get(LOCKSPACE_PREFIX + vg_name, {})),
                lease=lease_state(space['detail']), renewal_last_result=space['detail'].get('renewal_last_result'))


def lease_problem(lockspace, lvs):
    """Why the VG's locks protect nothing on this host any more, or None: its lockspace's lease is
    failing or lost (the storage holding the leases went away), while LVs may still be active here."""
    if lockspace.get('lease') in (None, 'held'):
        return None
    active = sorted(lv['lv_name'] for lv in lvs if lv.get('mode') != 'inactive')
    return ('the lease of lockspace %s is %s (sanlock cannot renew it on its storage, renewal_last_result=%s): '
            'the locks of this host protect nothing%s; stop what uses the VG, then run '
            'playbooks/recover_shared_lvm.yml once its storage is back'
            % (lockspace['name'], lockspace['lease'], lockspace.get('renewal_last_result'),
               ' while %s stay active here' % ', '.join(active) if active else ''))


# ---------------------------------------------------------------------------------------------
# Preconditions and input rules

def setup_errors(config, services):
    """What keeps this host from using a sanlock VG at all, each with what to fix."""
    errors = config_errors(config)
    down = daemons_down(services)
    if down:
        errors.append('%s not running (%s); %s' % (', '.join(down), ', '.join('%s: %s' % (u, services.get(u))
                                                                              for u in down), daemons_advice(down)))
    return errors


def daemons_down(services):
    """The lock daemons (of ``SERVICES``, in order) that ``services`` does not report active."""
    return [unit for unit in SERVICES if services.get(unit) != 'active']


def config_errors(config):
    """What is wrong with the host's lvmlockd settings (use_lvmlockd, host_id), each with what to fix."""
    errors = []
    if config.get('use_lvmlockd') != 1:
        errors.append('use_lvmlockd is %r in /etc/lvm/lvm.conf; set "use_lvmlockd = 1" in its global section '
                      '(the shared_lvm role does) and restart lvmlockd' % (config.get('use_lvmlockd'),))
    host_id = config.get('host_id')
    if not isinstance(host_id, int) or host_id == 0:
        errors.append('host_id is not set in /etc/lvm/lvmlocal.conf; set "local { host_id = N }" with N unique '
                      'to this host among all hosts that see the VG, 1..%d' % HOST_ID_MAX)
    elif not 1 <= host_id <= HOST_ID_MAX:
        errors.append('host_id = %d in /etc/lvm/lvmlocal.conf is outside 1..%d; give this host a unique '
                      'number in that range' % (host_id, HOST_ID_MAX))
    return errors


# The states whose check-mode run on a host that is not ready yet predicts instead of failing.
PREDICTED_STATES = ('present', 'started')


def check_mode_prediction(spec, problems):
    """What check mode reports on a host that is not ready yet (``problems``: setup errors and
    devices that are not there), or None when the module must fail instead.

    The tasks before this one in a play (packages, lvm.conf, the lock daemons, the LUN's login)
    only predict in check mode, so on a new host nothing of the VG can be read. With state
    present or started the real run then either creates the VG or lock-starts it (a lockspace
    cannot be joined while the daemons are down), so a change is the honest prediction.
    """
    if not problems or spec['state'] not in PREDICTED_STATES:
        return None
    return ('check mode: this host is not ready for volume group %s yet (%s); the run that readies it will '
            '%s, so a change is predicted without reading the VG and its LVs'
            % (spec['name'], '; '.join(problems),
               'create or lock-start it' if spec['state'] == 'present' else 'lock-start it'))


RECOVERY_PLAYBOOK = 'playbooks/recover_shared_lvm.yml'


def daemons_advice(down):
    """What to do about the lock daemons in ``down``. Only a stopped wdmd calls for a watchdog; a
    lock daemon gone while wdmd runs (lvmlockd killed, say) may have taken the locks of active LVs
    with it, which the recovery playbook restores."""
    if 'wdmd' in down:
        return ('wdmd needs a watchdog device (modprobe softdog when the host has none), then: systemctl start %s'
                % ' '.join(SERVICES))
    return ('if %s died or was stopped while LVs of a shared VG were active here, their locks are lost (sanlock '
            'keeps them as ORPHAN leases): run %s, which gives them back (with lvm2 2.03.25 or later it adopts the '
            'orphaned leases while the LVs stay active; before, it deactivates them, restarts sanlock and lvmlockd, '
            'lock-starts the VG and reactivates them in their modes); with no shared LV active here, '
            'systemctl start %s is enough' % (' and '.join(down), RECOVERY_PLAYBOOK, ' '.join(down)))


def spec_of(params):
    """Validated sanlock_vg input, and the list of every error found in it."""
    errors = []
    error = name_error(params['name'], 'name')
    if error:
        errors.append(error)
    state = params['state']
    devices = params.get('pvs') or []
    for index, device in enumerate(devices):
        if not isinstance(device, str) or not device.startswith('/dev/'):
            errors.append('pvs[%d]=%r is not a device path; give a path under /dev/ (the multipath alias, '
                          'for example /dev/mapper/shared-lun)' % (index, device))
    if len(set(devices)) != len(devices):
        errors.append('pvs=%r names a device twice' % (devices,))
    timeout = params.get('lock_start_timeout')
    if timeout is not None and timeout < 1:
        errors.append('lock_start_timeout=%r: give a number of seconds, at least 1 (lock-start takes 20 s to '
                      '3 min)' % (timeout,))
    lvs, seen = [], set()
    for index, item in enumerate(params.get('lvs') or []):
        where = 'lvs[%d]' % index
        name = item.get('name')
        error = name_error(name, where + '.name', lv=True)
        if error:
            errors.append(error)
        elif name == LOCK_LV:
            errors.append('%s.name=%r is the lock LV of the VG; choose another name' % (where, name))
        elif name in seen:
            errors.append('%s.name=%r is listed twice; list each LV once' % (where, name))
        seen.add(name)
        size = None
        if item.get('size') is not None:
            if '%' in str(item['size']):
                errors.append('%s.size=%r: give bytes with a unit, for example 10G (percent sizes are not '
                              'supported here)' % (where, item['size']))
            else:
                try:
                    size = parse_size(item['size'], where + '.size')
                except SizeError as err:
                    errors.append(str(err))
                if size == 0:
                    errors.append('%s.size=%r is zero; give the LV a size' % (where, item['size']))
        lvs.append(dict(name=name, size=size, size_text=item.get('size'), activation=item.get('activation'),
                        state=item.get('state') or 'present', where=where))
    if lvs and state in ('stopped', 'absent', 'query'):
        errors.append('lvs is only used with state=present, started or recovered; with state=%s drop it' % state)
    consumers = []
    for index, unit in enumerate(params.get('consumers') or []):
        if not isinstance(unit, str) or not UNIT_RE.match(unit):
            errors.append('consumers[%d]=%r is not a systemd unit name; give one like nova-compute.service' % (index, unit))
            continue
        consumers.append(unit if '.' in unit else unit + '.service')
    if consumers and state != 'recovered':
        errors.append('consumers is only used with state=recovered; with state=%s drop it' % state)
    watchdog = params.get('watchdog')
    if watchdog is not None and state not in ('present', 'started'):
        errors.append('watchdog is only used with state=present or started; with state=%s drop it' % state)
    return dict(name=params['name'], state=state, pvs=list(devices), lvs=lvs, timeout=timeout,
                force=bool(params.get('force')), consumers=consumers, watchdog=watchdog), errors


# ---------------------------------------------------------------------------------------------
# Planning

def view(vg, lvs, lockspace):
    """What diff mode shows: the VG's existence and lock type, this host's lockspace, each LV's size and mode."""
    if not vg:
        return dict(exists=False)
    return dict(exists=True, lock_type=vg['vg_lock_type'], lock_started=bool(lockspace.get('joined')),
                lvs=dict((lv['lv_name'], dict(size=lv['lv_size'], activation=lv['mode'])) for lv in lvs))


def lock_start_actions(vg_name, timeout):
    """``vgchange --lock-start`` bounded by ``timeout`` seconds (coreutils timeout exits 124 on expiry),
    once udev has emptied its queue, and once more if the first attempt fails with exit 5. On Debian
    13 a lock-start that activates the VG's lvmlock LV (after a lock-stop) now and then fails at
    once: lvmlockd finds no device node yet ("prepare_lockspace_san stat error 2" in its log,
    "invalid parameters for sanlock" from vgchange); a second lock-start a moment later finds it.
    A lock-start of a VG already started exits 0, so the second one is harmless after a first that
    worked, and a failure it repeats is reported."""
    def settle():
        return Action(['udevadm', 'settle', '--timeout=30'],
                      'wait until udev has processed its queue (the lvmlock device of the VG)',
                      ok_rcs=(0, 1), noop_rcs=(0, 1))  # a busy udev is no reason to skip the lock-start
    argv = lock_start_argv(vg_name, timeout)
    why = ('lock-start volume group %s on this host (joins its sanlock lockspace, waits up to %d s)'
           % (vg_name, timeout))
    return [settle(), Action(argv, why, ok_rcs=(0, 5), noop_rcs=(5,), timeout=timeout + 30),
            settle(), Action(argv, why + ', again if the first attempt found no lvmlock device', timeout=timeout + 30)]


def lock_start_argv(vg_name, timeout, lockopt=None):
    """``vgchange --lock-start`` (with ``--lockopt LOCKOPT``) bounded by ``timeout`` seconds; coreutils
    timeout exits 124 on expiry. Its Action's own bound is ``timeout + 30``, so the inner one speaks first."""
    return (['timeout', str(timeout), 'vgchange', '--lock-start'] + (['--lockopt', lockopt] if lockopt else [])
            + [vg_name])


def _activate(target, mode):
    flag = {'exclusive': 'ey', 'shared': 'sy', 'inactive': 'n'}[mode]
    what = {'exclusive': 'activate %s exclusively on this host', 'shared': 'activate %s shared on this host',
            'inactive': 'deactivate %s on this host'}[mode]
    return Action(['lvchange', '--activate', flag, target], what % target)


def plan(spec, vg, lvs, lockspace, other_hosts=()):
    """Actions that bring the VG and the listed LVs to ``spec``, and the expected diff view.

    ``vg`` is the VG report row (None when absent), ``lvs`` its LV rows with ``mode``,
    ``lockspace`` this host's ``lockspace_facts`` and ``other_hosts`` the host ids of other
    hosts that hold the VG's lockspace (read only for state=absent).
    """
    name, state, force = spec['name'], spec['state'], spec['force']
    lost = lease_problem(lockspace, lvs)
    if lost:
        # fail closed: no lock taken or released here means anything until the lockspace is recovered
        raise Refusal(['refused, nothing was changed: ' + lost])
    expected = copy.deepcopy(view(vg, lvs, lockspace))
    actions, refusals = [], []
    joined = bool(lockspace.get('joined'))

    if vg and vg['vg_lock_type'] != 'sanlock':
        raise Refusal(['volume group %s exists with lock type %r, not sanlock; this module manages sanlock VGs only '
                       '(convert it with vgchange --lock-type sanlock while it is inactive everywhere, or choose '
                       'another name)' % (name, vg['vg_lock_type'] or 'none')])

    if state == 'absent':
        if not vg:
            return actions, expected
        if not joined:
            # The hosts that still use the VG are read from its lockspace, which only a member can read.
            refusals.append('state=absent: %s is not lock-started on this host, so the hosts that still use it '
                            'cannot be checked; run state=started here first, then state=absent' % name)
        active = [lv['lv_name'] for lv in lvs if lv['mode'] != 'inactive']
        if active:
            refusals.append('state=absent: LV(s) %s of %s are active on this host; deactivate them first '
                            '(activation: inactive)' % (', '.join(active), name))
        if other_hosts:
            refusals.append('state=absent: host_id(s) %s still have %s lock-started (and may have LVs active); '
                            'deactivate its LVs and run state=stopped on those hosts first'
                            % (', '.join(str(h) for h in sorted(other_hosts)), name))
        if lvs and not force:
            refusals.append('state=absent: %s still holds %d LV(s) (%s); set force=true to remove them with the VG'
                            % (name, len(lvs), ', '.join(lv['lv_name'] for lv in lvs)))
        if refusals:
            raise Refusal(refusals)
        # vgremove of a lock-started sanlock VG can wait forever in sanlock's rem_lockspace (lvm2 2.03.31),
        # and so can a change of lock type while it is started: leave the lockspace, drop the lock type
        # (no other host holds the lockspace, read above), then remove it as a local VG.
        actions.append(Action(['vgchange', '--lock-stop', name], 'lock-stop volume group %s on this host' % name))
        actions.append(Action(['vgchange', '--yes', '--lock-type', 'none', '--lockopt', 'force', name],
                              'make %s a local volume group (no other host has it lock-started)' % name))
        actions.append(Action(['vgremove', '--config', NO_LVMLOCKD] + (['--force'] if lvs else []) + [name],
                              'remove volume group %s%s' % (name, ' with LV(s) %s' % ', '.join(
                                  lv['lv_name'] for lv in lvs) if lvs else '')))
        return actions, dict(exists=False)

    if state == 'stopped':
        if not vg or not joined and not lockspace.get('joining'):
            if vg:
                expected['lock_started'] = False
            return actions, expected
        active = [lv['lv_name'] for lv in lvs if lv['mode'] != 'inactive']
        if active:
            raise Refusal(['state=stopped: LV(s) %s of %s are active on this host; a VG cannot be lock-stopped '
                           'while LVs are active: deactivate them first (lvs with activation: inactive)'
                           % (', '.join(active), name)])
        actions.append(Action(['vgchange', '--lock-stop', name], 'lock-stop volume group %s on this host' % name))
        expected['lock_started'] = False
        return actions, expected

    # present / started
    prelude = []
    if not vg:
        if state == 'started':
            raise Refusal(['state=started: volume group %s does not exist; create it once, on one host, with '
                           'state=present and pvs (for example with run_once: true)' % name])
        if not spec['pvs']:
            raise Refusal(['state=present: volume group %s does not exist; give pvs (the shared LUN, for example '
                           '/dev/mapper/shared-lun) to create it' % name])
        # vgcreate --shared also joins the new lockspace: bounded like a lock-start.
        prelude.append(Action(['vgcreate', '--shared', '--lock-type', 'sanlock', name] + spec['pvs'],
                              'create shared volume group %s (lock type sanlock) on %s' % (name, ', '.join(spec['pvs'])),
                              timeout=(spec['timeout'] or LOCK_START_TIMEOUT) + 30))
        expected = dict(exists=True, lock_type='sanlock', lock_started=True, lvs={})
        extent = None
    else:
        if not joined:
            prelude += lock_start_actions(name, spec['timeout'])
            expected['lock_started'] = True
        extent = vg['vg_extent_size']

    by_name = dict((lv['lv_name'], lv) for lv in lvs)
    removals = []
    for item in spec['lvs']:
        lv_name, where = item['name'], item['where']
        target = '%s/%s' % (name, lv_name)
        lv = by_name.get(lv_name)
        if item['state'] == 'absent':
            if lv:
                if lv['lv_attr'][5:6] == 'o':
                    refusals.append('%s: %s is open on this host (mounted or held); stop its user before removing it'
                                    % (where, target))
                removals.append(Action(['lvremove', '--yes', target], 'remove LV %s' % target))
                expected['lvs'].pop(lv_name, None)
            continue
        mode = item['activation']
        if lv is None:
            if item['size'] is None:
                refusals.append('%s: LV %s does not exist; give its size to create it' % (where, target))
                continue
            size = round_up(item['size'], extent) if extent else item['size']
            mode = mode or 'exclusive'
            # lvcreate activates exclusively (and zeroes the LV's start); other modes follow.
            actions.append(Action(['lvcreate', '--yes', '--size', '%db' % size, '--name', lv_name,
                                   '--activate', 'ey', name],
                                  'create LV %s of %s (active exclusively on this host)' % (target, human(size))))
            if mode != 'exclusive':
                actions.append(_activate(target, 'inactive'))
                if mode == 'shared':
                    actions.append(_activate(target, 'shared'))
            expected['lvs'][lv_name] = dict(size=size, activation=mode)
            continue
        if lv['segtype'] != 'linear' and lv['segtype'] != 'striped':
            refusals.append('%s: %s is a %s LV; this module manages plain (linear) LVs only'
                            % (where, target, lv['segtype']))
            continue
        if item['size'] is not None:
            size = round_up(item['size'], extent)
            if size > lv['lv_size']:
                if lv['mode'] == 'shared':
                    refusals.append('%s: %s is active shared; LVM extends an LV only while it is active exclusively '
                                    'or inactive everywhere: deactivate it on every host first' % (where, target))
                actions.append(Action(['lvextend', '--size', '%db' % size, target],
                                      'grow LV %s from %s to %s' % (target, human(lv['lv_size']), human(size))))
                expected['lvs'][lv_name]['size'] = size
            elif size < lv['lv_size']:
                refusals.append('%s.size=%s is smaller than %s (%s); this module does not shrink LVs: give at least '
                                'the current size' % (where, item['size_text'], target, human(lv['lv_size'])))
        if mode and mode != lv['mode']:
            if lv['mode'] != 'inactive':
                if lv['lv_attr'][5:6] == 'o':
                    refusals.append('%s.activation=%s: %s is open on this host in mode %s; switching modes needs a '
                                    'deactivation: stop its user first' % (where, mode, target, lv['mode']))
                actions.append(_activate(target, 'inactive'))
            if mode != 'inactive':
                actions.append(_activate(target, mode))
            expected['lvs'][lv_name]['activation'] = mode
    if refusals:
        raise Refusal(refusals)
    # The VG first (created or lock-started), then removals free space, then creations and modes.
    return prelude + removals + actions, expected


# ---------------------------------------------------------------------------------------------
# Recovery of a host whose lock state is lost

# The record of a recovery in progress: the LVs to reactivate in their modes and the consumers to
# start again, kept until both are done, so that a run that fails half-way can be repeated.
RECOVERY_DIR = '/var/lib/openblock-storage'
SANLOCK_DEFAULTS = '/etc/default/sanlock'


# sanlock.service runs ``sanlock daemon $sanlock_opts``, sanlock_opts set in /etc/default/sanlock. Its -w
# option says whether sanlock drives the watchdog through wdmd: yes (sanlock's own default) unless it
# says -w 0. Debian 12's package ships sanlock_opts="-w 0", Debian 13's sanlock_opts="" (the watchdog).
SANLOCK_OPTS_RE = re.compile(r'^[ \t]*sanlock_opts=(.*)$', re.M)
SANLOCK_UNIT = 'sanlock.service'


def _opts_words(value):
    value = value.strip()
    if len(value) > 1 and value[0] in '"\'' and value[-1] == value[0]:
        value = value[1:-1]
    return value.split()


def _without_w(words):
    """``words`` without their -w options (``-w N`` or ``-wN``), and the last -w value (None without one)."""
    kept, last, index = [], None, 0
    while index < len(words):
        word = words[index]
        if word == '-w' and index + 1 < len(words):
            last, index = words[index + 1], index + 2
        elif word.startswith('-w') and word[2:].isdigit():
            last, index = word[2:], index + 1
        else:
            kept.append(word)
            index += 1
    return kept, last


def defaults_watchdog(text):
    """Whether the sanlock that /etc/default/sanlock's ``text`` starts drives the watchdog (the last
    sanlock_opts assignment wins, as in the shell that reads it)."""
    found = SANLOCK_OPTS_RE.findall(text or '')
    return _without_w(_opts_words(found[-1]) if found else [])[1] != '0'


def sanlock_defaults_with(text, watchdog):
    """/etc/default/sanlock's ``text`` with sanlock_opts giving ``-w 0`` (``watchdog`` false) or no -w
    (true: sanlock's default, the watchdog); its other options and lines kept, and ``text`` itself
    when it already says so."""
    text = text or ''
    if defaults_watchdog(text) == watchdog:
        return text
    matches = list(SANLOCK_OPTS_RE.finditer(text))
    words = _without_w(_opts_words(matches[-1].group(1)) if matches else [])[0] + ([] if watchdog else ['-w', '0'])
    line = 'sanlock_opts="%s"' % ' '.join(words)
    if not matches:
        return text + ('' if not text or text.endswith('\n') else '\n') + line + '\n'
    last = matches[-1]
    return text[:last.start()] + line + text[last.end():]


def watchdog_plan(watchdog, defaults_text, status):
    """The actions that make sanlock drive the watchdog or not, as ``watchdog`` says (None: leave it),
    and a warning (or None) when the running daemon cannot be switched now.

    /etc/default/sanlock is written when it says otherwise. sanlock is restarted when the running
    daemon's ``use_watchdog`` (``status['daemon']``, from ``sanlock client status -D``) differs, but
    only while it holds no lockspace: a restart then would drop their leases (and with the watchdog
    on, reset the host), so the change waits for sanlock's next start, the host's next boot.
    """
    if watchdog is None:
        return [], None
    actions = []
    text = defaults_text or ''
    wanted = sanlock_defaults_with(text, watchdog)
    what = 'drives the watchdog' if watchdog else 'does not drive the watchdog (-w 0)'
    if wanted != text:
        actions.append(FileWrite(SANLOCK_DEFAULTS, wanted, 'set sanlock_opts in %s so that sanlock %s'
                                 % (SANLOCK_DEFAULTS, what)))
    running = (status.get('daemon') or {}).get('use_watchdog')
    # a sanlock that does not report use_watchdog is restarted when the file changes
    differs = bool(actions) if running is None else (running != '0') != watchdog
    if not differs:
        return actions, None
    if status.get('lockspaces'):
        return actions, ('sanlock runs %s the watchdog and holds lockspace(s) %s, so it is not restarted (that '
                         'would drop their leases): it %s from its next start, at the next boot of this host'
                         % ('with' if running != '0' else 'without', ', '.join(sorted(status['lockspaces'])), what))
    actions.append(Action(['systemctl', 'restart', SANLOCK_UNIT],
                          'restart sanlock, which holds no lockspace, so that it %s' % what))
    return actions, None


def recovery_record_path(vg_name):
    return '%s/sanlock_vg-%s.recovery.json' % (RECOVERY_DIR, vg_name)


def parse_recovery_record(text, path):
    """``{'lvs': {name: mode}, 'consumers': [unit]}`` of a record, None without one; a record that
    does not read as one is refused (fail closed: it is all that knows the modes to restore)."""
    if text is None:
        return None
    try:
        record = json.loads(text)
        lvs, consumers = record['lvs'], record['consumers']
        if all(mode in ('exclusive', 'shared') for mode in lvs.values()) and all(
                isinstance(unit, str) for unit in consumers):
            return dict(lvs=dict(lvs), consumers=list(consumers))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise Refusal(['the recovery record %s is not one this module wrote; it holds the LV modes an earlier run '
                   'was restoring: read it, reactivate those LVs by hand (lvchange -aey or -asy), then remove '
                   'it and re-run' % path])


def recovery_reasons(lockspace, lvs, services, record):
    """Why this host's lock state of the VG needs a recovery; empty when it is sound."""
    reasons = []
    if record is not None:
        reasons.append('an earlier recovery did not finish')
    down = daemons_down(services)
    if down:
        reasons.append('%s not running' % ', '.join(down))
    lost = lease_problem(lockspace, lvs)
    if lost:
        reasons.append(lost)
    orphans = sorted(lv['lv_name'] for lv in lvs if lv['orphan'])
    if orphans:
        reasons.append('ORPHAN lease(s) of a dead lvmlockd on %s' % ', '.join(orphans))
    unlocked = sorted(lv['lv_name'] for lv in lvs if lv['mode'] == 'unlocked')
    if unlocked:
        reasons.append('%s active without a lease' % ', '.join(unlocked))
    active = [lv['lv_name'] for lv in lvs if lv['mode'] != 'inactive']
    if active and not lockspace.get('joined'):
        reasons.append('LV(s) active while the VG is not lock-started')
    return reasons


# lvm2 2.03.25 added the hidden lock options adoptls (vgchange --lock-start adopts the lockspace sanlock
# still holds) and adoptlv (lvchange adopts an LV's ORPHAN lease in the mode asked, failing if there is none
# or its mode differs). The same release made "lvmlockd --adopt 1" hang at its start whenever a lockspace
# survived in sanlock (its internal lockspace-start result goes to no client): seen on Debian 13's 2.03.31,
# where the daemon never serves a command after it. So the module adopts with the lock options, and never
# with --adopt.
ADOPT_LOCKOPT_SINCE = (2, 3, 25)


def adoption_blockers(lvs, lockspace, services, record, lvm_version):
    """Why this host's orphaned leases cannot be adopted in place (empty when they can).

    Adoption keeps the LVs active and sanlock running: lvmlockd is started (when down), takes the
    VG's lockspace over from sanlock and adopts each ORPHAN lease in its own mode. It needs the
    lockspace held by sanlock with a sound lease, wdmd and sanlock running, every active LV
    covered by a lease, no lease orphaned under an inactive LV, and no unfinished earlier recovery.
    """
    blockers = []
    if lvm_version is None or tuple(lvm_version) < ADOPT_LOCKOPT_SINCE:
        blockers.append('lvm2 %s cannot adopt orphaned leases (--lockopt adoptls/adoptlv came with %d.%02d.%d)'
                        % (('%d.%02d.%d' % tuple(lvm_version) if lvm_version else '(version unknown)',)
                           + ADOPT_LOCKOPT_SINCE))
    if record is not None:
        blockers.append('an earlier recovery did not finish')
    down = [unit for unit in ('wdmd', 'sanlock') if services.get(unit) != 'active']
    if down:
        blockers.append('%s not running' % ', '.join(down))
    if not lockspace.get('joined') or lockspace.get('lease') != 'held':
        blockers.append('sanlock does not hold the lockspace %s with a sound lease' % lockspace.get('name'))
    unlocked = sorted(lv['lv_name'] for lv in lvs if lv['mode'] == 'unlocked')
    if unlocked:
        blockers.append('%s active without a lease' % ', '.join(unlocked))
    stray = sorted(lv['lv_name'] for lv in lvs if lv['orphan'] and lv['mode'] == 'inactive')
    if stray:
        blockers.append('an ORPHAN lease of inactive %s' % ', '.join(stray))
    return blockers


def plan_adoption(name, lvs, services, timeout):
    """Start lvmlockd when it is down, make it take the VG's lockspace over from sanlock (``--lockopt
    adoptls``, no wait for a delta lease: sanlock still holds it) and adopt each ORPHAN lease in its
    mode (``--lockopt adoptlv``; the LV is active already and stays so). No consumer stops, no LV is
    deactivated and sanlock keeps running, so a watchdog that sanlock drives never fires."""
    actions = []
    if services.get('lvmlockd') != 'active':
        actions.append(Action(['systemctl', 'start', 'lvmlockd.service'],
                              'start lvmlockd (sanlock keeps the lockspace and the orphaned leases meanwhile)'))
    # no udevadm settle: the lvmlock LV stays active throughout
    actions.append(Action(lock_start_argv(name, timeout, 'adoptls'),
                          'lock-start volume group %s by adopting the lockspace sanlock holds for this host' % name,
                          timeout=timeout + 30))
    for lv in sorted(lvs, key=lambda row: row['lv_name']):
        if lv['orphan']:
            target = '%s/%s' % (name, lv['lv_name'])
            actions.append(Action(['lvchange', '--activate', 'ey' if lv['mode'] == 'exclusive' else 'sy',
                                   '--lockopt', 'adoptlv', target],
                                  'adopt the orphaned %s lease of %s (it stays active)' % (lv['mode'], target)))
    return actions


def recovery_problems(expected, lvs):
    """What a recovery left wrong, read back after it ran (empty when it worked): leases still ORPHAN,
    or an LV whose mode is not the one planned."""
    problems = []
    orphans = sorted(lv['lv_name'] for lv in lvs if lv['orphan'])
    if orphans:
        problems.append('the lease(s) of %s are still ORPHAN' % ', '.join(orphans))
    modes = dict((lv['lv_name'], lv['mode']) for lv in lvs)
    for lv_name, lv in sorted(expected.get('lvs', {}).items()):
        if lv_name in modes and modes[lv_name] != lv['activation']:
            problems.append('%s is %s, not %s' % (lv_name, modes[lv_name], lv['activation']))
    return problems


def sanlock_watchdog(sanlock_defaults, daemon):
    """How sanlock uses the watchdog, or None when it does not: the file (``sanlock_defaults``) decides
    from sanlock's next start, the running daemon's ``-D`` settings (``daemon``) until then."""
    if defaults_watchdog(sanlock_defaults):
        return 'drives the watchdog (%s has no sanlock_opts="-w 0")' % SANLOCK_DEFAULTS
    use = (daemon or {}).get('use_watchdog', '0')
    if use != '0':
        return ('runs with the watchdog (use_watchdog=%s in sanlock client status -D; %s says -w 0 from its next '
                'start)' % (use, SANLOCK_DEFAULTS))
    return None


def plan_recovery(spec, vg, lvs, lockspace, services, record, sanlock_defaults, consumer_states, lvm_version=None,
                  daemon=None):
    """Actions that give a host its lock state back, and the expected diff view.

    Where the orphaned leases can be adopted (``adoption_blockers`` is empty; ``lvm_version`` is the
    ``parse_lvm_version`` of this host), ``plan_adoption`` does it in place. Otherwise:
    stop the consumers that run, record each active LV's mode (the record of an unfinished earlier
    run wins), deactivate them, stop lvmlockd, kill sanlock (which forgets the orphaned leases;
    other hosts see them expire), restart the lock daemons, lock-start the VG, reactivate each LV in
    its mode, start the consumers again and drop the record. An LV active without a lease comes back
    in the activation ``spec['lvs']`` gives it, else exclusive. A sound host gets no actions.
    ``services``: unit -> state of the lock daemons; ``consumer_states``: unit -> state of
    ``spec['consumers']``; ``sanlock_defaults``: the text of /etc/default/sanlock (None if missing);
    ``daemon``: the running sanlock's ``-D`` settings (``use_watchdog``), which win over the file (a
    file changed while sanlock held lockspaces takes effect at its next start only).
    """
    name = spec['name']
    if not vg:
        raise Refusal(['state=recovered: volume group %s does not exist on this host; check that its LUN is '
                       'visible (multipath -ll)' % name])
    before = view(vg, lvs, lockspace)
    reasons = recovery_reasons(lockspace, lvs, services, record)
    if not reasons:
        return [], copy.deepcopy(before), reasons
    blockers = adoption_blockers(lvs, lockspace, services, record, lvm_version)
    if not blockers:
        expected = copy.deepcopy(before)
        expected['lock_started'] = True
        return plan_adoption(name, lvs, services, spec['timeout'] or LOCK_START_TIMEOUT), expected, reasons
    watchdog = services.get('sanlock') == 'active' and sanlock_watchdog(sanlock_defaults, daemon)
    if watchdog:
        raise Refusal(['state=recovered: sanlock on this host %s: killing it would reset the host, and the orphaned '
                       'leases cannot be adopted in place (%s); reboot the host instead, then run this again'
                       % (watchdog, '; '.join(blockers))])
    path = recovery_record_path(name)
    actions = []
    if record is None:
        wanted = dict((item['name'], item['activation']) for item in spec['lvs'] if item['activation'])
        modes = {}
        for lv in lvs:
            mode = wanted.get(lv['lv_name'], 'exclusive') if lv['mode'] == 'unlocked' else lv['mode']
            if mode != 'inactive':  # inactive here, or asked to stay inactive when found without a lease
                modes[lv['lv_name']] = mode
        running = [unit for unit in spec['consumers'] if consumer_states.get(unit) == 'active']
        record = dict(lvs=modes, consumers=running)
        actions.append(FileWrite(path, json.dumps(record, indent=2, sort_keys=True) + '\n',
                                 'record the modes of %s and the running consumers in %s'
                                 % (', '.join(sorted(modes)) or 'no active LV', path), mode=0o600))
    modes, running = record['lvs'], record['consumers']
    targets = ['%s/%s' % (name, lv) for lv in sorted(modes)]
    if running:
        actions.append(Action(['systemctl', 'stop'] + running, 'stop %s, which use the VG' % ', '.join(running)))
    if targets:
        # Works without lvmlockd: the locks of these LVs are gone anyway.
        actions.append(Action(['lvchange', '--activate', 'n'] + targets, 'deactivate %s' % ', '.join(targets)))
    actions.append(Action(['systemctl', 'stop', 'lvmlockd.service'], 'stop lvmlockd'))
    if services.get('sanlock') == 'active':
        actions.append(Action(['systemctl', 'kill', '--signal=SIGKILL', 'sanlock.service'],
                              'kill sanlock, which forgets the orphaned leases (other hosts see them expire)'))
    for unit in SERVICES:
        actions.append(Action(['systemctl', 'restart', '%s.service' % unit], 'restart %s' % unit))
    actions += lock_start_actions(name, spec['timeout'] or LOCK_START_TIMEOUT)
    actions += [_activate('%s/%s' % (name, lv), modes[lv]) for lv in sorted(modes)]
    if running:
        actions.append(Action(['systemctl', 'start'] + running, 'start %s again' % ', '.join(running)))
    actions.append(FileWrite(path, None, 'drop the record %s: the recovery is complete' % path))
    expected = copy.deepcopy(before)
    expected['lock_started'] = True
    for lv_name, lv in expected['lvs'].items():
        lv['activation'] = modes.get(lv_name, 'inactive' if lv['activation'] == 'unlocked' else lv['activation'])
    return actions, expected, reasons


def explain_failure(action, rc, output):
    """Advice added to the error of a failed action, from its exit code and what it printed."""
    if LOCKED_ELSEWHERE_RE.search(output) and action.argv[0] in ('lvchange', 'lvremove', 'lvextend'):
        return ('%s is locked by another host: it is active there (exclusively, or shared when this host asked '
                'for exclusive); deactivate it on that host first, or use activation: shared on every host'
                % action.argv[-1])
    if action.argv[0] == 'vgremove' and NO_LVMLOCKD in action.argv:
        return ('%s is a local volume group now (its sanlock lock type was dropped by the step before); '
                'finish by hand with: vgremove --config %s --force %s' % (action.argv[-1], NO_LVMLOCKD, action.argv[-1]))
    if action.argv[0] == 'timeout' and rc == 124:
        return ('the lock-start did not finish within the timeout; check that this '
                'host sees the VG\'s device and that its host_id is not used by another host, then raise '
                'lock_start_timeout')
    return None
