# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iscsi_session module's run: input rules, the readers of open-iscsi's state on this host,
and read -> plan -> apply -> report around the pure planner of ``iscsi.py``."""

from __future__ import annotations

import os
import re

from ansible_collections.openblock.storage.plugins.module_utils import iscsi
from ansible_collections.openblock.storage.plugins.module_utils.devices import (
    SYS_BLOCK, devices_usage, multipath_maps, sectors)
from ansible_collections.openblock.storage.plugins.module_utils.names import (
    format_portal, iscsi_name_error, parse_portal)
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    Action, Runner, diff_result, host_lock, require_tools)

BY_PATH = '/dev/disk/by-path'
_IFACE_RE = re.compile(r'^[A-Za-z0-9_.:-]+$')


def validate(params):
    """All input errors at once, and the portals in iscsiadm's form."""
    errors, portals = [], []
    if not params['portals']:
        errors.append('portals is empty; give at least one IP[:port]')
    for text in params['portals']:
        try:
            portal = format_portal(*parse_portal(text, 'portals'))
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if portal not in portals:
            portals.append(portal)
    for target in params['targets']:
        error = iscsi_name_error(target, 'targets')
        if error:
            errors.append(error)
    if not _IFACE_RE.match(params['iface']):
        errors.append('iface=%r is not an open-iscsi interface name; use default or the name of an iface '
                      'record (letters, digits, _ . : -)' % params['iface'])
    if params['wait'] < 0:
        errors.append('wait=%d: give a number of seconds, 0 or more' % params['wait'])
    for option in ('node_auth', 'discovery_auth'):
        auth = params[option]
        if not auth:
            continue
        if auth.get('username_in') and not auth.get('password_in'):
            errors.append('%s.username_in=%r without password_in: mutual CHAP needs both; add password_in or '
                          'drop username_in' % (option, auth['username_in']))
        elif auth.get('password_in') and not auth.get('username_in'):
            errors.append('%s.password_in without username_in: mutual CHAP needs both; add username_in or '
                          'drop password_in' % option)
        errors += iscsi.auth_value_errors(auth, option)
    if params['state'] == 'absent':
        for option in ('startup', 'node_auth', 'discovery_auth'):
            if params[option]:
                errors.append('%s has no effect with state=absent (the records are removed); drop it' % option)
    elif params['state'] == 'logged_out' and params['discovery_auth']:
        errors.append('discovery_auth is only used with state=logged_in; drop it')
    return errors, portals


def read_state(runner):
    """Sessions (with disks) and node records, secrets included in the records."""
    rc, out, dummy = runner.read([iscsi.ISCSIADM, '-m', 'session', '-P', '3'], ok_rcs=(0, iscsi.RC_NO_OBJECTS))
    sessions = iscsi.parse_session_detail(out) if rc == 0 else []
    rc, out, dummy = runner.read([iscsi.ISCSIADM, '-m', 'node', '-o', 'show', '-S'],
                                 ok_rcs=(0, iscsi.RC_NO_OBJECTS), secret_output=True)
    nodes = [iscsi.node_from_record(r) for r in iscsi.parse_records(out)] if rc == 0 else []
    return sessions, nodes


def read_discoverydb(runner, portals, iface):
    records = {}
    for portal in portals:
        rc, out, dummy = runner.read(iscsi.discoverydb_argv(portal, iface) + ['-o', 'show', '-S'],
                                     ok_rcs=(0, iscsi.RC_DB_ERROR, iscsi.RC_NO_OBJECTS), secret_output=True)
        parsed = iscsi.parse_records(out) if rc == 0 else []
        records[portal] = parsed[0] if parsed else None
    return records


def read_by_path():
    """sdX -> its /dev/disk/by-path iSCSI links."""
    links = {}
    try:
        names = os.listdir(BY_PATH)
    except OSError:
        return links
    for name in names:
        if '-iscsi-' in name:
            device = os.path.basename(os.path.realpath(os.path.join(BY_PATH, name)))
            links.setdefault(device, []).append(os.path.join(BY_PATH, name))
    return links


def iscsid_running():
    """Whether an iscsid process runs. Asking iscsiadm would start it: on Debian iscsid is
    socket-activated, and its start loads the iSCSI kernel modules."""
    for pid in os.listdir('/proc'):
        try:
            with open(os.path.join('/proc', pid, 'comm')) as handle:
                if handle.read().strip() == 'iscsid':
                    return True
        except (OSError, ValueError):
            continue
    return False


