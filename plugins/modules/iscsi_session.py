#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: iscsi_session
short_description: Log an open-iscsi initiator in to (or out of) iSCSI targets through every portal, exactly
version_added: 0.1.0
author:
  - openblock.storage developers (@openblock)
description:
  - Brings every (target, portal) pair made of O(targets) and O(portals) to O(state) in one task,
    with the open-iscsi initiator (C(iscsiadm)).
  - Reads the state with one C(iscsiadm -m session -P 3) and one C(iscsiadm -m node -o show), and
    matches sessions and node records by the exact (target, portal, iface) triple, so a session to
    C(...:disk10) never makes C(...:disk1) look logged in, and each portal of a target is handled
    on its own.
  - Discovery (SendTargets) runs only when a requested target has no node record at a portal, or
    when O(targets) is empty, and it is always non-persistent. The module then creates the node
    records it needs with C(iscsiadm -m node -o new), so discovery never resets C(node.startup) or
    the CHAP settings of existing records.
  - A login refused for authentication (iscsiadm exit 24) fails the task with C(changed=false) for
    that pair; the node record is restored to its previous settings (or removed, when this task
    created it). A login to a node that already has a session (exit 15) counts as success.
  - Logging out of a session whose SCSI disk is in use (mounted, swap, held by device-mapper as a
    multipath map, LVM, dm-crypt, md, or open by a process, named with its pid) is refused unless
    O(force=true), before anything changes.
  - All input is validated first; every error names the option and the value.
  - CHAP passwords are given to C(iscsiadm) on its command line (C(-o update -n ... -v ...)); iscsiadm
    has no option to read a value from stdin or a file. They are masked in C(commands), errors and
    diffs and never returned, but another local user can see them in the process list for the
    moment the command runs. (open-iscsi reads the 0600 node record file
    C(/etc/iscsi/nodes/TARGET/IP,PORT,TPGT/IFACE) at login, which would allow writing them there
    directly; this module does not, to stay within iscsiadm's own locking.)
options:
  portals:
    description:
      - Portals of the targets, as C(IP[:port]) (port 3260 when omitted); IPv6 as C([address]:port).
      - Every target is handled through every portal.
    type: list
    elements: str
    required: true
  targets:
    description:
      - iSCSI names (C(iqn.)/C(eui.)/C(naa.)) of the targets.
      - Empty with O(state=logged_in) means every target that SendTargets discovery finds at the portals.
      - Empty with O(state=logged_out) or O(state=absent) means every target that has a session or a
        node record at the portals.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(logged_in) creates the node records, applies O(startup) and O(node_auth) to them and logs in.
      - V(logged_out) logs out (one session per portal) and keeps the node records; O(startup) and
        O(node_auth) are still applied to existing records.
      - V(absent) logs out and removes the node records; with O(targets) empty it also removes the
        SendTargets discovery records of the portals.
    type: str
    choices: [logged_in, logged_out, absent]
    default: logged_in
  startup:
    description:
      - C(node.startup) of the node records. V(automatic) records are logged in again at boot by the
        C(open-iscsi) service; V(manual) ones are not.
      - Not set = left as it is (a new record gets the default of C(/etc/iscsi/iscsid.conf)).
    type: str
    choices: [automatic, manual]
  iface:
    description:
      - open-iscsi interface (C(iscsiadm -I)) the sessions and records belong to.
    type: str
    default: default
  wait:
    description:
      - Seconds to wait, after new logins, for the SCSI disks and their C(/dev/disk/by-path) links to
        appear (C(udevadm settle); a new session without a disk is rescanned once). V(0) does not wait.
    type: int
    default: 30
  rescan:
    description:
      - Rescan the existing sessions of the managed pairs for new or resized LUNs. Reports a change
        only when the set of disks changed. Not done in check mode.
    type: bool
    default: false
  force:
    description:
      - Log out even of sessions whose disks are in use. The mounts, maps or volume groups on them
        lose that path (or the disk altogether).
    type: bool
    default: false
extends_documentation_fragment:
  - openblock.storage.iscsi_chap
  - openblock.storage.attributes
notes:
  - Check mode runs only reads (sessions, node records, non-persistent discovery).
  - In diff mode, before and after show each managed (target, portal) pair, logged in or not, and its
    node record without secrets. In check mode, after is the state the plan leads to; a record the
    task would create shows the settings it writes, and C(startup) reads empty when O(startup) is not
    set (iscsid.conf's default applies).
  - Needs C(open-iscsi) (C(iscsiadm), C(iscsid)) on the managed host; runs as root.
  - Only the C(sendtargets) discovery type is supported.
  - With O(startup=automatic), the C(open-iscsi) service must be enabled for the logins to come back
    after a reboot (it is on Debian).
seealso:
  - name: open-iscsi README
    description: iscsiadm modes, node records and exit codes.
    link: https://github.com/open-iscsi/open-iscsi/blob/master/README
'''

EXAMPLES = r'''
- name: Log in to two volumes through both portals of the storage node, and again at boot
  openblock.storage.iscsi_session:
    portals: [10.50.1.10, 10.50.2.10]
    targets:
      - iqn.2010-10.org.openstack:volume-1
      - iqn.2010-10.org.openstack:volume-10
    startup: automatic
    node_auth:
      username: compute1
      password: "{{ vault_chap_secret }}"
  register: iscsi

- name: Show the disk of each path
  ansible.builtin.debug:
    msg: "{{ iscsi.sessions | map(attribute='devices') | flatten | map(attribute='by_path') | flatten }}"

- name: Log in to everything a portal offers, with mutual CHAP on discovery
  openblock.storage.iscsi_session:
    portals: ["[fd00:50::10]:3260"]
    discovery_auth:
      username: discovery
      password: "{{ vault_discovery_secret }}"
      username_in: storage1
      password_in: "{{ vault_discovery_secret_in }}"

- name: Take one portal down for maintenance (the other path stays)
  openblock.storage.iscsi_session:
    portals: [10.50.2.10]
    targets: [iqn.2010-10.org.openstack:volume-1]
    state: logged_out

- name: Forget the volume entirely, even though a filesystem is still mounted from it
  openblock.storage.iscsi_session:
    portals: [10.50.1.10, 10.50.2.10]
    targets: [iqn.2010-10.org.openstack:volume-1]
    state: absent
    force: true
'''

RETURN = r'''
sessions:
  description: Sessions of the managed (target, portal) pairs after the task (before it, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    sid:
      description: Session id (C(iscsiadm -m session -r SID)).
      type: int
    target:
      description: Target name.
      type: str
    portal:
      description: Portal of the node record, C(IP:port).
      type: str
    iface:
      description: open-iscsi interface.
      type: str
    state:
      description: iSCSI session state, C(LOGGED_IN) when healthy.
      type: str
    connection_state:
      description: iSCSI connection state, C(LOGGED IN) when healthy.
      type: str
    devices:
      description: SCSI disks of the session.
      type: list
      elements: dict
      contains:
        name:
          description: Kernel name, C(sdX).
          type: str
        path:
          description: C(/dev/sdX).
          type: str
        lun:
          description: LUN number.
          type: int
        by_path:
          description: Its C(/dev/disk/by-path) links (stable names, one per portal and LUN).
          type: list
          elements: str
  sample:
    - sid: 3
      target: iqn.2026-11.test.iscsi:disk1
      portal: 127.0.0.1:3260
      iface: default
      state: LOGGED_IN
      connection_state: LOGGED IN
      devices:
        - name: sdb
          path: /dev/sdb
          lun: 1
          by_path: [/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.2026-11.test.iscsi:disk1-lun-1]
nodes:
  description: Node records of the managed pairs after the task, without secrets.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: Target name.
      type: str
    portal:
      description: C(IP:port).
      type: str
    tpgt:
      description: Target portal group tag.
      type: int
    iface:
      description: open-iscsi interface.
      type: str
    startup:
      description: C(node.startup), V(automatic) or V(manual).
      type: str
    auth:
      description: C(method) (C(None) or C(CHAP)), C(username) and C(username_in); never the passwords.
      type: dict
  sample:
    - target: iqn.2026-11.test.iscsi:disk1
      portal: 127.0.0.1:3260
      tpgt: 1
      iface: default
      startup: automatic
      auth: {method: CHAP, username: itestuser, username_in: ""}
commands:
  description: The commands run (in check mode, that would run), passwords masked.
  returned: always
  type: list
  elements: str
  sample:
    - iscsiadm -m node -o new -T iqn.2026-11.test.iscsi:disk1 -p 127.0.0.1:3260,1 -I default
    - iscsiadm -m node -T iqn.2026-11.test.iscsi:disk1 -p 127.0.0.1:3260 -I default -o update -n node.startup -v automatic
    - iscsiadm -m node -T iqn.2026-11.test.iscsi:disk1 -p 127.0.0.1:3260 -I default --login
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils import iscsi
from ansible_collections.openblock.storage.plugins.module_utils.devices import devices_usage
from ansible_collections.openblock.storage.plugins.module_utils.names import (
    format_portal, iscsi_name_error, parse_portal)
from ansible_collections.openblock.storage.plugins.module_utils.plan import Action, Runner, diff_result, host_lock

BY_PATH = '/dev/disk/by-path'
_IFACE_RE = re.compile(r'^[A-Za-z0-9_.:-]+$')
AUTH_SPEC = dict(
    username=dict(type='str', required=True),
    password=dict(type='str', required=True, no_log=True),
    username_in=dict(type='str'),
    password_in=dict(type='str', no_log=True),
)


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


def devices_of(sessions, pairs):
    wanted = set(pairs)
    return {(s['target'], s['portal']): sorted(d['name'] for d in s['devices'])
            for s in sessions if (s['target'], s['portal']) in wanted}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            portals=dict(type='list', elements='str', required=True),
            targets=dict(type='list', elements='str', default=[]),
            state=dict(type='str', choices=['logged_in', 'logged_out', 'absent'], default='logged_in'),
            startup=dict(type='str', choices=['automatic', 'manual']),
            node_auth=dict(type='dict', options=AUTH_SPEC),
            discovery_auth=dict(type='dict', options=AUTH_SPEC),
            iface=dict(type='str', default='default'),
            wait=dict(type='int', default=30),
            rescan=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    errors, portals = validate(p)
    if errors:
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])
    targets = list(dict.fromkeys(p['targets']))
    state, iface = p['state'], p['iface']
    runner = Runner(module)

    with host_lock(module):
        sessions, nodes = read_state(runner)

        # Discovery records (CHAP for discovery) first, so that discovery can authenticate.
        discoverydb = {}
        if p['discovery_auth'] or (state == 'absent' and not targets):
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
        usage = {}
        if state != 'logged_in':
            # holders, mounts, swap and processes with the disk open; /proc is read once for all disks
            usage = devices_usage([device['name'] for session in sessions if (session['target'], session['portal'])
                                   in set(pairs) for device in session['devices']])
        steps, plan_errors = iscsi.plan_nodes(state, pairs, iface, p['startup'], p['node_auth'], p['force'],
                                              nodes, sessions, discovered, usage)
        errors += plan_errors
        if errors:
            module.fail_json(msg='; '.join(errors), errors=errors, changed=runner.changed_any(),
                             commands=runner.commands)

        before = iscsi.diff_view(pairs, nodes, sessions, iface)
        devices_before = devices_of(sessions, pairs)
        refused = []
        for step in steps:
            runner.apply(step.actions)
            login_rc = [rc for action, rc in runner.results if action is step.login]
            if login_rc and login_rc[0] == iscsi.RC_LOGIN_AUTH_FAILED:
                refused.append(step)
                runner.apply(step.undo)
        # Check mode: whatever is planned. Otherwise only actions that changed something count: not
        # an accepted no-op exit code (15 session exists, 21 nothing there), and not the steps of a
        # refused login, whose records were put back.
        changed = bool(db_actions or steps) if module.check_mode else iscsi.changed_by(runner.results, refused)

        logged_in_now = any(step.login is not None for step in steps) and not module.check_mode
        if logged_in_now or (p['rescan'] and not module.check_mode):
            settle(runner, module, p['wait'])
            sessions, nodes = read_state(runner)
            live = [s for s in sessions if (s['target'], s['portal']) in set(pairs) and s.get('iface', iface) == iface]
            # A session whose LUN scan has not attached a disk yet (or, with rescan, every session)
            # is rescanned; the scan is synchronous, then udev creates the links.
            rescan = [s for s in live if p['rescan'] or (logged_in_now and p['wait'] > 0 and not s['devices'])]
            if rescan:
                runner.apply([Action([iscsi.ISCSIADM, '-m', 'session', '-r', str(s['sid']), '--rescan'],
                                     'rescan the LUNs of %s at %s' % (s['target'], s['portal']))
                              for s in rescan])
                settle(runner, module, p['wait'])
        if not module.check_mode and runner.commands:
            sessions, nodes = read_state(runner)
        if p['rescan'] and devices_of(sessions, pairs) != devices_before:
            changed = True

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


if __name__ == '__main__':
    main()
