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
  - V(absent) removes the VG; refused where the VG is not lock-started (only a host in its lockspace
    can read which other hosts use it), while LVs are active on this host, while other hosts still have
    the VG lock-started, and, when the VG holds LVs, unless O(force=true). It lock-stops the VG, makes
    it local (C(vgchange --lock-type none --lockopt force)) and removes it without lvmlockd, because
    C(vgremove) of a lock-started shared VG can wait forever in sanlock (lvm2 2.03.31, Debian 13).
  - V(query) changes nothing and fails on nothing but unreadable state; it reports the VG, the lockspace,
    each LV's mode (also from the leases a dead lvmlockd left ORPHAN in sanlock) and, in RV(problems),
    what keeps the host from using the VG.
  - V(recovered) gives a host whose lock state is lost its locks back, in one run. The state is lost when
    lvmlockd died or was killed (sanlock keeps its leases as ORPHAN and they block the lockspace), a lock
    daemon is down, the lockspace's lease failed, or an LV is active without a lease.
  - With lvm2 2.03.25 or later (Debian 13) V(recovered) adopts the orphaned leases in place when it can, that is
    when wdmd and sanlock run, sanlock still holds the VG's lockspace with a sound lease, every active LV has a
    lease and no earlier recovery is unfinished. It starts lvmlockd when it is down, lock-starts the VG with
    C(vgchange --lock-start --lockopt adoptls) (lvmlockd takes over the lockspace sanlock holds, with no wait for
    a lease) and adopts each ORPHAN lease in its mode with C(lvchange --activate ey|sy --lockopt adoptlv). The
    LVs stay active, the O(consumers) keep running and sanlock is never restarted, so this is safe where sanlock
    drives the watchdog. It does not use C(lvmlockd --adopt 1), which in lvm2 2.03.31 hangs lvmlockd at its
    start whenever a lockspace survived in sanlock. The run reads the leases back and fails, naming them, when
    any is still ORPHAN or an LV is not in its mode.
  - Otherwise (lvm2 before 2.03.25, Debian 12, or an LV active without a lease) the run stops the
    O(consumers) that are active, records each active LV's mode in
    C(/var/lib/openblock-storage/sanlock_vg-NAME.recovery.json), deactivates those LVs, stops lvmlockd,
    kills sanlock (so it forgets the orphaned leases; other hosts see them expire), restarts wdmd,
    sanlock and lvmlockd, lock-starts the VG (bounded by O(lock_start_timeout); it waits for this host's
    old lease to expire, about 100 s), reactivates each LV in its recorded mode, starts the consumers
    again and drops the record. A run that fails half-way leaves the record, and the next run
    finishes from it. A host whose lock state is sound is left alone (no change is reported).
  - That second way refuses when sanlock drives the watchdog (no C(sanlock_opts="-w 0") in
    C(/etc/default/sanlock), the default of Debian 13's sanlock 3.9.5, or the running daemon reports
    C(use_watchdog=1)), since killing it would reset the host; the refusal says why the leases could not be
    adopted; reboot the host then. O(watchdog) sets the option.
  - When the lockspace's lease is failing or lost (sanlock cannot renew it, because the storage that holds
    the leases is gone, for example a storage node down for longer than the lease lives), the host's locks
    protect nothing. V(query) reports it in RV(problems) and every other state fails closed, naming the
    LVs still active here and the recovery to run.
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
      - V(recovered) restores this host's lock state when it is lost (see the description).
    type: str
    choices: [present, started, stopped, absent, query, recovered]
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
      - Only with O(state=present), O(state=started) or O(state=recovered). V(recovered) reads only
        O(lvs[].name) and O(lvs[].activation), the mode an LV comes back in when it is found active
        without a lease (default V(exclusive)); an LV with a lease comes back in its own mode. So the
        same list serves both.
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
  consumers:
    description:
      - With O(state=recovered), the systemd units that use the VG (C(nova-compute), for example; C(.service)
        is added to a name without a suffix). Those active are stopped before the recovery and started
        after it; the others stay as they are.
    type: list
    elements: str
    default: []
  force:
    description:
      - Allow destructive work, namely erasing the signatures of a new VG's devices and removing a VG
        that still holds LVs.
    type: bool
    default: false
  watchdog:
    description:
      - With O(state=present) or O(state=started), whether sanlock drives the watchdog (through wdmd), set
        in C(sanlock_opts) of C(/etc/default/sanlock) (V(false) is C(-w 0)). Unset leaves that file alone.
      - With the watchdog, a host whose lease sanlock cannot renew (the storage holding the leases gone for
        longer than the lease lives, about 80 s) while it holds locks of the VG is reset. Without it, the
        host runs on with its LVs active, V(query) reports the lost lease and V(recovered) gives the locks
        back once the storage is back.
      - Debian 12's sanlock package ships C(-w 0), Debian 13's drives the watchdog.
      - sanlock is restarted to apply a change only while it holds no lockspace (before the lock-start of
        this run); otherwise the change waits for its next start (the host's next boot), with a warning.
    type: bool
extends_documentation_fragment:
  - openblock.storage.attributes
notes:
  - In diff mode, before and after show the VG, whether it is lock-started here, and each LV's size and activation.
  - Runs the LVM commands with C(LC_ALL=C); reads state with the JSON reports of C(vgs) and C(lvs),
    C(lvmconfig), C(systemctl is-active) and C(sanlock client status); V(recovered) also reads C(lvm version)
    when lvmlockd is down or a lease is ORPHAN.
  - Serializes itself with the other modules of the collection through a host-wide lock.
  - Without lvm2, lvm2-lockd or sanlock, check mode warns, naming each command and its package; without lvm2
    O(state=present) plans the VG's creation from nothing, the other states predict a change without a plan
    as on a host that is not ready. O(state=recovered), and every state outside check mode, fail before any change.
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

- name: After lvmlockd was killed, give this host its locks back (adopted in place with lvm2 2.03.25+; before, the consumers stop meanwhile)
  openblock.storage.sanlock_vg:
    name: shared
    state: recovered
    consumers: [nova-compute]
    lvs:
      - {name: images, activation: shared}
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
    lease:
      description:
        - The state of this host's lease in it, from C(sanlock client status -D), null when not joined.
        - V(held); V(failing) while sanlock fails to renew it (C(renew_fail)); V(lost) once it expired
          (C(space_dead)), when sanlock kills what holds its leases.
      type: str
    renewal_last_result:
      description: sanlock's result of the last renewal (1 on success, negative on failure, -202 for an I/O timeout).
      type: str
  sample: {name: lvm_shared, joined: true, joining: false, host_id: 1, path: /dev/mapper/shared-lvmlock, locks: 1,
           lease: held, renewal_last_result: "1"}
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
    - With O(state=query), what keeps this host from using the VG (unset C(use_lvmlockd) or C(host_id), a lock daemon
      down, a lockspace lease that is failing or lost).
    - With O(state=recovered), what was wrong with the lock state before the run (empty when it was sound); when
      the run fails because leases are still ORPHAN after it, the result's C(reasons) name them.
    - In check mode on a host that is not ready yet, the same, and the O(pvs) that are not there.
  returned: when O(state=query) or O(state=recovered), and in check mode when RV(ready) is false
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils import sanlock
from ansible_collections.openblock.storage.plugins.module_utils.sanlock_vg import run


def main():
    run(AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'started', 'stopped', 'absent', 'query', 'recovered'],
                       default='started'),
            pvs=dict(type='list', elements='str'),
            lvs=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                size=dict(type='str'),
                activation=dict(type='str', choices=list(sanlock.MODES)),
                state=dict(type='str', choices=['present', 'absent'], default='present'),
            )),
            lock_start_timeout=dict(type='int', default=sanlock.LOCK_START_TIMEOUT),
            consumers=dict(type='list', elements='str', default=[]),
            force=dict(type='bool', default=False),
            watchdog=dict(type='bool'),
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
