#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lvm_thinvol
short_description: Manage an LVM thin pool and all its thin volumes in one task
version_added: 0.1.0
author:
  - openblock.storage developers (@openblock)
description:
  - Makes the thin pool O(pool) exist in the volume group O(vg) and converges the thin volumes listed
    in O(volumes) (create, grow, snapshot, activate, deactivate, remove) in one task, so a host with
    hundreds of volumes converges in one run.
  - Reads the state with one JSON report of C(vgs) and one of C(lvs) (sizes in bytes, C(LC_ALL=C));
    a run that changes nothing runs no other LVM command.
  - Sizes are compared in bytes after rounding up to whole extents (and, for the pool, whole chunks),
    never as floating-point numbers.
  - Refuses, before changing anything, to shrink a volume unless O(force=true), and to remove unlisted
    volumes through O(purge) unless O(force=true). Thin pools are never shrunk.
  - An open volume (C(lv_attr) character 6 is C(o), meaning mounted, exported by tgtd, opened by a guest or
    held by another device) is never removed or deactivated, whatever O(force) says; the refusal names
    what holds it (the process and its pid, the holder device or the mount).
  - Refuses, unless O(force=true), to create or grow thin volumes when the pool would then be
    over-subscribed past O(max_over_subscription_ratio), and warns when the pool's data or metadata
    usage reaches O(usage_warning_threshold), since a full thin pool fails the writes of every volume in it.
  - All input is validated first; every error names the option and the value.
