#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: sanlock_vg
short_description: A shared LVM volume group locked with sanlock, and its LVs' activation on this host
version_added: 0.1.0
author:
  - openblock.storage developers (@openblock)
description:
  - Manages a volume group that several hosts see on one shared LUN, with lvmlockd and sanlock leases
    on that LUN guarding every LV. An LV active exclusively on one host cannot be activated on another.
  - V(present) creates the VG with C(vgcreate --shared --lock-type sanlock) when it does not exist.
    Creation must happen on one host only, so run that task with C(run_once) (or on the first host);
    every other host uses V(started).
  - V(started) lock-starts the VG on this host (joins its sanlock lockspace), which takes 20 s to
    3 minutes; the wait is bounded by O(lock_start_timeout). A VG already started is left alone.
  - V(stopped) lock-stops the VG on this host; refused while any of its LVs is active here.
  - V(absent) removes the VG; refused while LVs are active on this host, while other hosts still have
    the VG lock-started, and, when the VG holds LVs, unless O(force=true).
  - V(query) changes nothing and fails on nothing but unreadable state; it reports the VG, the lockspace,
    each LV's mode (also from the leases a dead lvmlockd left ORPHAN in sanlock) and, in RV(problems),
    what keeps the host from using the VG. The recovery playbook reads the host with it.
  - O(lvs) lists plain (linear) LVs of the VG with their size and their activation mode on this host,
    V(exclusive), V(shared) or V(inactive). An LV whose lock another host holds fails with a message
    naming the LV.
  - Fails before changing anything, with what to fix, when C(use_lvmlockd) is not 1 in C(lvm.conf),
    C(host_id) in C(lvmlocal.conf) is missing or outside 1..2000, or wdmd, sanlock or lvmlockd is not running.
  - In check mode, where the tasks that ready a new host (packages, C(lvm.conf), the lock daemons, the LUN's
    login) only predict, V(present) and V(started) on a host that is not ready predict a change with a
    warning naming what is missing, instead of failing.
  - All input is validated first; every error names the option and the value.
options:
  name:
    description:
      - Name of the shared volume group.
    type: str
    required: true
  state:
    description:
      - V(present) creates the VG if needed (on one host only) and lock-starts it here.
      - V(started) lock-starts an existing VG here; fails when the VG does not exist.
      - V(stopped) lock-stops it here. V(absent) removes it. V(query) only reads.
    type: str
    choices: [present, started, stopped, absent, query]
    default: started
  pvs:
    description:
      - Devices of a new VG, used with O(state=present) when the VG does not exist. Give the stable
        name of the shared LUN (the multipath alias, for example C(/dev/mapper/shared-lun)), never one
        of its path devices.
      - A device that carries a signature (filesystem, partition table, another PV) is refused unless
        O(force=true), which erases the signatures first. A device in use (mounted, held by
        device-mapper or md, swap, or open by a process) is refused always, naming what uses it.
    type: list
    elements: str
  lvs:
    description:
      - Plain LVs of the VG and their activation on this host. LVs not listed are left alone.
      - Only with O(state=present) or O(state=started).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: LV name.
        type: str
        required: true
      size:
        description:
          - Size with a unit (V(10G)); needed to create the LV, which is then created active
            exclusively on this host. A bigger size grows the LV (only while it is not active shared);
            a smaller one is refused.
        type: str
      activation:
        description:
          - V(exclusive) (C(lvchange -aey)), V(shared) (C(lvchange -asy), several hosts at once) or
            V(inactive) (C(lvchange -an)) on this host. Omitted, the current mode is kept (a new LV is exclusive).
          - Switching between V(exclusive) and V(shared) deactivates the LV first; refused while it is open.
        type: str
        choices: [exclusive, shared, inactive]
      state:
        description: V(absent) removes the LV (refused while it is open here; fails while active elsewhere).
        type: str
        choices: [present, absent]
        default: present
  lock_start_timeout:
    description:
      - Seconds a lock-start may take before the module fails.
    type: int
    default: 300
  force:
    description:
      - Allow destructive work, namely erasing the signatures of a new VG's devices and removing a VG
        that still holds LVs.
    type: bool
    default: false
extends_documentation_fragment:
  - openblock.storage.attributes
notes:
  - In diff mode, before and after show the VG, whether it is lock-started here, and each LV's size and activation.
  - Runs the LVM commands with C(LC_ALL=C); reads state with the JSON reports of C(vgs) and C(lvs),
    C(lvmconfig), C(systemctl is-active) and C(sanlock client status).
  - Serializes itself with the other modules of the collection through a host-wide lock.
  - The role openblock.storage.shared_lvm sets up lvmlockd, sanlock, the watchdog and host_id, and uses this module.
seealso:
  - module: openblock.storage.lvm_vg
  - name: lvmlockd(8)
    description: LVM locking with lvmlockd, sanlock and dlm.
    link: https://man7.org/linux/man-pages/man8/lvmlockd.8.html
'''

EXAMPLES = r'''
- name: Create the shared VG on the LUN, once
  openblock.storage.sanlock_vg:
    name: shared
    state: present
    pvs: [/dev/mapper/shared-lun]
  run_once: true

