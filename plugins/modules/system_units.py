#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: system_units
short_description: The packages, directories, files and systemd units a role installs, in one call
version_added: 0.1.0
description:
  - Installs the Debian O(packages) that are missing (one C(apt-get install)), then creates O(directories) and
    writes O(files) (unit files, drop-ins, udev rules, scripts, configuration), each atomically and only when its
    text or mode differs; loads O(kernel_modules); then runs C(systemctl daemon-reload) once when a file under a
    systemd directory changed (or a listed unit needs it), C(udevadm control --reload) once (and O(udev_trigger))
    when a udev rule changed, and enables, disables, stops and starts O(units) with one C(systemctl) command for
    each step.
  - State is read once (one C(dpkg-query) for the packages, the files themselves, one C(systemctl show) for every
    unit) and the whole plan is made before its first action runs. A path that is a symbolic link (a masked unit
    is one), a directory where a file is wanted, and a unit systemd does not know (no package ships it and its
    file is not in O(files)) are refused before anything changes; in check mode, or when O(packages) are
    installed first, such a unit is a warning, since the package may ship it (its enable or start then fails,
    naming it, if none does).
  - Files are written whole, so give them no secret (their text is shown in the diff).
author:
  - openblock.storage developers (@openblock)
options:
  packages:
    description:
      - Debian packages the role needs, installed first (C(apt-get install), no question asked, local configuration
        files kept) when C(dpkg-query) does not report them installed. Names only, no version.
      - Where they are all installed, which is every run but the first, this costs one C(dpkg-query) where
        the C(ansible.builtin.apt) module loads the whole package cache (about 11 s of CPU on a 1-vCPU TCG VM,
        0.2 s here).
      - The package index must be current enough to install from (as for C(ansible.builtin.apt) without
        C(update_cache)).
    type: list
    elements: str
    default: []
  directories:
    description: Directories to create (with their parents) and give C(mode).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: str
        required: true
      mode:
        description: Octal mode, quoted.
        type: str
        default: '0755'
  files:
    description: Files to write, with their text.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path; missing parent directories are created (mode 0755).
        type: str
        required: true
      content:
        description: The whole text of the file. Give this or C(size).
        type: str
      size:
        description:
          - Instead of C(content), the size of a sparse data file (like C(10G), powers of 1024), such as the
            backing file of a loop device. It is created when missing, never resized, read or written.
        type: str
      mode:
        description: Octal mode, quoted.
        type: str
        default: '0644'
  kernel_modules:
    description:
      - Kernel modules loaded now (C(modprobe)) and at every boot (a file C(/etc/modules-load.d/openblock-NAME.conf)),
        after the files are in place and before the units start, since a service may need the device a module makes.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Module name, like C(softdog).
        type: str
        required: true
      unless_exists:
        description:
          - A path whose presence makes the module unneeded, like C(/dev/watchdog) for a host with a hardware
            watchdog; the module is then neither loaded nor added to the boot.
        type: str
  units:
    description: systemd units, after the files are in place and the kernel modules loaded.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Unit name with its type, like C(tgt.service) or C(x.timer).
        type: str
        required: true
      enabled:
        description: Whether the unit starts at boot; unset leaves it as it is.
        type: bool
      state:
        description: C(started) or C(stopped); unset leaves it as it is.
        type: str
        choices: [started, stopped]
  udev_trigger:
    description:
      - When a udev rule of O(files) changed, replay a C(change) event to the devices it matches
        (C(udevadm trigger --settle)), so devices there before the rule get what it sets.
    type: dict
    suboptions:
      subsystem:
        description: C(--subsystem-match), like C(block).
        type: str
      sysname:
        description: C(--sysname-match), like C(loop*).
        type: str
seealso:
  - module: openblock.storage.multipath_config
notes:
  - Supports check mode and diff mode; the diff shows packages (installed or not), directories (mode), files
    (text), kernel modules and units (C(enabled) as C(UnitFileState), C(active) as C(ActiveState)), before and
    after.
  - A package that is not installed is installed first; its units, which systemd does not know yet, are
    predicted with a warning instead of refused, in check mode and out of it.
'''

EXAMPLES = r'''
- name: Install tgt and its boot order, and start it
  openblock.storage.system_units:
    packages: [tgt]
    files:
      - {path: /etc/systemd/system/tgt.service.d/openblock.conf, content: "[Unit]\nAfter=lvm2-monitor.service\n"}
    units:
      - {name: tgt.service, enabled: true, state: started}

- name: Install a check script and the timer that runs it
  openblock.storage.system_units:
    files:
      - {path: /usr/local/sbin/check-thing, content: "{{ lookup('file', 'check-thing') }}", mode: '0755'}
      - {path: /etc/systemd/system/check-thing.service, content: "{{ lookup('file', 'check-thing.service') }}"}
      - {path: /etc/systemd/system/check-thing.timer, content: "{{ lookup('file', 'check-thing.timer') }}"}
    units:
      - {name: check-thing.timer, enabled: true, state: started}
'''

RETURN = r'''
packages:
  description: Each listed package after the run (predicted in check mode).
  returned: always
  type: dict
  sample: {"tgt": "installed"}
units:
  description: Each listed unit after the run (predicted in check mode) - C(enabled) (UnitFileState) and C(active) (ActiveState).
  returned: always
  type: dict
  sample: {"tgt.service": {"enabled": "enabled", "active": "active"}}
kernel_modules:
  description:
    - Each listed kernel module after the run (predicted in check mode) - whether it is C(loaded) and loaded C(at_boot),
      or why it is not needed.
  returned: always
  type: dict
  sample: {"softdog": {"loaded": true, "at_boot": true}}
written:
  description: The files written (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
commands:
  description: The commands run, in order (a file write shows as C(write <path>)).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openblock.storage.plugins.module_utils.system_units import run


def main():
    run(AnsibleModule(
        argument_spec=dict(
            packages=dict(type='list', elements='str', default=[]),
            directories=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='str', required=True),
                mode=dict(type='str', default='0755'),
            )),
            files=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='str', required=True),
                content=dict(type='str'),
                size=dict(type='str'),
                mode=dict(type='str', default='0644'),
            )),
            kernel_modules=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                unless_exists=dict(type='str'),
            )),
            units=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                enabled=dict(type='bool'),
                state=dict(type='str', choices=['started', 'stopped']),
            )),
            udev_trigger=dict(type='dict', options=dict(
                subsystem=dict(type='str'),
                sysname=dict(type='str'),
            )),
        ),
        supports_check_mode=True,
    ))


if __name__ == '__main__':
    main()
