#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lvm_vg
short_description: Create, extend, reduce or remove an LVM volume group, safely
version_added: 0.1.0
author:
  - openblock.storage developers (@openblock)
description:
  - Makes the LVM volume group O(name) exist on the devices O(pvs), or not exist.
  - Reads the state with one JSON report of C(vgs) and one of C(pvs) (sizes in bytes, C(LC_ALL=C)),
    and probes devices that are not physical volumes yet with C(wipefs --no-act).
  - Refuses, before changing anything, to put a VG on a device that carries a signature (filesystem,
    partition table, RAID or other data) unless O(force=true), and to remove a VG that still holds
    logical volumes unless O(force=true). A device that is a physical volume of another VG, or that
    is in use (mounted, held by device-mapper or md, swap, or open by a process such as tgtd or a
    qemu guest), is refused always, naming what uses it.
  - All input is validated first; every error names the option and the value.
options:
  name:
    description:
      - Name of the volume group.
    type: str
    required: true
  pvs:
    description:
      - Devices (paths under C(/dev/), symlinks such as C(/dev/disk/by-id/...) welcome) the VG must be on.
      - Devices that are not physical volumes yet are initialized and added.
      - Required, and not empty, with O(state=present). Ignored with O(state=absent).
    type: list
    elements: str
  state:
    description:
      - V(present) creates or extends the VG; V(absent) removes it and the LVM labels of its devices.
    type: str
    choices: [present, absent]
    default: present
  pesize:
    description:
      - Extent size of a new VG, with a unit (V(4M)); a power of two of at least 1KiB.
      - Used at creation only. On an existing VG with another extent size the module fails
        rather than pretend it changed it.
    type: str
  pvresize:
    description:
      - Grow each listed physical volume to the size of its device when the device has grown.
    type: bool
    default: false
  reduce:
    description:
      - Take physical volumes that are not listed in O(pvs) out of the VG and remove their LVM labels.
      - Only PVs that hold no allocated extent are taken out; otherwise the module fails and says to
        move the extents with C(pvmove) first.
    type: bool
    default: false
  force:
    description:
      - Allow destructive work, namely erasing the signatures of a new device with C(wipefs --all)
        and removing a VG together with its logical volumes.
    type: bool
    default: false
extends_documentation_fragment:
  - openblock.storage.attributes
notes:
  - In diff mode, before and after show the VG's extent size and the extent count of each device
    (null for a device the VG has not taken yet).
  - Runs the LVM commands with C(LC_ALL=C). Needs lvm2 2.02.158 or later (JSON reports) and util-linux C(wipefs).
  - Serializes itself with the other modules of the collection through a host-wide lock.
  - Without lvm2 (no C(lvm)), check mode predicts from no VG and no PVs and warns, naming the command and its
    package; the C(wipefs) check of the devices still runs. A device in O(pvs) that does not exist yet is
    predicted in check mode, with a warning. Other runs fail before any change.
seealso:
  - module: openblock.storage.lvm_thinvol
'''

EXAMPLES = r'''
- name: Volume group for Cinder volumes on two disks
  openblock.storage.lvm_vg:
    name: cinder-volumes
    pvs:
      - /dev/disk/by-id/virtio-spare1
      - /dev/disk/by-id/virtio-spare2

- name: A disk was replaced by a bigger one; grow the PVs to their devices
  openblock.storage.lvm_vg:
    name: cinder-volumes
    pvs: [/dev/sdb, /dev/sdc]
    pvresize: true

- name: Release /dev/sdc (it must hold no extents)
  openblock.storage.lvm_vg:
    name: cinder-volumes
    pvs: [/dev/sdb]
    reduce: true

- name: Tear the VG down with all its volumes
  openblock.storage.lvm_vg:
    name: cinder-volumes
    state: absent
    force: true
'''

RETURN = r'''
vg:
  description: The volume group after the run (empty when absent). Sizes in bytes.
  returned: always
  type: dict
  sample:
    name: cinder-volumes
    uuid: 3kS0ZX-...
    attr: wz--n-
    size: 2139095040
    free: 2139095040
    extent_size: 4194304
    extent_count: 510
    free_count: 510
    pv_count: 2
    lv_count: 0
    pvs:
      - {name: /dev/vdb, size: 1073741824, dev_size: 1073741824, free: 1069547520, used_extents: 0}
commands:
  description: The commands run (in check mode, the commands that would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["vgcreate cinder-volumes /dev/vdb /dev/vdc"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.lvm_vg import run


def main():
    run(AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            pvs=dict(type='list', elements='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            pesize=dict(type='str'),
            pvresize=dict(type='bool', default=False),
            reduce=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