options:
  vg:
    description:
      - Volume group of the pool. It must exist (see M(openblock.storage.lvm_vg)).
    type: str
    required: true
  pool:
    description:
      - Name of the thin pool.
    type: str
    required: true
  size:
    description:
      - Size of the pool's data, in bytes or with a unit (V(100G)), or V(NN%VG) / V(NN%FREE).
      - Required to create the pool. A byte size larger than the pool grows it; a smaller one fails
        (LVM cannot shrink a thin pool).
      - A V(NN%VG) or V(NN%FREE) size is used only when the pool is created. Later runs leave the pool
        at the size it got, so the task does not chase a target that moves as the VG fills; give a byte
        size to grow the pool.
    type: str
  chunksize:
    description:
      - Chunk size of a new pool (multiple of 64KiB, 64KiB to 1GiB). Fixed at creation; a different
        value on an existing pool fails.
    type: str
  metadata_size:
    description:
      - Size of the pool's metadata LV. Grows it when larger than the current one; never shrinks it.
    type: str
  zero:
    description:
      - Whether the pool zeroes newly provisioned chunks. Left as it is when not given.
    type: bool
  discards:
    description:
      - How the pool handles discards. Left as it is when not given.
    type: str
    choices: [ignore, nopassdown, passdown]
  volumes:
    description:
      - The thin volumes of the pool this task manages. Volumes of the pool not listed are left alone,
        unless O(purge=true).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the thin volume. Names starting with C(snapshot) or C(pvmove), or containing the
            suffixes LVM keeps for hidden LVs (C(_tdata), C(_tmeta)...), are rejected.
        type: str
        required: true
      size:
        description:
          - Virtual size, in bytes or with a unit (V(10G)); rounded up to whole extents.
            Percent sizes are rejected (a thin volume's size is virtual).
          - Required to create a volume that is not a snapshot. A larger size grows the volume; a
            smaller one is refused unless O(force=true).
          - For a snapshot, defaults to the origin's size; a larger value grows the snapshot after
            creation.
        type: str
      state:
        description:
          - V(absent) removes the volume.
        type: str
        choices: [present, absent]
        default: present
      snapshot_of:
        description:
          - Create the volume as a thin snapshot of this volume of the same pool. The origin must exist
            or be listed before the snapshot. Used at creation only.
          - The snapshot is created without the activation-skip flag, so it activates like any volume.
        type: str
      active:
        description:
          - Whether the volume is active (has a device node).
        type: bool
        default: true
  purge:
    description:
      - Remove the thin volumes of the pool that O(volumes) does not list. Needs O(force=true) whenever
        there is such a volume.
    type: bool
    default: false
  max_over_subscription_ratio:
    description:
      - The most the pool may be over-subscribed, as Cinder's C(max_over_subscription_ratio) with the same
        default. The ratio is the virtual sizes of the pool's thin volumes, snapshots included, added up and
        divided by the pool's data size. V(20.0) lets 1TiB of pool hold 20TiB of volumes; V(1.0) lets the volumes
        never need more space than the pool has.
      - A run that creates or grows thin volumes past it is refused, naming the ratio it would reach
        and the pool size, unless O(force=true). The pool size counted is the one after this run, so
        growing the pool with O(size) in the same task makes room. Runs that add no virtual size
        (no change, removals, shrinks, activations) are never refused; a pool already past the ratio
        gets a warning.
      - At least V(1.0), as Cinder requires.
    type: float
    default: 20.0
  usage_warning_threshold:
    description:
      - Warn when the pool's data or metadata usage, in percent, is at or above this value after the run
        (C(data_percent) and C(metadata_percent) of C(lvs)). 1 to 100.
      - With LVM's pool autoextend on, give its C(activation/thin_pool_autoextend_threshold), so that usage at
        the threshold means the pool did not grow (monitoring off, or no free extents in the VG).
    type: int
    default: 80
  force:
    description:
      - Allow destructive work, namely shrinking a volume and removing unlisted volumes with O(purge).
        An open volume is never removed, even with O(force=true).
    type: bool
    default: false
extends_documentation_fragment:
  - openblock.storage.attributes
  - openblock.storage.volume_report
notes:
  - In diff mode, before and after show the pool's size and settings and each volume's size, activity
    and origin.
  - Runs the LVM commands with C(LC_ALL=C). Needs lvm2 2.02.158 or later (JSON reports).
  - A thin volume larger than the free space of its pool is allowed (over-commit) up to
    O(max_over_subscription_ratio); LVM warns. Configure LVM's pool monitoring and autoextend
    (C(activation/thin_pool_autoextend_threshold) and C(_percent) in C(lvm.conf)) so that the pool grows
    before it fills.
  - Removals run as one C(lvremove) and activations as one C(lvchange); each creation or resize is one command.
  - Serializes itself with the other modules of the collection through a host-wide lock.
  - Without lvm2 (no C(lvm)) or thin-provisioning-tools (no C(thin_check)), check mode warns, naming each
    command and its package, and predicts a change as for a VG that does not exist yet; other runs fail
    before any change.
seealso:
  - module: openblock.storage.lvm_vg
'''

EXAMPLES = r'''
- name: Pool on 95% of the VG (at creation), two volumes and a snapshot
  openblock.storage.lvm_thinvol:
    vg: cinder-volumes
    pool: cinder-pool
    size: 95%VG
    volumes:
      - {name: volume-1, size: 10G}
      - {name: volume-2, size: 20G}
      - {name: volume-1-snap, snapshot_of: volume-1}

- name: Grow volume-2, remove volume-1's snapshot
  openblock.storage.lvm_thinvol:
    vg: cinder-volumes
    pool: cinder-pool
    volumes:
      - {name: volume-2, size: 40G}
      - {name: volume-1-snap, state: absent}

- name: Exactly these volumes and no other (removes the rest)
  openblock.storage.lvm_thinvol:
    vg: cinder-volumes
    pool: cinder-pool
    volumes: "{{ cinder_volumes }}"
    purge: true
    force: true
'''

RETURN = r'''
pool:
  description:
    - The pool after the run. Sizes in bytes; the percentages are null while the pool is inactive.
    - C(data_percent) and C(metadata_percent) are the pool's usage; C(provisioned_size) adds up the virtual
      sizes of its thin volumes (snapshots included) and C(over_subscription_ratio) divides that by C(size).
  returned: always
  type: dict
  sample:
    name: cinder-pool
    vg: cinder-volumes
    size: 1019215872
    attr: twi-aotz--
    data_percent: 1.2
    metadata_percent: 10.84
    chunk_size: 65536
    metadata_size: 4194304
    zero: true
    discards: passdown
    provisioned_size: 10737418240
    over_subscription_ratio: 10.53
volumes:
  description:
    - The thin volumes of the pool after the run that it created or changed (in check mode, as they are now),
      or with O(report=all) every one, by name. Sizes in bytes.
  returned: always
  type: dict
  sample:
    volume-1: {size: 10737418240, path: /dev/cinder-volumes/volume-1, attr: Vwi-a-tz--, origin: null, active: true, open: false}
    volume-1-snap: {size: 10737418240, path: /dev/cinder-volumes/volume-1-snap, attr: Vwi-a-tz--, origin: volume-1, active: true, open: false}
commands:
  description: The commands run (in check mode, the commands that would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["lvcreate --type thin --virtualsize 10737418240b --thinpool cinder-pool --name volume-1 --activate y cinder-volumes"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    MAX_OVER_SUBSCRIPTION_RATIO, THIN_TOOLS, USAGE_WARNING_THRESHOLD, converge_lvs, plan_thin, thin_facts, thin_spec,
    thin_view, thin_warnings)
from ansible_collections.openblock.storage.plugins.module_utils.plan import REPORT_OPTION

VOLUME_OPTIONS = dict(
    name=dict(type='str', required=True),
    size=dict(type='str'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    snapshot_of=dict(type='str'),
    active=dict(type='bool', default=True),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vg=dict(type='str', required=True),
            pool=dict(type='str', required=True),
            size=dict(type='str'),
            chunksize=dict(type='str'),
            metadata_size=dict(type='str'),
            zero=dict(type='bool'),
            discards=dict(type='str', choices=['ignore', 'nopassdown', 'passdown']),
            volumes=dict(type='list', elements='dict', options=VOLUME_OPTIONS, default=[]),
            purge=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            max_over_subscription_ratio=dict(type='float', default=MAX_OVER_SUBSCRIPTION_RATIO),
            usage_warning_threshold=dict(type='int', default=USAGE_WARNING_THRESHOLD),
            report=REPORT_OPTION,
        ),
        supports_check_mode=True,
    )
    spec, errors = thin_spec(module.params)
    if errors:
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])

    pool = spec['pool']

    def facts(lvs):
        found = thin_facts(spec['vg'], lvs, pool)
        for warning in thin_warnings(found['pool'], spec['warn_at'], spec['max_ratio']):
            module.warn(warning)
        return found

    converge_lvs(module, spec, lambda vg, lvs: plan_thin(spec, vg, lvs), lambda lvs: thin_view(lvs, pool),
                 facts, predicted='the pool and %d volume(s) would be created', tools=THIN_TOOLS)


if __name__ == '__main__':
    main()
