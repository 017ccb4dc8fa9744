# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sanlock_vg module's run: the readers of this host's VG, LVs, lock daemons and devices, and
read -> plan -> apply -> report around the pure planner of ``sanlock.py``."""

from __future__ import annotations

import os

from ansible_collections.openblock.storage.plugins.module_utils import sanlock
from ansible_collections.openblock.storage.plugins.module_utils.devices import device_usage
from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    Refusal, parse_signatures, read_pvs, signature_argv)
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    Action, Runner, diff_result, host_lock, missing_text, read_text, require_tools)


def read_state(runner, name, sanlock_may_be_down=False, missing=None):
    """The VG row, its LVs, and this host's sanlock status (none when sanlock_may_be_down and it is;
    none of them when the tools are ``missing``: check mode predicts from nothing)."""
    if missing:
        return None, [], sanlock.parse_sanlock_status('')
    vg = sanlock.parse_vg(runner.read(sanlock.vgs_argv(name), what='reading volume group %s' % name)[1])
    rc, out, err = runner.read(sanlock.SANLOCK_STATUS_ARGV, ok_rcs=None if sanlock_may_be_down else (0,))
    status = sanlock.parse_sanlock_status(out if rc == 0 else '')
    lvs = []
    if vg:
        leases = status['resources'].get(sanlock.LOCKSPACE_PREFIX + name, {})
        lvs = sanlock.parse_lvs(runner.read(sanlock.lvs_argv(name), what='reading the LVs of %s' % name)[1], leases)
    return vg, lvs, status


def device_actions(module, runner, spec, lvm_missing=False):
    """Refusals for the devices of a new VG, and the wipefs actions force asks for. A device that
    is not there (check mode) is left to the run that finds it; without lvm2 (check mode) no device
    is a PV yet, and wipefs (util-linux) still probes the others."""
    refusals, actions = [], []
    pvs = {} if lvm_missing else dict((os.path.realpath(pv['pv_name']), pv) for pv in read_pvs(runner))
    for device in spec['pvs']:
        if not os.path.exists(device):
            continue
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


def read_setup(runner, daemons_matter=True, missing=None):
    """This host's lvmlockd settings, the lock daemons' states, and what keeps the host from using a
    sanlock VG (lock daemons that are down count only where ``daemons_matter``; the tools that are
    ``missing``, check mode only, are the whole answer)."""
    if missing:
        return {}, {}, ['%s not installed' % missing_text(missing)]
    config = sanlock.parse_lvmconfig(runner.read(sanlock.CONFIG_ARGV, what='reading the lvmlockd settings')[1])
    services = sanlock.parse_is_active(runner.read(sanlock.SERVICES_ARGV, ok_rcs=(0, 3, 4))[1])
    errors = sanlock.setup_errors(config, services) if daemons_matter else sanlock.config_errors(config)
    return config, services, errors


def refuse_unready(module, errors):
    module.fail_json(msg='this host is not ready for a sanlock VG: ' + '; '.join(errors), errors=errors, commands=[])


def plan_or_refuse(module, planned, vg, lvs, lockspace):
    """The planner's result, or the run fails with its refusal and the state it read."""
    try:
        return planned()
    except Refusal as refusal:
        vg_facts, lv_facts = facts(vg, lvs)
        module.fail_json(msg=str(refusal), reasons=refusal.reasons, commands=[], vg=vg_facts,
                         lockspace=lockspace, lvs=lv_facts)


def apply_and_report(module, runner, name, host_id, read, actions, expected, verify=None, **extra):
    """Apply the plan, read the VG back when it changed something, and report (ends the run).

    ``read`` is the (vg, lvs, lockspace) the plan was made from; ``extra`` goes into the result.
    ``verify(expected, lvs)``, given, lists what the read-back shows wrong; the run then fails with it.
    """
    vg, lvs, lockspace = read
    before = sanlock.view(vg, lvs, lockspace)
    changed = runner.apply(actions, explain=sanlock.explain_failure)
    if changed and not module.check_mode:
        planned = expected
        vg, lvs, status = read_state(runner, name)
        lockspace = sanlock.lockspace_facts(name, status, host_id)
        expected = sanlock.view(vg, lvs, lockspace)
        wrong = verify(planned, lvs) if verify else []
        if wrong:
            vg_facts, lv_facts = facts(vg, lvs)
            module.fail_json(msg='the recovery of %s ran, but %s; a lease that stays ORPHAN is still this host\'s '
                                 'in sanlock, so no other host can take its LV. Check sanlock client status and '
                                 'journalctl -u lvmlockd, then stop what uses the VG, reboot this host (which drops '
                                 'its leases) and run the recovery again' % (name, '; '.join(wrong)),
                             reasons=wrong, commands=runner.commands, vg=vg_facts, lockspace=lockspace, lvs=lv_facts,
                             **extra)
    vg_facts, lv_facts = facts(vg, lvs)
    result = dict(extra, changed=changed, vg=vg_facts, lockspace=lockspace, lvs=lv_facts, commands=runner.commands)
    if module._diff:
        result['diff'] = diff_result(before, expected)
    module.exit_json(**result)


