# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""open-iscsi (iscsiadm) for the iscsi_session module: parsers of its output and the pure planner.

Everything here is keyed by the exact triple (target, portal, iface), where portal is the
``IP:port`` text iscsiadm prints (IPv6 in brackets). Sessions are never matched by substring,
so a session to ``...:disk10`` can never make ``...:disk1`` look logged in.
"""

from __future__ import annotations

import re

from ansible_collections.openblock.storage.plugins.module_utils import devices
from ansible_collections.openblock.storage.plugins.module_utils.names import format_portal, parse_portal
from ansible_collections.openblock.storage.plugins.module_utils.plan import Action

ISCSIADM = 'iscsiadm'
# The commands of open-iscsi the modules run, and its package.
ISCSI_TOOLS = {ISCSIADM: 'open-iscsi'}
INITIATOR_TOOLS = {'iscsi-iname': 'open-iscsi'}

# Exit codes of iscsiadm (open-iscsi include/iscsi_err.h) that change what the module does.
RC_SESSION_EXISTS = 15   # login: a session to this node already exists
RC_NO_OBJECTS = 21       # no sessions / no records / no matching session to log out
RC_LOGIN_AUTH_FAILED = 24
RC_DB_ERROR = 6          # e.g. `-m discoverydb -o show` of a record that does not exist

EMPTY = '<empty>'        # how iscsiadm prints an unset value in a record
STARTUP_KEY = 'node.startup'
NODE_AUTH_PREFIX = 'node.session.auth.'
DISCOVERY_AUTH_PREFIX = 'discovery.sendtargets.auth.'
SECRET_FIELDS = ('password', 'password_in')
# open-iscsi keeps CHAP names and secrets in fixed 256-byte fields of its records.
AUTH_MAX = 255


def portal_key(text):
    """``IP:port[,tpgt]`` as printed by iscsiadm -> (portal 'IP:port', tpgt or None)."""
    portal, dummy, tpgt = text.partition(',')
    address, port = parse_portal(portal, 'iscsiadm output')
    return format_portal(address, port), (int(tpgt) if tpgt else None)


# ---------------------------------------------------------------- parsers

_TARGET_LINE = re.compile(r'^(?P<portal>\S+) (?P<target>\S+)$')
_SESSION_LINE = re.compile(r'^(?P<transport>\w+): \[(?P<sid>\d+)\] (?P<portal>\S+) (?P<target>\S+)( \(\S+\))?$')


def parse_targets(text):
    """Lines ``IP:port,tpgt IQN`` (``iscsiadm -m node`` and sendtargets discovery) -> list of dicts."""
    found = []
    for line in text.splitlines():
        match = _TARGET_LINE.match(line.strip())
        if match and ',' in match.group('portal'):
            portal, tpgt = portal_key(match.group('portal'))
            found.append({'target': match.group('target'), 'portal': portal, 'tpgt': tpgt})
    return found


def parse_session_list(text):
    """``iscsiadm -m session``: ``tcp: [SID] IP:port,tpgt IQN (non-flash)`` -> list of dicts."""
    sessions = []
    for line in text.splitlines():
        match = _SESSION_LINE.match(line.strip())
        if match:
            portal, tpgt = portal_key(match.group('portal'))
            sessions.append({'sid': int(match.group('sid')), 'target': match.group('target'),
                             'portal': portal, 'tpgt': tpgt, 'transport': match.group('transport')})
    return sessions


def parse_session_detail(text):
    """``iscsiadm -m session -P 3`` -> one dict per session, with its SCSI disks.

    Sessions are grouped under ``Target:`` lines; each starts at ``Current Portal:``. The portal
    a session is matched by is the persistent one (the node record's), not the current one,
    which differs after a target redirect.
    """
    sessions = []
    target = session = None
    lun = None
    for raw in text.splitlines():
        line = raw.strip()
        key, dummy, value = line.partition(': ')
        if line.startswith('Target: '):
            target = line.split()[1]
        elif key == 'Current Portal':
            session = {'target': target, 'current_portal': portal_key(value)[0], 'devices': []}
            sessions.append(session)
        elif session is None:
            continue
        elif key == 'Persistent Portal':
            session['portal'], session['tpgt'] = portal_key(value)
        elif key == 'Iface Name':
            session['iface'] = value
        elif key == 'SID':
            session['sid'] = int(value)
        elif key == 'iSCSI Connection State':
            session['connection_state'] = value
        elif key == 'iSCSI Session State':
            session['state'] = value
        elif re.match(r'^scsi\d+ Channel \d+ Id \d+ Lun: \d+$', line):
            lun = int(line.rsplit(' ', 1)[1])
        elif line.startswith('Attached scsi disk '):
            session['devices'].append({'name': line.split()[3], 'lun': lun})
    return sessions


def parse_records(text):
    """``-o show`` output of node or discoverydb records -> list of {key: value} ('' for <empty>)."""
    records, current = [], None
    for line in text.splitlines():
        if line.startswith('# BEGIN RECORD'):
            current = {}
        elif line.startswith('# END RECORD'):
            if current is not None:
                records.append(current)
            current = None
        elif current is not None and ' = ' in line:
            key, dummy, value = line.partition(' = ')
            current[key.strip()] = '' if value.strip() == EMPTY else value.strip()
    return records


def node_from_record(record):
    """A node record (all its settings, secrets included) keyed the way the module matches it."""
    address, port = record['node.conn[0].address'], int(record['node.conn[0].port'])
    return {'target': record['node.name'], 'portal': format_portal(address, port),
            'tpgt': int(record.get('node.tpgt', '1')), 'iface': record.get('iface.iscsi_ifacename', 'default'),
            'settings': record}


def public_node(node):
    """What the module returns about a node record: no secrets."""
    settings = node['settings']
    return {'target': node['target'], 'portal': node['portal'], 'tpgt': node['tpgt'], 'iface': node['iface'],
            'startup': settings.get(STARTUP_KEY, ''),
            'auth': {'method': settings.get(NODE_AUTH_PREFIX + 'authmethod', ''),
                     'username': settings.get(NODE_AUTH_PREFIX + 'username', ''),
                     'username_in': settings.get(NODE_AUTH_PREFIX + 'username_in', '')}}


# ---------------------------------------------------------------- devices in use

# In-use checks (holders, mounts, swap, processes) live in devices.py; this name stays for callers.
device_usage = devices.device_usage


# ---------------------------------------------------------------- validation

def auth_value_errors(auth, option):
    """Errors in the CHAP fields of ``auth`` (user names and secrets) that iscsiadm cannot store.

    A field whose name starts with ``password`` is a secret: its value is never put in a message.
    """
    errors = []
    for field, value in auth.items():
        if value is None:
            continue
        shown = 'the value' if field.startswith('password') else repr(value)
        if not isinstance(value, str) or value == '' or len(value) > AUTH_MAX or re.search(r'\s', value):
            errors.append('%s.%s: %s must be 1 to %d characters without spaces or newlines'
                          % (option, field, shown, AUTH_MAX))
    return errors


# ---------------------------------------------------------------- planning

def auth_settings(prefix, auth):
    """The record settings that CHAP options ``auth`` stand for; {} when auth is not managed."""
    if not auth:
        return {}
    return {prefix + 'authmethod': 'CHAP',
            prefix + 'username': auth['username'], prefix + 'password': auth['password'],
            prefix + 'username_in': auth.get('username_in') or '',
            prefix + 'password_in': auth.get('password_in') or ''}


def node_settings(startup, node_auth):
    """The node record settings the module manages, in the order it writes them."""
    settings = {}
    if startup:
        settings[STARTUP_KEY] = startup
    settings.update(auth_settings(NODE_AUTH_PREFIX, node_auth))
    return settings


def is_secret(key):
    return key.rsplit('.', 1)[-1] in SECRET_FIELDS


def changed_settings(current, wanted):
    """The (key, value) pairs of ``wanted`` that ``current`` does not already have."""
    return [(k, v) for k, v in wanted.items() if current.get(k, '') != v]


def update_argv(base, changes):
    argv = list(base) + ['-o', 'update']
    for key, value in changes:
        argv += ['-n', key, '-v', value]
    return argv


def describe_keys(changes):
    return ', '.join(k.rsplit('.', 1)[-1] if k.startswith('node.session.') or k.startswith('discovery.') else k
                     for k, dummy in changes)


class Step(object):
    """The actions for one (target, portal) pair, how to undo them if its login is refused, and
    what the pair is expected to be after them (``after``: ``logged_in`` and ``record``, the node
    record with its settings, or None when there is none)."""

    def __init__(self, key, actions, login=None, undo=(), after=None):
        self.key = key
        self.actions = actions
        self.login = login
        self.undo = list(undo)
        self.after = after


def node_argv(target, portal, iface):
    return [ISCSIADM, '-m', 'node', '-T', target, '-p', portal, '-I', iface]


def resolve_pairs(state, targets, portals, iface, nodes, sessions, discovered, undiscovered=()):
    """The (target, portal) pairs a task manages, and errors for targets no portal offers.

    logged_in: every requested target at every portal (all targets discovery found when none
    are given). logged_out/absent: the requested targets at every portal, or everything that
    has a record or a session on those portals when no target is given. Portals in
    ``undiscovered`` were not asked (check mode before discovery_auth exists): no error there.
    """
    errors = []
    if state == 'logged_in':
        if not targets:
            return sorted({(d['target'], d['portal']) for d in discovered if d['portal'] in portals}), errors
        pairs = []
        known = {(n['target'], n['portal']) for n in nodes if n['iface'] == iface}
        offered = {(d['target'], d['portal']) for d in discovered}
        for portal in portals:
            for target in targets:
                if (target, portal) not in known | offered and portal not in undiscovered:
                    seen = sorted(d['target'] for d in discovered if d['portal'] == portal)
                    errors.append('targets: %s is not offered at portal %s (discovery found: %s); check the '
                                  'name, the portal and the target ACL' % (target, portal, ', '.join(seen) or 'nothing'))
                pairs.append((target, portal))
        return pairs, errors
    if targets:
        return [(t, p) for p in portals for t in targets], errors
    present = {(n['target'], n['portal']) for n in nodes if n['iface'] == iface}
    present |= {(s['target'], s['portal']) for s in sessions if s.get('iface', iface) == iface}
    return sorted(pair for pair in present if pair[1] in portals), errors


def plan_nodes(state, pairs, iface, startup, node_auth, force, nodes, sessions, discovered, usage):
    """Steps that bring each (target, portal) pair to ``state``; also the errors that forbid it.

    ``usage`` maps a disk name (sdX) to the reasons it is in use. Pure: no I/O.
    """
    records = {(n['target'], n['portal']): n for n in nodes if n['iface'] == iface}
    live = {}
    for session in sessions:
        if session.get('iface', iface) == iface:
            live.setdefault((session['target'], session['portal']), session)
    tpgts = {(d['target'], d['portal']): d['tpgt'] for d in discovered}
    wanted = node_settings(startup, node_auth)
    steps, errors = [], []
    for target, portal in pairs:
        key = (target, portal)
        base = node_argv(target, portal, iface)
        node, session = records.get(key), live.get(key)
        actions, undo, login = [], [], None
        if state == 'logged_in' and node is None:
            tpgt = tpgts.get(key)
            where = portal if tpgt is None else '%s,%d' % (portal, tpgt)
            actions.append(Action([ISCSIADM, '-m', 'node', '-o', 'new', '-T', target, '-p', where, '-I', iface],
                                  'create the node record of %s at %s' % (target, portal)))
            undo.append(Action(base + ['-o', 'delete'], 'remove the node record of %s at %s again' % key))
        if state != 'absent' and (node is not None or state == 'logged_in'):
            current = node['settings'] if node else {}
            changes = changed_settings(current, wanted)
            if changes:
                actions.append(Action(update_argv(base, changes),
                                      'set %s of %s at %s' % (describe_keys(changes), target, portal),
                                      secrets=[v for k, v in changes if is_secret(k)]))
                if node is not None:
                    old = [(k, current.get(k, '')) for k, dummy in changes]
                    undo.insert(0, Action(update_argv(base, old), 'restore the previous settings of %s at %s' % key,
                                          secrets=[v for k, v in old if is_secret(k)]))
        if state == 'logged_in' and session is None:
            # 15: logged in already (by another run meanwhile); 24: refused. Neither changed anything.
            login = Action(base + ['--login'], 'log in to %s at %s' % key,
                           ok_rcs=(0, RC_SESSION_EXISTS, RC_LOGIN_AUTH_FAILED),
                           noop_rcs=(RC_SESSION_EXISTS, RC_LOGIN_AUTH_FAILED))
            actions.append(login)
        if state != 'logged_in' and session is not None:
            busy = ['%s (%s)' % (reason, 'lun %s' % dev['lun'])
                    for dev in session.get('devices', []) for reason in usage.get(dev['name'], [])]
            if busy and not force:
                errors.append('refusing to log out of %s at %s: its disk is in use: %s. Stop using it first '
                              '(unmount, remove the LVM or multipath map on it) or set force=true'
                              % (target, portal, '; '.join(busy)))
            # 21: no session (gone meanwhile), nothing logged out
            actions.append(Action(base + ['--logout'], 'log out of %s at %s' % key,
                                  ok_rcs=(0, RC_NO_OBJECTS), noop_rcs=(RC_NO_OBJECTS,)))
        if state == 'absent' and node is not None:
            actions.append(Action(base + ['-o', 'delete'], 'remove the node record of %s at %s' % key,
                                  ok_rcs=(0, RC_NO_OBJECTS), noop_rcs=(RC_NO_OBJECTS,)))
        if actions:
            record = None
            if state != 'absent' and (node is not None or state == 'logged_in'):
                record = dict(node or {'target': target, 'portal': portal, 'tpgt': tpgts.get(key), 'iface': iface})
                record['settings'] = dict(record.get('settings', {}), **wanted)
            after = {'logged_in': state == 'logged_in', 'record': record}
            steps.append(Step(key, actions, login=login, undo=undo, after=after))
    return steps, errors


def changed_by(results, refused=()):
    """Whether the (action, exit code) ``results`` of a run changed the host: an action counts
    unless its exit code is one of its no-op codes, or it belongs to a ``refused`` step (a login
    refused for CHAP, whose actions the step's undo reverted). Pure: no I/O."""
    reverted = {id(action) for step in refused for action in list(step.actions) + step.undo}
    return any(action.changed_by(rc) for action, rc in results if id(action) not in reverted)


def discoverydb_argv(portal, iface):
    return [ISCSIADM, '-m', 'discoverydb', '-t', 'sendtargets', '-p', portal, '-I', iface]


def plan_discoverydb(state, portals, iface, discovery_auth, discoverydb, targets_given):
    """Actions on the sendtargets discovery records of ``portals``.

    ``discoverydb`` maps a portal to its record settings (None: no record). logged_in with
    discovery_auth creates/updates the records so discovery authenticates; absent with no
    targets (everything on those portals) removes them.
    """
    actions = []
    for portal in portals:
        record = discoverydb.get(portal)
        base = discoverydb_argv(portal, iface)
        if state == 'logged_in' and discovery_auth:
            if record is None:
                actions.append(Action(base + ['-o', 'new'], 'create the discovery record of %s' % portal))
            changes = changed_settings(record or {}, auth_settings(DISCOVERY_AUTH_PREFIX, discovery_auth))
            if changes:
                actions.append(Action(update_argv(base, changes),
                                      'set discovery %s of %s' % (describe_keys(changes), portal),
                                      secrets=[v for k, v in changes if is_secret(k)]))
        elif state == 'absent' and not targets_given and record is not None:
            actions.append(Action(base + ['-o', 'delete'], 'remove the discovery record of %s' % portal))
    return actions


def discovery_argv(portal, iface):
    """SendTargets discovery that writes nothing: no node record is created or reset."""
    return discoverydb_argv(portal, iface) + ['--discover', '-o', 'nonpersistent']


def plan_map_flushes(maps, leaving, usage, force):
    """The dm-multipath maps to flush before their paths are logged out, and the refusals.

    ``maps`` are the multipath maps of the host ({name, dm, slaves, size}); ``leaving`` the disks
    (sdX) of the sessions about to be logged out; ``usage`` why each map's device (dm-N) is in use.
    A map is flushed only when every one of its paths leaves; one in use (mounted, open, an LVM PV)
    is refused, naming the holder, unless ``force`` (then it is left, and loses its paths). Pure.
    """
    actions, errors = [], []
    for mp in sorted(maps, key=lambda m: m['name']):
        if not mp['slaves'] or not set(mp['slaves']) <= set(leaving):
            continue
        busy = usage.get(mp['dm'], [])
        if busy and not force:
            errors.append('refusing to detach multipath map %s (/dev/mapper/%s, over %s): it is in use: %s. Stop '
                          'using it first (unmount it, close what holds it open, remove its LVM) or set force=true'
                          % (mp['name'], mp['name'], ', '.join(sorted(mp['slaves'])), '; '.join(busy)))
        elif not busy:
            actions.append(Action(['multipath', '-f', mp['name']],
                                  'flush multipath map %s before logging out of its paths' % mp['name']))
    return actions, errors


def plan_map_resizes(maps, disk_sizes):
    """``multipathd resize map`` for each multipath map smaller than its smallest path (``disk_sizes``:
    sdX -> 512-byte sectors), the step after a rescan found a grown LUN. Pure."""
    actions = []
    for mp in sorted(maps, key=lambda m: m['name']):
        sizes = [disk_sizes[d] for d in mp['slaves'] if d in disk_sizes]
        if sizes and len(sizes) == len(mp['slaves']) and mp['size'] < min(sizes):
            actions.append(Action(['multipathd', 'resize', 'map', mp['name']],
                                  'grow multipath map %s from %d to %d MiB, as its paths'
                                  % (mp['name'], mp['size'] // 2048, min(sizes) // 2048)))
    return actions


def sessions_view(sessions, pairs, by_path):
    """The returned sessions of the managed pairs, each disk with its /dev/disk/by-path links."""
    wanted = set(pairs)
    view = []
    for session in sessions:
        if (session['target'], session['portal']) not in wanted:
            continue
        devices = [{'name': d['name'], 'path': '/dev/' + d['name'], 'lun': d['lun'],
                    'by_path': sorted(by_path.get(d['name'], []))} for d in session['devices']]
        view.append({'sid': session['sid'], 'target': session['target'], 'portal': session['portal'],
                     'iface': session.get('iface', 'default'), 'state': session.get('state', ''),
                     'connection_state': session.get('connection_state', ''), 'devices': devices})
    return sorted(view, key=lambda s: (s['target'], s['portal']))


def predicted_view(before, steps):
    """The diff ``after`` that check mode predicts: ``before`` with each planned pair as its
    step expects it. A new record shows the settings the task writes; the others (startup when
    not given) take iscsid.conf's defaults and read ''. Pure: no I/O."""
    view = dict(before)
    for step in steps:
        record = step.after['record']
        view['%s @ %s' % step.key] = {'logged_in': step.after['logged_in'],
                                      'record': public_node(record) if record else None}
    return view


def diff_view(pairs, nodes, sessions, iface):
    """before/after of what the module owns: per pair, the session and the record's managed settings."""
    records = {(n['target'], n['portal']): n for n in nodes if n['iface'] == iface}
    live = {(s['target'], s['portal']) for s in sessions if s.get('iface', iface) == iface}
    view = {}
    for pair in pairs:
        node = records.get(pair)
        view['%s @ %s' % pair] = {
            'logged_in': pair in live,
            'record': public_node(node) if node else None,
        }
    return view
