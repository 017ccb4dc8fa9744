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

import glob
import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.iscsi import device_usage
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    REPORT_OPTION, FileWrite, Runner, diff_result, host_lock, private_dir_problem, refuse_bad_input,
    write_atomically)
from ansible_collections.openblock.storage.plugins.module_utils.tgt import (
    CONF_DIR, CONF_PREFIX, RECORD_PATH, SHOW_ACCOUNTS, SHOW_TARGETS, Refusal, conf_path, desired_view, known_record,
    owned_view, parse_accounts, parse_conf, parse_show, plan_targets, record_text, records_after, records_voided,
    target_view, validate_targets)

# tgtd makes its control socket anew at each start: its identity names the running tgtd.
TGTD_SOCKET = '/run/tgtd/socket.0'

ACCOUNT_SPEC = dict(user=dict(type='str', required=True), password=dict(type='str', required=True, no_log=True))
LUN_SPEC = dict(lun=dict(type='int', required=True), path=dict(type='path', required=True),
                readonly=dict(type='bool', default=False), scsi_id=dict(type='str'), scsi_sn=dict(type='str'))
TARGET_SPEC = dict(
    iqn=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    luns=dict(type='list', elements='dict', options=LUN_SPEC, default=[]),
    initiators=dict(type='list', elements='str', default=[]),
    addresses=dict(type='list', elements='str', default=[]),
    incoming_users=dict(type='list', elements='dict', options=ACCOUNT_SPEC, default=[]),
    outgoing_user=dict(type='dict', options=ACCOUNT_SPEC),
)


def read_managed_files():
    """iqn -> {path, text, secrets} of every conf.d file this module wrote."""
    files = {}
    for path in sorted(glob.glob('%s/%s*.conf' % (CONF_DIR, CONF_PREFIX))):
        with open(path) as handle:
            text = handle.read()
        parsed = parse_conf(text)
        if parsed is not None and conf_path(parsed['iqn']) == path:
            files[parsed['iqn']] = dict(path=path, text=text, secrets=parsed['secrets'])
    return files


def tgtd_instance():
    """The running tgtd, as the identity of its control socket; None when it cannot be told."""
    try:
        st = os.stat(TGTD_SOCKET)
    except OSError:
        return None
    return '%d:%d' % (st.st_ino, st.st_ctime_ns)