def settle(runner, module, timeout):
    """Wait for udev to finish creating the device nodes and links (no fixed sleep)."""
    if timeout > 0:
        rc = runner.read(['udevadm', 'settle', '--timeout=%d' % timeout], ok_rcs=(0, 1), timeout=timeout + 30)[0]
        if rc == 1:
            module.warn('udevadm settle did not finish within wait=%d s; some by-path links may be missing' % timeout)


def disk_sizes(sessions, pairs):
    """sdX -> 512-byte sectors, of the disks of the managed sessions."""
    return dict((device['name'], sectors(device['name'])) for session in sessions
                if (session['target'], session['portal']) in set(pairs) for device in session['devices'])


def reread_capacity(module, name):
    """Have the kernel read disk ``name``'s capacity again (a SCSI rescan of that device)."""
    path = os.path.join(SYS_BLOCK, name, 'device', 'rescan')
    try:
        with open(path, 'w') as handle:
            handle.write('1')
    except OSError as error:
        module.warn('could not rescan /dev/%s (%s: %s); its new size shows after a rescan' % (name, path, error.strerror))


def devices_of(sessions, pairs):
    wanted = set(pairs)
    return {(s['target'], s['portal']): sorted(d['name'] for d in s['devices'])
            for s in sessions if (s['target'], s['portal']) in wanted}


