#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: iscsi_initiator
short_description: The host's iSCSI initiator name and iscsid.conf settings, in one call
version_added: 0.1.0
description:
  - Gives the host a valid iSCSI initiator name in C(/etc/iscsi/initiatorname.iscsi) and sets the listed
    C(/etc/iscsi/iscsid.conf) settings, reading both files once and writing each one atomically.
  - The name is replaced with one from C(iscsi-iname -p name_prefix) when it is missing, not a valid
    iSCSI name (a placeholder), or listed in O(avoid) (held by another host; cloned images share the
    name open-iscsi wrote once). O(name) sets it outright.
  - Each setting is written on the key's uncommented lines; a key that has none goes after its
    commented example, else at the end. Other lines are kept byte for byte. Both files are mode 0600
    (iscsid.conf may hold CHAP secrets).
  - iscsid is restarted (C(systemctl try-restart), only if it runs) when a file changed, and not otherwise.
  - Changing the name of a host with sessions makes its targets' ACLs reject its next login; update the
    ACLs (the storage_node role does, from the published name) before it logs in again.
author:
  - openblock.storage developers (@openblock)
options:
  name:
    description: The initiator name to set. Default is to keep a valid, unique name and generate one otherwise.
    type: str
  name_prefix:
    description: Prefix of a generated name; C(iscsi-iname) appends C(:<random>).
    type: str
    default: iqn.1993-08.org.debian:01
  avoid:
    description:
      - Names other hosts hold, a dict from host to name; a host whose name is one of them gets a new name.
        The compute_initiator role passes the names of the hosts before this one in the play.
    type: dict
    default: {}
  settings:
    description: iscsid.conf settings, a dict from key to value, for example C(node.session.timeo.replacement_timeout) to C(5).
    type: dict
    default: {}
notes:
  - Check mode changes nothing and returns the name and settings the host would have; diff mode shows the
    name and the value of each listed setting, before and after.
  - Without open-iscsi (no C(iscsi-iname)), check mode predicts from no name file and an empty C(iscsid.conf),
    with a placeholder name, and warns, naming the command and its package; other runs fail before any change.
'''

EXAMPLES = r'''
- name: A unique initiator name and iscsid tuned for multipath
  openblock.storage.iscsi_initiator:
    settings:
      node.startup: automatic
      node.session.timeo.replacement_timeout: 5
'''

RETURN = r'''
name:
  description: The initiator name the host has after the task (in check mode, the one it would have).
  returned: always
  type: str
previous_name:
  description: The name that was replaced, when one was.
  returned: always
  type: str
renamed:
  description: Whether the name was (or in check mode would be) replaced.
  returned: always
  type: bool
reason:
  description: Why the name was replaced, or null.
  returned: always
  type: str
settings:
  description: The value iscsid reads for each listed setting after the task.
  returned: always
  type: dict
commands:
  description: The file writes and commands run (or, in check mode, planned).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils import initiator


def main():
    initiator.run(AnsibleModule(
        argument_spec=dict(
            name=dict(type='str'),
            name_prefix=dict(type='str', default='iqn.1993-08.org.debian:01'),
            avoid=dict(type='dict', default={}),
            settings=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