def read_record(instance):
    """The accounts of the secrets record when it describes tgtd ``instance``, else None (fail
    closed: a file that is a link, not root's own or readable by others is not believed)."""
    if instance is None or not private_dir_problem(os.path.dirname(RECORD_PATH)) is None:
        return None
    try:
        fd = os.open(RECORD_PATH, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        return known_record(handle.read(), instance)


def write_record(instance, accounts):
    """Write the secrets record (hashes only, 0600, atomically); False when it cannot be."""
    directory = os.path.dirname(RECORD_PATH)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    if private_dir_problem(directory):
        return False
    try:
        write_atomically(RECORD_PATH, record_text(instance, accounts), mode=0o600)
    except OSError:
        return False
    return True


def size_of(path):
    """Size in bytes of a backing file or block device, or None when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def lun_where(target, lun_index, lun):
    """How an error names a LUN's path: the option and the value."""
    return 'targets[%d].luns[%d].path=%r' % (target['index'], lun_index, lun['path'])


def missing_paths(targets):
    """(LUN paths that do not exist, other unusable paths) as error messages, and the LUNs backed by
    a block device as (target, lun index, lun), for paths_in_use."""
    absent, errors, devices = [], [], []
    for target in targets:
        for lun_index, lun in enumerate(target['luns']):
            where = lun_where(target, lun_index, lun)
            if not os.path.exists(lun['path']):
                absent.append(where + ' does not exist; create the volume or file first')
            elif os.path.isdir(lun['path']):
                errors.append(where + ' is a directory; give a file or a block device')
            elif stat.S_ISBLK(os.stat(lun['path']).st_mode):
                devices.append((target, lun_index, lun))
    return absent, errors, devices


def paths_in_use(devices, live):
    """Of the block-device LUNs ``devices``, those a LUN would newly export that something on this
    host uses, as error messages.

    One that the live target already exports as that LUN was checked when it was added, so a
    no-op run does not look at every device again.
    """
    errors = []
    for target, lun_index, lun in devices:
        if live.get(target['iqn'], {}).get('luns', {}).get(lun['lun'], {}).get('path') == lun['path']:
            continue
        usage = device_usage(os.path.basename(os.path.realpath(lun['path'])), sys_block='/sys/class/block')
        if usage:
            errors.append(lun_where(target, lun_index, lun) + ' is in use on this host (%s); export a device '
                          'nothing here uses (unmount it or stop what holds it first)' % '; '.join(usage))
    return errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type='list', elements='dict', options=TARGET_SPEC, required=True),
            persist=dict(type='bool', default=True),
            exclusive=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            report=REPORT_OPTION,
        ),
        supports_check_mode=True,
    )
    params = module.params
    desired, errors = validate_targets(params['targets'])
    wanted = set(t['iqn'] for t in desired)
    absent, path_errors, devices = missing_paths([t for t in desired if t['state'] == 'present'])
    if module.check_mode:
        # A task before this one may create the volumes in this run: warn, and predict the rest.
        for error in absent:
            module.warn('check mode: ' + error)
    else:
        errors += absent
    errors += path_errors
    refuse_bad_input(module, errors)

    runner = Runner(module)
    with host_lock(module):
        live = parse_show(runner.read(SHOW_TARGETS, what='reading tgt targets')[1])
        errors = paths_in_use(devices, live)
        refuse_bad_input(module, errors)
        files = read_managed_files()
        instance = tgtd_instance()
        records = read_record(instance)
        options = dict(exclusive=params['exclusive'], force=params['force'], persist=params['persist'],
                       records=records)
        plan = plan_targets(desired, live, files, **options)
        if plan.needs_accounts:
            accounts = parse_accounts(runner.read(SHOW_ACCOUNTS, what='reading tgt accounts')[1])
            plan = plan_targets(desired, live, files, accounts=accounts, **options)
        if plan.refusals:
            error = Refusal(plan.refusals)
            module.fail_json(msg='refused, nothing was changed: ' + str(error), reasons=error.reasons, commands=[])

        touched = [t['iqn'] for t in desired] + (
            [iqn for iqn in files if iqn not in wanted] if params['exclusive'] else [])
        before = dict((iqn, owned_view(live.get(iqn))) for iqn in touched) if module._diff else None
        if not module.check_mode and (plan.rekeyed or plan.deleted_users) and instance is not None:
            # Void the entries of the accounts this run touches first: should it stop half-way,
            # the next run sets their secrets again rather than trust an old entry.
            if not write_record(instance, records_voided(records, plan)):
                module.fail_json(msg='cannot write %s (the hashes of the CHAP secrets set), nothing was changed; '
                                     'make /run/openblock-storage a directory only root can write and re-run'
                                 % RECORD_PATH, commands=[])
        changed = runner.apply(plan.actions, explain=lambda action, rc, output: plan.blocked_advice(action))
        if not module.check_mode and instance is not None:
            recorded = records_after(records, desired, plan, lambda: os.urandom(16).hex())
            if recorded != (records or {}) and not write_record(instance, recorded):
                module.warn('could not write %s: the next run sets the CHAP secrets again' % RECORD_PATH)
        if any(not isinstance(a, FileWrite) for a in plan.actions) and not module.check_mode:
            live = parse_show(runner.read(SHOW_TARGETS, what='reading tgt targets')[1])

    results = []
    for target in desired:
        if target['iqn'] in live and (params['report'] == 'all' or target['iqn'] in plan.changed_iqns):
            view = target_view(live[target['iqn']], size_of)
            path = conf_path(target['iqn'])
            view['conf_file'] = path if os.path.exists(path) else None
            results.append(view)
    result = dict(changed=changed, targets=results, commands=runner.commands,
                  files=dict(written=sorted(plan.writes), removed=sorted(plan.removals)))
    if module._diff:
        if module.check_mode:
            after = dict(before)
            after.update((t['iqn'], desired_view(t)) for t in desired)
            after.update((iqn, None) for iqn in touched if iqn not in wanted)
        else:
            after = dict((iqn, owned_view(live.get(iqn))) for iqn in touched)
        result['diff'] = diff_result(before, after)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