def run(module):
    """Read, plan, apply, report: the whole iscsi_session module."""
    p = module.params
    errors, portals = validate(p)
    if errors:
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])
    targets = list(dict.fromkeys(p['targets']))
    state, iface = p['state'], p['iface']
    runner = Runner(module)
    if state != 'logged_in' and not module.get_bin_path(iscsi.ISCSIADM):
        # A host without open-iscsi has no session or record to log out of or remove.
        module.exit_json(changed=False, sessions=[], nodes=[], commands=[])
    missing = require_tools(module, iscsi.ISCSI_TOOLS, 'no node or discovery records and no sessions')

    with host_lock(module):
        sessions, nodes = ([], []) if missing else read_state(runner)

        # Discovery records (CHAP for discovery) first, so that discovery can authenticate.
        discoverydb = {}
        if (p['discovery_auth'] or (state == 'absent' and not targets)) and not missing:
            discoverydb = read_discoverydb(runner, portals, iface)
        db_actions = iscsi.plan_discoverydb(state, portals, iface, p['discovery_auth'], discoverydb, bool(targets))
        runner.apply(db_actions)
        # In check mode those records are not written yet, so discovery there cannot be trusted.
        pending_db = {pt for pt in portals if any(pt in a.argv for a in db_actions)} if module.check_mode else set()

        discovered = []
        if state == 'logged_in':
            known = {(n['target'], n['portal']) for n in nodes if n['iface'] == iface}
            # Discovery goes through iscsid: in check mode it must not be what starts it.
            iscsid_stopped = module.check_mode and not iscsid_running()
            for portal in portals:
                if targets and all((t, portal) in known for t in targets):
                    continue
                if missing:  # no iscsiadm to discover with: the logins are predicted
                    pending_db.add(portal)
                    continue
                if portal in pending_db:
                    module.warn('check mode: discovery at %s is skipped until discovery_auth is applied' % portal)
                    continue
                if iscsid_stopped:
                    module.warn('check mode: iscsid is not running and discovery would start it; discovery at %s '
                                'is skipped and the logins are predicted' % portal)
                    pending_db.add(portal)
                    continue
                # exit 21: the portal offers no target at all, reported below as targets not offered.
                # In check mode the storage node may be set up by an earlier task of this run (a tgtd
                # without targets drops the discovery login): any failure is a warning there.
                found = (0, iscsi.RC_NO_OBJECTS)
                rc, out, err = runner.read(iscsi.discovery_argv(portal, iface), what='SendTargets discovery at %s' % portal,
                                           ok_rcs=None if module.check_mode else found)
                if rc not in found:
                    module.warn('check mode: SendTargets discovery at %s failed (exit %d): %s; the logins are predicted'
                                % (portal, rc, ' '.join((err or out).strip().splitlines()[-1:])))
                    pending_db.add(portal)
                    continue
                discovered += iscsi.parse_targets(out)

        pairs, errors = iscsi.resolve_pairs(state, targets, portals, iface, nodes, sessions, discovered,
                                            undiscovered=pending_db)
        if module.check_mode:
            # A storage node's task earlier in this run may export these targets: warn, and predict the logins.
            for error in errors:
                module.warn('check mode: ' + error)
            errors = []
        usage, flushes = {}, []
        if state != 'logged_in':
            leaving = [device['name'] for session in sessions if (session['target'], session['portal'])
                       in set(pairs) for device in session['devices']]
            # The maps over only these disks are flushed first, unless in use: then the disks are not held.
            maps = [m for m in multipath_maps() if m['slaves'] and set(m['slaves']) <= set(leaving)] \
                if p['multipath'] else []
            map_usage = devices_usage([m['dm'] for m in maps])
            flushes, map_errors = iscsi.plan_map_flushes(maps, leaving, map_usage, p['force'])
            errors += map_errors
            flushed = [m['dm'] for m in maps if not map_usage[m['dm']]]  # what plan_map_flushes flushes
            # holders, mounts, swap and processes with the disk open; /proc is read once for all disks
            usage = devices_usage(leaving, removed_holders=flushed)
        steps, plan_errors = iscsi.plan_nodes(state, pairs, iface, p['startup'], p['node_auth'], p['force'],
                                              nodes, sessions, discovered, usage)
        errors += plan_errors
        if errors:
            module.fail_json(msg='; '.join(errors), errors=errors, changed=runner.changed_any(),
                             commands=runner.commands)

        before = iscsi.diff_view(pairs, nodes, sessions, iface)
        devices_before = devices_of(sessions, pairs)
        refused = []
        runner.apply(flushes)
        for step in steps:
            runner.apply(step.actions)
            login_rc = [rc for action, rc in runner.results if action is step.login]
            if login_rc and login_rc[0] == iscsi.RC_LOGIN_AUTH_FAILED:
                refused.append(step)
                runner.apply(step.undo)
        # Check mode: whatever is planned. Otherwise only actions that changed something count: not
        # an accepted no-op exit code (15 session exists, 21 nothing there), and not the steps of a
        # refused login, whose records were put back.
        changed = bool(db_actions or steps or flushes) if module.check_mode else iscsi.changed_by(runner.results, refused)

        logged_in_now = any(step.login is not None for step in steps) and not module.check_mode
        sizes_before = disk_sizes(sessions, pairs)
        if p['rescan'] and not module.check_mode:
            # The kernel reads a disk's capacity again when asked (a LUN grown on the target); no command.
            for name in sizes_before:
                reread_capacity(module, name)
        if logged_in_now or (p['rescan'] and not module.check_mode):
            settle(runner, module, p['wait'])
            sessions, nodes = read_state(runner)
            live = [s for s in sessions if (s['target'], s['portal']) in set(pairs) and s.get('iface', iface) == iface]
            # A session whose LUN scan has not attached a disk yet is rescanned; the scan is
            # synchronous, then udev creates the links.
            rescan = [s for s in live if (p['rescan'] or (logged_in_now and p['wait'] > 0)) and not s['devices']]
            if rescan:
                runner.apply([Action([iscsi.ISCSIADM, '-m', 'session', '-r', str(s['sid']), '--rescan'],
                                     'rescan the LUNs of %s at %s' % (s['target'], s['portal']))
                              for s in rescan])
                settle(runner, module, p['wait'])
        if not module.check_mode and runner.commands:
            sessions, nodes = read_state(runner)
        if p['rescan'] and (devices_of(sessions, pairs) != devices_before or disk_sizes(sessions, pairs) != sizes_before):
            changed = True
        if p['multipath'] and (p['rescan'] or logged_in_now):
            # A map keeps its size when its paths grow: multipathd resizes it on request.
            changed = runner.apply(iscsi.plan_map_resizes(multipath_maps(), disk_sizes(sessions, pairs))) or changed

        result = dict(
            changed=changed,
            sessions=iscsi.sessions_view(sessions, pairs, read_by_path()),
            nodes=sorted((iscsi.public_node(n) for n in nodes
                          if n['iface'] == iface and (n['target'], n['portal']) in set(pairs)),
                         key=lambda n: (n['target'], n['portal'])),
            commands=runner.commands,
        )
        for session in result['sessions']:
            if session['state'] != 'LOGGED_IN':
                module.warn('the session to %s at %s is %s (connection %s): it exists but is not working; '
                            'check the target, or log out and in again' % (
                                session['target'], session['portal'], session['state'], session['connection_state']))
        if module._diff:
            if module.check_mode:
                after = iscsi.predicted_view(before, steps)
            else:
                after = iscsi.diff_view(pairs, nodes, sessions, iface)
            result['diff'] = diff_result(before, after)
        if refused:
            names = ', '.join('%s at %s' % step.key for step in refused)
            who = (p['node_auth'] or {}).get('username')
            module.fail_json(
                msg='CHAP authentication failed (iscsiadm exit 24) logging in to %s: the target refused %s. '
                    'Check node_auth.username/password (and username_in/password_in for mutual CHAP) against '
                    'the account bound to the target. The node records were put back as they were.'
                    % (names, 'user %r' % who if who else 'the login without CHAP (node_auth is not set)'),
                **result)
        module.exit_json(**result)