- name: Lock-start it on every host
  openblock.storage.sanlock_vg:
    name: shared
    state: started

- name: An image LV used read-only by every host, and a disk owned by this one
  openblock.storage.sanlock_vg:
    name: shared
    lvs:
      - {name: images, size: 20G, activation: shared}
      - {name: "vm-{{ inventory_hostname }}", size: 10G, activation: exclusive}

- name: Before maintenance, release every LV and leave the lockspace
  openblock.storage.sanlock_vg:
    name: shared
    lvs:
      - {name: images, activation: inactive}
      - {name: "vm-{{ inventory_hostname }}", activation: inactive}
- name: Lock-stop
  openblock.storage.sanlock_vg:
    name: shared
    state: stopped
'''

RETURN = r'''
vg:
  description: The VG after the run (empty when it does not exist). Sizes in bytes.
  returned: always
  type: dict
  sample: {name: shared, uuid: 3kS0ZX-..., attr: wz--ns, lock_type: sanlock, size: 2143289344, free: 1606418432, extent_size: 4194304}
lockspace:
  description: The VG's sanlock lockspace on this host.
  returned: always
  type: dict
  contains:
    name:
      description: Lockspace name, C(lvm_) and the VG name.
      type: str
    joined:
      description: Whether this host has joined it (the VG is lock-started here).
      type: bool
    joining:
      description: Whether a lock-start is still in progress.
      type: bool
    host_id:
      description: This host's sanlock host id.
      type: int
    locks:
      description: Number of resource leases (LV locks) this host holds in it.
      type: int
  sample: {name: lvm_shared, joined: true, joining: false, host_id: 1, path: /dev/mapper/shared-lvmlock, locks: 1}
lvs:
  description:
    - Every LV of the VG (the lock LV excepted) and its lock mode on this host.
    - C(activation) is V(exclusive), V(shared), V(inactive), or V(unlocked) for an LV active without a
      lease (its lock was lost); C(orphan) is true when the lease was left behind by a dead lvmlockd.
  returned: always
  type: dict
  sample:
    images: {size: 21474836480, activation: shared, orphan: false, path: /dev/shared/images, attr: -wi-a-----}
    vm-compute1: {size: 10737418240, activation: exclusive, orphan: false, path: /dev/shared/vm-compute1, attr: -wi-a-----}
problems:
  description:
    - With O(state=query), what keeps this host from using the VG (unset C(use_lvmlockd) or C(host_id), a lock daemon down).
    - In check mode on a host that is not ready yet, the same, and the O(pvs) that are not there.
  returned: when O(state=query), and in check mode when RV(ready) is false
  type: list
  elements: str
  sample: ["lvmlockd not running (lvmlockd: failed); ..."]
ready:
  description:
    - In check mode only, false when the host is not ready for the VG (see RV(problems)); the change is then
      predicted without reading the VG, since the run that readies the host creates or lock-starts it.
  returned: in check mode, when the host is not ready
  type: bool
  sample: false
commands:
  description: The commands run (in check mode, the commands that would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["timeout 300 vgchange --lock-start shared", "lvchange --activate sy shared/images"]
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils import sanlock
from ansible_collections.openblock.storage.plugins.module_utils.devices import device_usage
from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    Refusal, parse_signatures, read_pvs, signature_argv)
from ansible_collections.openblock.storage.plugins.module_utils.plan import Action, Runner, diff_result, host_lock


def read_state(runner, name, sanlock_may_be_down=False):
    """The VG row, its LVs, and this host's sanlock status (none when sanlock_may_be_down and it is)."""
    vg = sanlock.parse_vg(runner.read(sanlock.vgs_argv(name), what='reading volume group %s' % name)[1])
    rc, out, err = runner.read(sanlock.SANLOCK_STATUS_ARGV, ok_rcs=None if sanlock_may_be_down else (0,))
    status = sanlock.parse_sanlock_status(out if rc == 0 else '')
    lvs = []
    if vg:
        leases = status['resources'].get(sanlock.LOCKSPACE_PREFIX + name, {})
        lvs = sanlock.parse_lvs(runner.read(sanlock.lvs_argv(name), what='reading the LVs of %s' % name)[1], leases)
    return vg, lvs, status


def device_actions(module, runner, spec):
    """Refusals for the devices of a new VG, and the wipefs actions force asks for."""
    refusals, actions = [], []
    pvs = dict((os.path.realpath(pv['pv_name']), pv) for pv in read_pvs(runner))
    for device in spec['pvs']:
        real = os.path.realpath(device)
        pv = pvs.get(real)
        if pv and pv['vg_name']:
            refusals.append('pvs: %s is a physical volume of volume group %s; choose another device'
                            % (device, pv['vg_name']))
            continue
        if pv:
            continue
        usage = device_usage(os.path.basename(real), sys_block='/sys/class/block')
        if usage:
            refusals.append('pvs: %s is in use on this host (%s); unmount it or stop what holds it, or choose '
                            'another device (force does not override this)' % (device, '; '.join(usage)))
            continue
        found = parse_signatures(runner.read(signature_argv(device), what='probing %s for signatures' % device)[1])
        if found and not spec['force']:
            refusals.append('pvs: %s carries %s; set force=true to erase it, or choose another device'
                            % (device, ', '.join(found)))
        elif found:
            actions.append(Action(['wipefs', '--all', device], 'erase the signatures (%s) of %s' % (', '.join(found), device)))
    return refusals, actions


