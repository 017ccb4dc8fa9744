#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: multipath_config
short_description: dm-multipath for tgt LUNs in one call (drop-in, aliases by WWID, kernel modules, multipathd)
version_added: 0.1.0
description:
  - Writes the multipath drop-in O(dropin) (defaults C(user_friendly_names no) and O(find_multipaths), a
    blacklist of O(blacklist_devnodes), a device section for tgt's LUNs (vendor C(IET), product
    C(VIRTUAL-DISK)) with O(tgt_device), and one C(multipath) entry per alias), atomically, only when its
    text changes.
  - An alias gives its C(wwid), or names a target (C(iqn), or C(volume) for O(iqn_prefix)C(volume-)C(<volume>))
    whose LUN 1 this host sees under C(/dev/disk/by-path); the WWID is then read from the udev database
    (udev's C(ID_SERIAL), what C(/lib/udev/scsi_id --whitelisted --replace-whitespace) prints and what
    multipath uses), in the same call. An alias whose LUN the host does not see fails the task naming it
    (in check mode it is left out of the prediction, with a warning).
  - Loads O(kernel_modules) now (C(modprobe -a), only those not loaded) and at boot
    (C(/etc/modules-load.d/openblock-multipath.conf)). With O(find_multipaths=strict) (Debian 13's
    default) adds each alias's WWID missing from C(/etc/multipath/wwids) with C(multipath -a).
  - Enables and starts multipathd when it is not, and runs C(multipathd reconfigure) only when the drop-in
    or the wwids file changed and multipathd was running.
  - Returns the maps with the state of each path, from C(multipathd show maps json).
author:
  - openblock.storage developers (@openblock)
options:
  aliases:
    description:
      - Map aliases. Each has C(alias) (the map becomes C(/dev/mapper/<alias>)) and one of C(wwid), C(iqn)
        or C(volume).
    type: list
    elements: dict
    default: []
  iqn_prefix:
    description: Prefix of volume target names; an alias with C(volume) names target O(iqn_prefix)C(volume-<volume>).
    type: str
    default: "iqn.2010-10.org.openstack:"
  find_multipaths:
    description: The find_multipaths policy, one of C(no), C(yes), C(strict), C(greedy) or C(smart).
    type: raw
    default: greedy
  blacklist_devnodes:
    description: Device node regexes multipath ignores.
    type: list
    elements: str
    default: ["^vd[a-z]+", "^(ram|zram|raw|loop|fd|md|dm-|sr|scd|st)[0-9]*"]
  tgt_device:
    description: Settings of the device section for tgt LUNs, keyword to value; a value with a space is quoted.
    type: dict
    default:
      path_grouping_policy: multibus
      path_selector: round-robin 0
      path_checker: tur
      failback: immediate
      no_path_retry: 60
  kernel_modules:
    description: Kernel modules to load now and at boot.
    type: list
    elements: str
    default: [dm_multipath, dm_round_robin]
  dropin:
    description: The drop-in to write, in multipathd's C(config_dir).
    type: path
    default: /etc/multipath/conf.d/openblock.conf
extends_documentation_fragment:
  - openblock.storage.attributes
notes:
  - In diff mode, before and after show the drop-in's text.
  - Without multipath-tools (no C(multipathd)), check mode predicts the drop-in and multipathd enabled and
    started, and warns, naming the command and its package; other runs fail before any change.
  - Tested with multipath-tools 0.9.4 on Debian 12 (the lab); Debian 13's 0.11 is not tested yet.
'''

EXAMPLES = r'''
- name: Multipath for the volumes attached to this host, aliased like the volumes
  openblock.storage.multipath_config:
    aliases:
      - {alias: shared-lun, volume: shared-lun}
      - {alias: data1, wwid: "360000000000000000e00000000010001"}
    find_multipaths: strict
  register: mpath
'''

RETURN = r'''
dropin:
  description: The drop-in's path.
  returned: always
  type: str
wwids:
  description: The WWID of each alias in the drop-in, by alias.
  returned: always
  type: dict
devices:
  description: The devices of LUN 1 found for each alias named by target (one per portal), by alias.
  returned: always
  type: dict
maps:
  description:
    - The maps multipathd holds after the task, by name, each with C(wwid), C(dm) and C(paths), each path with C(dev), C(state) and C(dm_state),
      C(state) being the path checker's (C(ready), C(faulty), ...) and C(dm_state) the kernel's (C(active),
      C(failed)). Empty when multipathd does not run (in check mode, before it is started).
  returned: always
  type: dict
  sample: {shared-lun: {wwid: "360000000000000000e00000000010001", dm: dm-0,
           paths: [{dev: sda, state: ready, dm_state: active}, {dev: sdb, state: ready, dm_state: active}]}}
commands:
  description: The file writes and commands run (or, in check mode, planned).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils import multipath


def main():
    multipath.run(AnsibleModule(
        argument_spec=dict(
            aliases=dict(type='list', elements='dict', default=[]),
            iqn_prefix=dict(type='str', default='iqn.2010-10.org.openstack:'),
            find_multipaths=dict(type='raw', default='greedy'),
            blacklist_devnodes=dict(type='list', elements='str',
                                    default=['^vd[a-z]+', '^(ram|zram|raw|loop|fd|md|dm-|sr|scd|st)[0-9]*']),
            tgt_device=dict(type='dict', default=dict(path_grouping_policy='multibus', path_selector='round-robin 0',
                                                      path_checker='tur', failback='immediate', no_path_retry=60)),
            kernel_modules=dict(type='list', elements='str', default=['dm_multipath', 'dm_round_robin']),
            dropin=dict(type='path', default='/etc/multipath/conf.d/openblock.conf'),
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
