#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lvm_thickvol
short_description: Manage the thick (plain) LVs of a volume group in one task, zero-filled before removal
version_added: 0.1.0
author:
  - openblock.storage developers (@openblock)
description:
  - Converges the plain (thick, linear) logical volumes listed in O(volumes) in the volume group O(vg) --
    creates, grows and removes them in one task, so a host with hundreds of volumes converges in one run.
  - With O(clear=zero) (the default, as Cinder's C(volume_clear = zero)) a volume is overwritten with zeros
    before it is removed, so the next volume that gets its extents cannot read the old data. The part a
    shrink cuts off is zeroed too. Thin volumes need no such step and are not this module's
    (see M(openblock.storage.lvm_thinvol)).
  - Zeros are written by C(dd if=/dev/zero bs=1M oflag=direct conv=fsync), counting bytes, as Cinder does;
    plain writes that every device takes, and an exit code that reports a write the device did not take.
  - Reads the state with one JSON report of C(vgs) and one of C(lvs) (sizes in bytes, C(LC_ALL=C));
    a run that changes nothing runs no other LVM command.
  - Refuses, before changing anything, to touch an LV that is not plain (a thin volume, a thin pool, a
    snapshot or its origin, a mirror, RAID, cache or VDO LV), to shrink a volume unless O(force=true),
    and to create or grow beyond the free space of the VG.
  - An open volume (C(lv_attr) character 6 is C(o), meaning mounted, exported by tgtd, opened by a guest or
    held by another device) is never cleared or removed, whatever O(force) says (LVM would refuse the
    removal after the zeros had destroyed the data); the refusal names what holds it (the process and
    its pid, the holder device or the mount).
  - All input is validated first; every error names the option and the value.
options:
  vg:
    description:
      - Volume group of the volumes. It must exist (see M(openblock.storage.lvm_vg)).
    type: str
    required: true
  volumes:
    description:
      - The volumes this task manages. Other LVs of the VG are left alone.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the LV. Names starting with C(snapshot) or C(pvmove), or containing the suffixes LVM
            keeps for hidden LVs (C(_tdata), C(_rimage)...), are rejected.
        type: str
        required: true
      size:
        description:
          - Size, in bytes or with a unit (V(10G)); rounded up to whole extents. Percent sizes are rejected.
          - Required to create a volume. A larger size grows the volume; a smaller one is refused unless
            O(force=true).
        type: str
      state:
        description:
          - V(absent) removes the volume, after clearing it as O(clear) says.
        type: str
        choices: [present, absent]
        default: present
  clear:
    description:
      - What happens to the data of a volume before it is removed, and to the part of a volume a shrink
        cuts off. V(zero) writes zeros over it, V(none) leaves the data on the freed extents.
    type: str
    choices: [zero, none]
    default: zero
  clear_size:
    description:
      - How many MiB from the start of a removed volume O(clear=zero) overwrites; V(0) means the whole
        volume, as Cinder's C(volume_clear_size). A value larger than the volume clears all of it.
      - A shrink always clears the whole part it cuts off.
    type: int
    default: 0
  force:
    description:
      - Allow shrinking a volume. An open volume is never removed, even with O(force=true).
    type: bool
    default: false
extends_documentation_fragment:
  - openblock.storage.attributes
  - openblock.storage.volume_report
notes:
  - In diff mode, before and after show each plain LV's size and activity.
  - Runs the LVM commands with C(LC_ALL=C). Needs lvm2 2.02.158 or later (JSON reports) and GNU dd.
  - New volumes are created with C(--wipesignatures y), so a signature left on the extents does not show up
    in the new volume, and LVM zeroes their first 4KiB. Only O(clear=zero) clears the rest.
  - Clearing takes as long as writing the volume (O(clear_size) bounds it). An inactive volume is activated
    to be cleared.
  - Removals run as one C(lvremove); each clear, creation or resize is one command.
  - Serializes itself with the other modules of the collection through a host-wide lock.
  - Without lvm2 (no C(lvm)), check mode warns, naming the command and its package, and predicts a change as
    for a VG that does not exist yet; other runs fail before any change.
seealso:
  - module: openblock.storage.lvm_vg
  - module: openblock.storage.lvm_thinvol
'''

EXAMPLES = r'''
- name: Two thick volumes
  openblock.storage.lvm_thickvol:
    vg: cinder-volumes
    volumes:
      - {name: volume-1, size: 10G}
      - {name: volume-2, size: 20G}

- name: Grow volume-2, remove volume-1 after zeroing its first 100MiB
  openblock.storage.lvm_thickvol:
    vg: cinder-volumes
    clear_size: 100
    volumes:
      - {name: volume-2, size: 40G}
      - {name: volume-1, state: absent}

- name: Remove a volume without clearing it
  openblock.storage.lvm_thickvol:
    vg: cinder-volumes
    clear: none
    volumes:
      - {name: volume-2, state: absent}
'''

RETURN = r'''
vg:
  description: The volume group.
  returned: always
  type: str
  sample: cinder-volumes
volumes:
  description:
    - The plain LVs of the VG after the run that it created or changed (in check mode, as they are now), or
      with O(report=all) every one, by name. Sizes in bytes.
  returned: always
  type: dict
  sample:
    volume-1: {size: 10737418240, path: /dev/cinder-volumes/volume-1, attr: -wi-a-----, active: true, open: false}
commands:
  description: The commands run (in check mode, the commands that would run), in order.
  returned: always
  type: list
  elements: str
  sample:
    - dd if=/dev/zero of=/dev/cinder-volumes/volume-1 bs=1M count=10737418240 iflag=count_bytes oflag=direct conv=fsync status=none
    - lvremove --force cinder-volumes/volume-1
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    CLEAR_CHOICES, converge_lvs, plan_thick, thick_facts, thick_spec, thick_view)
from ansible_collections.openblock.storage.plugins.module_utils.plan import REPORT_OPTION

VOLUME_OPTIONS = dict(
    name=dict(type='str', required=True),
    size=dict(type='str'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vg=dict(type='str', required=True),
            volumes=dict(type='list', elements='dict', options=VOLUME_OPTIONS, default=[]),
            clear=dict(type='str', choices=list(CLEAR_CHOICES), default='zero'),
            clear_size=dict(type='int', default=0),
            force=dict(type='bool', default=False),
            report=REPORT_OPTION,
        ),
        supports_check_mode=True,
    )
    spec, errors = thick_spec(module.params)
    if errors:
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])

    converge_lvs(module, spec, lambda vg, lvs: plan_thick(spec, vg, lvs), thick_view,
                 lambda lvs: thick_facts(spec['vg'], lvs), predicted='%d volume(s) would be created')


if __name__ == '__main__':
    main()