def facts(vg, lvs):
    if not vg:
        return {}, {}
    vg_facts = dict(name=vg['vg_name'], uuid=vg['vg_uuid'], attr=vg['vg_attr'], lock_type=vg['vg_lock_type'],
                    size=vg['vg_size'], free=vg['vg_free'], extent_size=vg['vg_extent_size'])
    lv_facts = dict((lv['lv_name'], dict(size=lv['lv_size'], activation=lv['mode'], orphan=lv['orphan'],
                                         path=lv['lv_path'], attr=lv['lv_attr'])) for lv in lvs)
    return vg_facts, lv_facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'started', 'stopped', 'absent', 'query'], default='started'),
            pvs=dict(type='list', elements='str'),
            lvs=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                size=dict(type='str'),
                activation=dict(type='str', choices=list(sanlock.MODES)),
                state=dict(type='str', choices=['present', 'absent'], default='present'),
            )),
            lock_start_timeout=dict(type='int', default=sanlock.LOCK_START_TIMEOUT),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    spec, errors = sanlock.spec_of(module.params)
    missing = ['pvs[%d]=%r does not exist on this host; check that the LUN is visible (multipath -ll) and the '
               'path is its alias' % (index, device) for index, device in enumerate(spec['pvs'])
               if not os.path.exists(device)]
    if errors or missing and not module.check_mode:
        errors += missing
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])

    runner = Runner(module)

    def read_setup():
        if not module.get_bin_path('lvmconfig'):
            return {}, ['lvm2 is not installed (no lvmconfig); install lvm2-lockd and sanlock (the shared_lvm '
                        'role does)']
        config = sanlock.parse_lvmconfig(runner.read(sanlock.CONFIG_ARGV, what='reading the lvmlockd settings')[1])
        services = sanlock.parse_is_active(runner.read(sanlock.SERVICES_ARGV, ok_rcs=(0, 3, 4))[1])
        return config, sanlock.setup_errors(config, services)

    if module.check_mode and spec['state'] in ('present', 'started'):
        config, errors = read_setup()
        prediction = sanlock.check_mode_prediction(spec, errors + missing)
        if prediction:
            module.warn(prediction)
            module.exit_json(changed=True, ready=False, problems=errors + missing, vg={}, lvs={}, commands=[],
                             lockspace=sanlock.lockspace_facts(spec['name'], dict(lockspaces={}), config.get('host_id')))

    if spec['state'] == 'query':
        # Read-only and used to diagnose a stuck host: it does not wait for the host lock.
        config, errors = read_setup()
        vg, lvs, status = read_state(runner, spec['name'], sanlock_may_be_down=True)
        vg_facts, lv_facts = facts(vg, lvs)
        module.exit_json(changed=False, vg=vg_facts, lvs=lv_facts, problems=errors, commands=[],
                         lockspace=sanlock.lockspace_facts(spec['name'], status, config.get('host_id')))

    # Everything that decides what to change is read under the host lock.
    with host_lock(module):
        config, errors = read_setup()
        if errors:
            module.fail_json(msg='this host is not ready for a sanlock VG: ' + '; '.join(errors), errors=errors,
                             commands=[])
        host_id = config['host_id']
        vg, lvs, status = read_state(runner, spec['name'])
        lockspace = sanlock.lockspace_facts(spec['name'], status, host_id)
        before = sanlock.view(vg, lvs, lockspace)
        other_hosts = []
        if spec['state'] == 'absent' and vg and lockspace['joined']:
            out = runner.read(['sanlock', 'client', 'host_status', '-s', lockspace['name']])[1]
            other_hosts = [h for h, stamp in sanlock.parse_host_status(out).items() if h != host_id and stamp]
        refusals, pre = [], []
        if spec['state'] == 'present' and not vg:
            refusals, pre = device_actions(module, runner, spec)
        try:
            if refusals:
                raise Refusal(refusals)
            actions, expected = sanlock.plan(spec, vg, lvs, lockspace, other_hosts)
        except Refusal as refusal:
            vg_facts, lv_facts = facts(vg, lvs)
            module.fail_json(msg=str(refusal), reasons=refusal.reasons, commands=[], vg=vg_facts,
                             lockspace=lockspace, lvs=lv_facts)
        changed = runner.apply(pre + actions, explain=sanlock.explain_failure)
        if changed and not module.check_mode:
            vg, lvs, status = read_state(runner, spec['name'])
            lockspace = sanlock.lockspace_facts(spec['name'], status, host_id)
            expected = sanlock.view(vg, lvs, lockspace)

    vg_facts, lv_facts = facts(vg, lvs)
    result = dict(changed=changed, vg=vg_facts, lockspace=lockspace, lvs=lv_facts, commands=runner.commands)
    if module._diff:
        result['diff'] = diff_result(before, expected)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
