#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: tgt_target
short_description: iSCSI targets of tgt that are live, persistent and locked down
version_added: 0.1.0
author:
  - openblock.storage developers (@openblock)
description:
  - Converges a list of iSCSI targets of the tgt daemon (C(tgtd)) in one task, LUNs, access lists and
    CHAP accounts included, so hundreds of volumes take one task, not hundreds.
  - Reads the live state with one C(tgtadm --mode target --op show) and changes it with C(tgtadm),
    target by target. It never restarts or reloads C(tgtd), because a reload drops the sessions of
    targets in use.
  - Writes each managed target to C(/etc/tgt/conf.d/openblock-IQN.conf) (mode 0600, atomically, in
    tgt's own format), the file tgt reads when it starts, so the same targets, LUN identities, access
    lists and accounts come back after a restart of C(tgtd) or a reboot. Each file is written right after its
    target's live change, so a run that fails part-way leaves every target it went through persisted as it
    runs. A target is I(managed) when such a file exists; O(exclusive) only ever removes managed targets.
  - Every LUN gets an explicit SCSI ID and serial number derived from the target and LUN names (or
    given), never from the tid that tgt assigns, so a target that is deleted and created again, and gets
    another tid, shows initiators the same WWID and multipath aliases keep working.
  - tgt admits a login whose source address is in O(targets[].addresses) B(or) whose initiator name is
    in O(targets[].initiators). A target with neither admits nobody, and one with only initiator names
    admits exactly those, because the module then binds the address entry C(0.0.0.0/32), which tgt never
    matches, and never C(ALL) unless it is listed.
  - Validates all input before changing anything and fails with every error; refuses without O(force) to
    remove a target, or to remove or change a LUN of a target, that has connected initiators (and names
    them); refuses a backing path that does not exist, and a block device in use on the host
    (mounted, held by device-mapper or md, or swap) that a LUN would newly export.
options:
  targets:
    description:
      - The targets to converge. Targets on the host that are not listed are left alone, unless
        O(exclusive=true) and they are managed by this module.
    type: list
    elements: dict
    required: true
    suboptions:
      iqn:
        description:
          - Target name, in the C(iqn.), C(eui.) or C(naa.) form of RFC 7143, with only letters, digits,
            dot, colon and hyphen.
        type: str
        required: true
      state:
        description:
          - V(present) creates or reconciles the target; V(absent) removes it and its conf.d file.
        type: str
        choices: [present, absent]
        default: present
      luns:
        description:
          - The LUNs of the target, numbered from 1 (LUN 0 is tgt's controller). LUNs of the target that
            are not listed are removed.
          - Adding a LUN to a target in use is allowed; removing or changing one needs O(force).
        type: list
        elements: dict
        default: []
        suboptions:
          lun:
            description: LUN number, 1 to 255.
            type: int
            required: true
          path:
            description:
              - Backing file or block device (an LV such as C(/dev/VG/LV)); it must exist. Letters, digits
                and C(/._+:@-) only, because tgt-admin hands it to a shell.
            type: path
            required: true
          readonly:
            description: Export the LUN read-only.
            type: bool
            default: false
          scsi_id:
            description:
              - SCSI ID of the LUN (VPD page 0x83), up to 36 characters of letters, digits and C(._-).
              - tgt derives the WWID initiators see from the hex digits of this value, so give 32 hex digits.
              - Default, the first 32 hex digits of SHA-256 of the target name and LUN number.
            type: str
          scsi_sn:
            description:
              - SCSI serial number (VPD page 0x80), up to 36 characters of letters, digits and C(._-).
              - Default, 16 further hex digits of the same hash.
            type: str
          size:
            description:
              - The size the backing device is meant to have (C(512M), C(10G), bytes), for check mode only.
                There, a device still smaller than this counts at this size, so a LUN whose volume an earlier
                task of the run grows is predicted to be resized. Outside check mode the device's own size decides.
            type: str
      initiators:
        description:
          - Initiator names (IQNs) allowed to log in. An initiator whose name is listed is admitted from any
            address; one whose address is in O(targets[].addresses) is admitted whatever its name.
        type: list
        elements: str
        default: []
      addresses:
        description:
          - Initiator addresses or networks (C(10.0.0.5), C(10.0.0.0/24), C(fd00::/64)) allowed to log in,
            or C(ALL). A host written as C(/32) or C(/128) is stored without the mask, because tgt never
            matches a full-length mask; a network with host bits set is refused.
        type: list
        elements: str
        default: []
      incoming_users:
        description:
          - CHAP accounts initiators log in with. tgt accounts are global, so one user has one secret in
            every target that lists it.
        type: list
        elements: dict
        default: []
        suboptions: &chap_account  # the same account fields in outgoing_user
          user:
            description: CHAP user name, 1 to 64 letters, digits or C(._@-).
            type: str
            required: true
          password:
            description: CHAP secret, 12 to 255 characters of letters, digits and C(._~+=@%^:,/-). Never logged.
            type: str
            required: true
      outgoing_user:
        description:
          - The account the target answers mutual CHAP with; its secret must differ from the incoming ones.
        type: dict
        suboptions: *chap_account
  persist:
    description:
      - Keep the conf.d file of each listed target equal to its live state. With V(false) the targets are
        changed live only, and an existing conf.d file of a listed target is removed (it would bring back
        an older configuration at the next start).
    type: bool
    default: true
  exclusive:
    description:
      - Also remove the targets this module manages (those with a conf.d file written by it) that are not
        listed. Targets created by other means are never touched.
    type: bool
    default: false
  force:
    description:
      - Remove targets, and remove or change LUNs, even when initiators are connected; their sessions are
        cut (the target is removed with C(tgtadm --force)).
    type: bool
    default: false
  resize_in_use:
    description:
      - tgtd reads a LUN's size only when the LUN is added, and C(tgtadm) cannot change it. When a LUN's
        backing device has grown (an C(lvextend)), the module adds the LUN again with the same SCSI ID and
        serial, so initiators see the same disk, larger, once they rescan. The LUN is missing for about a
        second (the delete is retried while tgt finds the LUN busy); initiators that queue I/O meanwhile
        (dm-multipath with C(no_path_retry), as the compute_initiator and multipath roles set) ride it out,
        others see I/O errors.
      - V(false) refuses that while initiators are connected (and names them); V(true) allows it.
    type: bool
    default: false
  iothreads:
    description:
      - I/O threads tgtd runs for each LUN (its C(--nr_iothreads)), which tgt.service's C(ExecStart) must pass
        (the storage_node role's drop-in does). tgtd sizes a LUN's threads when the LUN is added, so when the
        running tgtd has another count, the module restarts C(tgt.service) first, but only while tgtd exports
        no target (a restart cuts every session); otherwise it warns and the count applies at tgtd's next
        restart. The kernel's thread limit (C(kernel.threads-max)) caps how many LUNs a host can hold at a
        given count.
      - Null leaves tgtd as it runs.
    type: int
  report:
    description:
      - Which listed targets RV(targets) describes. V(changed), those this run created or changed;
        V(all), every listed target.
      - With V(changed) a run over hundreds of converged targets returns a short result; ask for V(all) to
        read the tid, WWIDs and sessions of every target.
    type: str
    choices: [changed, all]
    default: changed
extends_documentation_fragment:
  - openblock.storage.attributes
notes:
  - Check mode also reports the conf.d files it would write or remove, in RV(files).
  - In diff mode, before and after show the LUNs, access lists and account names of each listed target.
  - Needs tgt (scsi-target-utils) 1.0.x with C(tgtd) running; tested with 1.0.85 on Debian 12.
  - tgt cannot report a CHAP secret. The module keeps a salted PBKDF2 hash (never the secret) of each secret
    it set in C(/run/openblock-storage/tgt-chap.json) (root only, mode 0600, on tmpfs), valid for the running
    C(tgtd) only, and else compares with its conf.d files; so a re-run is a no-op with O(persist=false) too.
    An account whose secret neither tells, such as one created by other means, or one of a run that failed,
    gets its secret set again (changed). A secret changed by other means while the same C(tgtd) runs is not
    seen.
  - tgt cannot change a secret either, so a new secret deletes the account, creates it again and binds it
    back. From before the delete until after the bind, every target bound to the account admits no new
    login (its initiator access list is emptied; sessions already logged in go on), so no target ever admits
    a login without its CHAP. If a step fails meanwhile, the error names the blocked targets; a re-run
    finishes the change.
  - CHAP secrets pass through C(tgtadm)'s command line, as tgt offers no other way; they are masked in
    RV(commands), in errors and in the diff.
  - Serializes itself with the other modules of the collection through a host-wide lock.
  - Without tgt (no C(tgtadm)), check mode predicts every target from none (no targets, no accounts, no I/O
    thread restart) and warns, naming the command and its package; other runs fail before any change.
  - With tgt installed but no tgtd running, check mode predicts the same way and warns that the service is not
    running (the storage_node role starts it in an earlier task); other runs fail, as tgtadm cannot reach tgtd.
seealso:
  - module: openblock.storage.lvm_thinvol
'''

EXAMPLES = r'''
- name: Export two volumes to one compute node, with CHAP
  openblock.storage.tgt_target:
    targets:
      - iqn: iqn.2010-10.org.openstack:volume-0001
        luns:
          - {lun: 1, path: /dev/cinder-volumes/volume-0001}
        initiators: [iqn.1993-08.org.debian:01:compute1]
        addresses: [10.50.1.0/24]
        incoming_users:
          - {user: compute1, password: "{{ vault_chap_compute1 }}"}
      - iqn: iqn.2010-10.org.openstack:volume-0002
        luns:
          - {lun: 1, path: /dev/cinder-volumes/volume-0002, readonly: true}
        initiators: [iqn.1993-08.org.debian:01:compute1]

- name: Keep exactly these targets among the managed ones; remove the other managed ones
  openblock.storage.tgt_target:
    targets:
      - iqn: iqn.2010-10.org.openstack:volume-0002
        luns:
          - {lun: 1, path: /dev/cinder-volumes/volume-0002}
        initiators: [iqn.1993-08.org.debian:01:compute1]
    exclusive: true

- name: Remove a target even though an initiator is still logged in
  openblock.storage.tgt_target:
    targets:
      - iqn: iqn.2010-10.org.openstack:volume-0001
        state: absent
    force: true
'''

RETURN = r'''
targets:
  description:
    - Each listed target that this run created or changed (in check mode, would), or with O(report=all) each
      listed target, that exists after the run (in check mode, as it is now), in the order listed.
  returned: always
  type: list
  elements: dict
  sample:
    - iqn: iqn.2010-10.org.openstack:volume-0001
      tid: 1
      state: ready
      luns:
        - lun: 1
          path: /dev/cinder-volumes/volume-0001
          size: 1073741824
          size_text: 1074 MB
          readonly: false
          scsi_id: 9c1185a5c5e9fc54612808977ee8f548
          scsi_sn: b2a4d3c1e0f98877
          wwid: 36c1185a5c5e9fc54612808977ee8f548
      acl:
        addresses: [10.50.1.0/24]
        initiators: [iqn.1993-08.org.debian:01:compute1]
      accounts:
        incoming: [compute1]
        outgoing: null
      connected:
        - initiator: iqn.1993-08.org.debian:01:compute1
          addresses: [10.50.1.21]
      conf_file: /etc/tgt/conf.d/openblock-iqn.2010-10.org.openstack:volume-0001.conf
commands:
  description:
    - The commands run (in check mode, that would run), in order, with CHAP secrets masked; a conf.d file
      written or removed shows as C(write PATH) or C(remove PATH).
  returned: always
  type: list
  elements: str
  sample: ["tgtadm --lld iscsi --mode target --op new --tid 1 -T iqn.2010-10.org.openstack:volume-0001"]
files:
  description: The conf.d files written or removed (in check mode, that would be).
  returned: always
  type: dict
  contains:
    written:
      description: Paths written.
      type: list
      elements: str
    removed:
      description: Paths removed.
      type: list
      elements: str
  sample: {written: [/etc/tgt/conf.d/openblock-iqn.2010-10.org.openstack:volume-0001.conf], removed: []}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.plan import REPORT_OPTION
from ansible_collections.openblock.storage.plugins.module_utils.tgt_target import run

ACCOUNT_SPEC = dict(user=dict(type='str', required=True), password=dict(type='str', required=True, no_log=True))
LUN_SPEC = dict(lun=dict(type='int', required=True), path=dict(type='path', required=True),
                readonly=dict(type='bool', default=False), scsi_id=dict(type='str'), scsi_sn=dict(type='str'),
                size=dict(type='str'))
TARGET_SPEC = dict(
    iqn=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    luns=dict(type='list', elements='dict', options=LUN_SPEC, default=[]),
    initiators=dict(type='list', elements='str', default=[]),
    addresses=dict(type='list', elements='str', default=[]),
    incoming_users=dict(type='list', elements='dict', options=ACCOUNT_SPEC, default=[]),
    outgoing_user=dict(type='dict', options=ACCOUNT_SPEC),
)


def main():
    run(AnsibleModule(
        argument_spec=dict(
            targets=dict(type='list', elements='dict', options=TARGET_SPEC, required=True),
            persist=dict(type='bool', default=True),
            exclusive=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            resize_in_use=dict(type='bool', default=False),
            iothreads=dict(type='int'),
            report=REPORT_OPTION,
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
