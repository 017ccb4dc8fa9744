#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lvm_config
short_description: Set LVM's global_filter and other lvm.conf / lvmlocal.conf settings, validated, in one task
version_added: 0.1.0
author:
  - openblock.storage developers (@openblock)
description:
  - Sets the settings it is given in C(lvm.conf) and C(lvmlocal.conf) (V(local/...) keys) in one task,
    editing only their lines in place; every other line of the distribution's files stays byte for byte.
  - With O(global_filter), computes C(devices/global_filter) as a whitelist - the O(global_filter.accept)
    patterns, the O(global_filter.devices), this host's own local PVs, then C(r|.*|) - so LVM never
    scans iSCSI path devices or the PVs a guest creates inside an exported volume.
  - A PV is local when every disk below it (sysfs C(slaves), followed down to the disks) was read and is
    not on an iSCSI session, and it is not inside a logical volume of a VG in O(global_filter.exclude_vgs).
    A PV that cannot be classified (sysfs unreadable, no device below it) is B(not) accepted, and the
    module warns and lists it in RV(global_filter.rejected) (fail closed).
  - Every accept entry names its device by a name that survives a reboot - the name given when it is
    under C(/dev/disk/by-*) or C(/dev/mapper/), else the device's C(/dev/disk/by-id/) link (the first in
    sorted order), else C(by-path), C(by-partuuid), C(by-uuid) - never C(/dev/sdX), C(/dev/loopN) or
    C(by-diskseq). LVM accepts a device when any of its names matches, so the stable name accepts it.
  - The edited files are checked with C(lvmconfig --validate) in a directory of their own
    (C(LVM_SYSTEM_DIR)) and read back there with C(lvmconfig) before the real files are replaced
    (temporary file in the same directory, mode and owner kept, rename).
  - Reads the state with one C(pvs) JSON report (only with O(global_filter)), sysfs and the
    C(/dev/disk/by-*) links.
options:
  global_filter:
    description:
      - Compute and set C(devices/global_filter). Not set = the filter is left as it is.
    type: dict
    suboptions:
      devices:
        description:
          - Devices to accept whatever they are on (the PVs of a VG the next task creates, the shared LUN).
          - Give C(/dev/disk/by-id/...) names; another path is accepted by the device's stable name,
            and a device that has none is refused.
          - A device that does not exist yet is accepted only by a stable name (C(/dev/disk/by-*),
            C(/dev/mapper/)).
        type: list
        elements: path
        default: []
      accept:
        description: Extra C(a|regex|) patterns, placed first (no double quotes).
        type: list
        elements: str
        default: []
      exclude_vgs:
        description:
          - VGs whose logical volumes hold no PV of this host (the volumes it exports). A PV inside one
            of their LVs is never accepted.
        type: list
        elements: str
        default: []
  settings:
    description:
      - Other settings, as C(section/name) keys with their value (number, string or list of strings);
        V(local/...) keys go to O(local_path), the rest to O(path).
      - Booleans are written as 1 and 0. C(devices/global_filter) is set through O(global_filter) only.
    type: dict
    default: {}
  path:
    description: The main LVM configuration file.
    type: path
    default: /etc/lvm/lvm.conf
  local_path:
    description: The host-local LVM configuration file (created with the V(local) section if missing).
    type: path
    default: /etc/lvm/lvmlocal.conf
extends_documentation_fragment:
  - openblock.storage.attributes
notes:
  - In diff mode, before and after show the lines of the managed settings in each file (null for a
    setting the file does not have).
  - A setting that appears twice in a section is set once (the second is removed); a new setting goes
    first in its section. Comments, including the distribution's commented examples, stay.
  - If the root filesystem is on LVM, the initramfs keeps its own copy of C(lvm.conf); run
    C(update-initramfs -u) after changing the filter.
  - Serializes itself with the other modules of the collection through a host-wide lock.
  - Without lvm2 (no C(lvm)), check mode predicts the edit of an empty C(lvm.conf) (LVM's defaults) with no PVs
    and warns, naming the command and its package; other runs fail before any change.
seealso:
  - module: openblock.storage.lvm_vg
  - module: openblock.storage.sanlock_vg
'''

EXAMPLES = r'''
- name: Storage node - scan only the cinder VG's disk and the host's own PVs
  openblock.storage.lvm_config:
    global_filter:
      devices: [/dev/disk/by-id/virtio-spare1]
      exclude_vgs: [cinder-volumes]

- name: Shared VG host - lvmlockd and this host's sanlock host_id, in one task
  openblock.storage.lvm_config:
    settings:
      global/use_lvmlockd: 1
      local/host_id: 7
'''

RETURN = r'''
changed:
  description: Whether a file was (in check mode, would be) written.
  returned: always
  type: bool
files:
  description: The files written (in check mode, that would be written).
  returned: always
  type: list
  elements: str
  sample: [/etc/lvm/lvm.conf]
settings:
  description: The managed lines after the run, by file and C(section/name).
  returned: always
  type: dict
  sample: {/etc/lvm/lvmlocal.conf: {local/host_id: "host_id = 7"}}
global_filter:
  description: The computed filter and why each device is in it or not.
  returned: when O(global_filter) is set
  type: dict
  contains:
    value:
      description: The C(global_filter) list.
      type: list
      elements: str
      sample: ["a|^/dev/disk/by-id/virtio-spare1$|", "r|.*|"]
    accepted:
      description: Accepted devices - C(device) (as named or as C(pvs) reports it), C(name) (in the filter), C(why).
      type: list
      elements: dict
    rejected:
      description: PVs not accepted - C(device), C(state) (C(remote), C(excluded), C(unknown)) and C(why).
      type: list
      elements: dict
commands:
  description: The commands run, in order (the lvmconfig checks run on the candidate files in a temporary directory).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.lvm_config import LVM_CONF, LVMLOCAL_CONF, run


def main():
    run(AnsibleModule(
        argument_spec=dict(
            global_filter=dict(type='dict', options=dict(
                devices=dict(type='list', elements='path', default=[]),
                accept=dict(type='list', elements='str', default=[]),
                exclude_vgs=dict(type='list', elements='str', default=[]),
            )),
            settings=dict(type='dict', default={}),
            path=dict(type='path', default=LVM_CONF),
            local_path=dict(type='path', default=LVMLOCAL_CONF),
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
