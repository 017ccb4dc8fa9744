# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lvm_vg module's run: the devices it is given, resolved, and read -> plan -> apply -> report
around the pure planner of ``lvm.py``."""

from __future__ import annotations

import os
import stat

from ansible_collections.openblock.storage.plugins.module_utils.devices import device_usage
from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    LVM_TOOLS, Refusal, parse_signatures, plan_vg, read_pvs, read_vg, signature_argv, vg_facts, vg_spec, vg_view)
from ansible_collections.openblock.storage.plugins.module_utils.plan import Runner, diff_result, host_lock, require_tools


def resolve_devices(devices, errors, absent=None):
    """Resolved block-device path -> path as given, in the given order; missing devices are errors,
    or, given a list ``absent``, kept (as their path) and named there: check mode predicts them."""
    resolved = {}
    for index, device in enumerate(devices):
        real = os.path.realpath(device)
        try:
            is_block = stat.S_ISBLK(os.stat(real).st_mode)
        except OSError:
            message = 'pvs[%d]=%r does not exist on this host; check the path (ls -l /dev/disk/by-id/)' % (index, device)
            if absent is None:
                errors.append(message)
            elif real not in resolved:
                absent.append(message)
                resolved[real] = device
            continue
        if not is_block:
            errors.append('pvs[%d]=%r is not a block device; give a disk or partition under /dev/' % (index, device))
        elif real in resolved:
            errors.append('pvs[%d]=%r is the same device as %r; list each device once'
                          % (index, device, resolved[real]))
        else:
            resolved[real] = device
    return resolved


def read_pv_rows(runner):
    """Every PV, with its resolved device path (``device``) to compare with the resolved O(pvs)."""
    pvs = read_pvs(runner)
    for pv in pvs:
        pv['device'] = os.path.realpath(pv['pv_name'])
    return pvs


def run(module):
    """Read, plan, apply, report: the whole lvm_vg module."""
    spec, errors = vg_spec(module.params)
    # In check mode a device an earlier task makes (the storage_node role's loop device) is predicted.
    absent = [] if module.check_mode else None
    devices = resolve_devices(spec['pvs'], errors, absent) if spec['state'] == 'present' else {}
    if errors:
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])
    for message in absent or []:
        module.warn('check mode: %s; predicted as made by an earlier task of this run (its signatures and use are '
                    'checked by the run that finds it)' % message)
    missing = require_tools(module, LVM_TOOLS, 'no volume groups and no physical volumes')

    runner = Runner(module)
    with host_lock(module):
        vg = None if missing else read_vg(runner, spec['name'])
        pvs = [] if missing else read_pv_rows(runner)
        known = set(pv['device'] for pv in pvs)
        signatures, in_use = {}, {}
        for device in devices:
            # wipefs is util-linux: the guard runs without lvm2 too
            if device not in known and os.path.exists(device):
                signatures[device] = parse_signatures(
                    runner.read(signature_argv(device), what='probing %s for signatures' % devices[device])[1])
                in_use[device] = device_usage(os.path.basename(device), sys_block='/sys/class/block')
        before = vg_view(vg, pvs, devices)
        try:
            actions, expected = plan_vg(spec, vg, pvs, devices, signatures, in_use)
        except Refusal as refusal:
            module.fail_json(msg=str(refusal), reasons=refusal.reasons, commands=[],
                             vg=vg_facts(vg, pvs))
        changed = runner.apply(actions)
        if changed and not module.check_mode:
            vg = read_vg(runner, spec['name'])
            pvs = read_pv_rows(runner)
            expected = vg_view(vg, pvs, devices)

    result = dict(changed=changed, vg=vg_facts(vg, pvs), commands=runner.commands)
    if module._diff:
        result['diff'] = diff_result(before, expected)
    module.exit_json(**result)
