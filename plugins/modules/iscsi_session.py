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
      - Have the kernel read the capacity of every disk of the managed sessions again, so a LUN grown on
        the target shows its new size, and scan a session without any disk for LUNs. Reports a change
        when a disk's size or the set of disks changed. Not done in check mode, which therefore cannot
        predict a size the target changed.
    type: bool
    default: false
  multipath:
    description:
      - The session disks are paths of dm-multipath maps (the multipath role sets that up).
      - Before logging out (V(logged_out), V(absent)), each map whose every path is logged out by the task
        is flushed (C(multipath -f)), so no map is left without paths. A map in use (mounted, open by a
        process, an LVM physical volume, held by another mapping) is refused, naming what uses it, before
        anything changes, unless O(force=true) (then the map is left and loses its paths).
      - After logins and with O(rescan), a map smaller than its paths grows to their size
        (C(multipathd resize map)).
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
  - Without open-iscsi (no C(iscsiadm)), check mode predicts from no records and no sessions, without
    discovery, and warns, naming the command and its package; other runs fail before any change, but
    those with O(state=logged_out) or O(state=absent), which have nothing to do there.
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.iscsi_session import run

AUTH_SPEC = dict(
    username=dict(type='str', required=True),
    password=dict(type='str', required=True, no_log=True),
    username_in=dict(type='str'),
    password_in=dict(type='str', no_log=True),
)


def main():
    run(AnsibleModule(
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
            multipath=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