def recover(module, runner, spec):
    """state=recovered: read what the lock state and an unfinished earlier run left, plan, apply, report."""
    with host_lock(module):
        # Lock daemons that are down are what a recovery repairs; the host's own settings are not.
        config, services, errors = read_setup(runner, daemons_matter=False)
        if errors:
            refuse_unready(module, errors)
        vg, lvs, status = read_state(runner, spec['name'], sanlock_may_be_down=True)
        lockspace = sanlock.lockspace_facts(spec['name'], status, config['host_id'])
        consumer_states = {}
        if spec['consumers']:
            out = runner.read(['systemctl', 'is-active'] + spec['consumers'], ok_rcs=None)[1]
            consumer_states = sanlock.parse_is_active(out, units=spec['consumers'])
        path = sanlock.recovery_record_path(spec['name'])
        lvm_version = None
        if services.get('lvmlockd') != 'active' or any(lv['orphan'] for lv in lvs):
            # whether lvm2 can adopt the orphaned leases in place (only read when there may be some)
            lvm_version = sanlock.parse_lvm_version(runner.read(sanlock.LVM_VERSION_ARGV, ok_rcs=None)[1])

        def planned():
            record = sanlock.parse_recovery_record(read_text(path), path)
            return sanlock.plan_recovery(
                spec, vg, lvs, lockspace, services, record, read_text(sanlock.SANLOCK_DEFAULTS), consumer_states,
                lvm_version, daemon=status.get('daemon'))

        actions, expected, reasons = plan_or_refuse(module, planned, vg, lvs, lockspace)
        apply_and_report(module, runner, spec['name'], config['host_id'], (vg, lvs, lockspace), actions, expected,
                         verify=sanlock.recovery_problems, problems=reasons)


def run(module):
    """Read, plan, apply, report: the whole sanlock_vg module."""
    spec, errors = sanlock.spec_of(module.params)
    missing = ['pvs[%d]=%r does not exist on this host; check that the LUN is visible (multipath -ll) and the '
               'path is its alias' % (index, device) for index, device in enumerate(spec['pvs'])
               if not os.path.exists(device)]
    # In check mode a missing device may be a LUN an earlier task logs in to: predicted below.
    if errors or missing and not (module.check_mode and spec['state'] in sanlock.PREDICTED_STATES):
        errors += missing
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])

    # A recovery repairs lock state that exists: without the tools it is refused in check mode too.
    tools = require_tools(module, sanlock.TOOLS, 'no volume group, no lockspace and no lock daemon',
                          predict=spec['state'] != 'recovered')
    runner = Runner(module)
    if spec['state'] == 'query':
        # Read-only and used to diagnose a stuck host: it does not wait for the host lock.
        config, services, errors = read_setup(runner, missing=tools)
        vg, lvs, status = read_state(runner, spec['name'], sanlock_may_be_down=True, missing=tools)
        vg_facts, lv_facts = facts(vg, lvs)
        lockspace = sanlock.lockspace_facts(spec['name'], status, config.get('host_id'))
        lost = sanlock.lease_problem(lockspace, lvs)
        module.exit_json(changed=False, vg=vg_facts, lvs=lv_facts, problems=errors + ([lost] if lost else []),
                         commands=[], lockspace=lockspace)

    if spec['state'] == 'recovered':
        recover(module, runner, spec)

    # Everything that decides what to change is read under the host lock.
    with host_lock(module):
        config, services, errors = read_setup(runner, missing=tools)
        # Without lvm2 no VG is seen: state=present plans its creation from nothing. Other states, and
        # a host with lvm2 but not the lock daemons, get the prediction without a plan.
        planned_from_nothing = 'lvmconfig' in tools and spec['state'] == 'present'
        prediction = None
        if module.check_mode and not planned_from_nothing:
            prediction = sanlock.check_mode_prediction(spec, errors + missing)
        if prediction:
            module.warn(prediction)
            module.exit_json(changed=True, ready=False, problems=errors + missing, vg={}, lvs={}, commands=[],
                             lockspace=sanlock.lockspace_facts(spec['name'], dict(lockspaces={}), config.get('host_id')))
        for message in missing if planned_from_nothing else []:
            module.warn('check mode: %s; predicted as logged in to by an earlier task of this run' % message)
        if errors and not planned_from_nothing:
            refuse_unready(module, errors)
        host_id = config.get('host_id')
        vg, lvs, status = read_state(runner, spec['name'], missing=tools)
        lockspace = sanlock.lockspace_facts(spec['name'], status, host_id)
        other_hosts = []
        if spec['state'] == 'absent' and vg and lockspace['joined']:
            out = runner.read(['sanlock', 'client', 'host_status', '-s', lockspace['name']])[1]
            other_hosts = [h for h, stamp in sanlock.parse_host_status(out).items() if h != host_id and stamp]
        # sanlock's watchdog setting first: a restart it needs is safe only before the lock-start below
        pre, warning = sanlock.watchdog_plan(spec['watchdog'], read_text(sanlock.SANLOCK_DEFAULTS), status)
        if warning:
            module.warn(warning)
        refusals = []
        if spec['state'] == 'present' and not vg:
            refusals, devices = device_actions(module, runner, spec, lvm_missing='lvmconfig' in tools)
            pre += devices

        def planned():
            if refusals:
                raise Refusal(refusals)
            return sanlock.plan(spec, vg, lvs, lockspace, other_hosts)

        actions, expected = plan_or_refuse(module, planned, vg, lvs, lockspace)
        apply_and_report(module, runner, spec['name'], host_id, (vg, lvs, lockspace), pre + actions, expected)
