# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tgt_target module's run: the readers of this host's conf.d files, secrets record and LUN
paths, and read -> plan -> apply -> report around the pure planner of ``tgt.py``."""

from __future__ import annotations

import glob
import os
import stat

from ansible_collections.openblock.storage.plugins.module_utils.iscsi import device_usage
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    Action, FileWrite, Runner, diff_result, host_lock, private_dir_problem, refuse_bad_input, require_tools,
    write_atomically)
from ansible_collections.openblock.storage.plugins.module_utils.tgt import (
    CONF_DIR, CONF_PREFIX, RECORD_PATH, SHOW_ACCOUNTS, SHOW_TARGETS, TGT_TOOLS, TGT_UNIT, TGTD_NOT_RUNNING_RC,
    TGTD_PID_ARGV, Refusal, conf_path,
    desired_view, iothreads_error, iothreads_running, iothreads_step, known_record, owned_view, parse_accounts,
    parse_conf, parse_show, plan_targets, record_text, records_after, records_voided, target_view, validate_targets)

# tgtd makes its control socket anew at each start: its identity names the running tgtd.
TGTD_SOCKET = '/run/tgtd/socket.0'


def read_managed_files():
    """iqn -> {path, text, secrets} of every conf.d file this module wrote."""
    files = {}
    for path in sorted(glob.glob('%s/%s*.conf' % (CONF_DIR, CONF_PREFIX))):
        with open(path) as handle:
            text = handle.read()
        parsed = parse_conf(text)
        if parsed is not None and conf_path(parsed['iqn']) == path:
            files[parsed['iqn']] = dict(path=path, text=text, secrets=parsed['secrets'])
    return files


def tgtd_instance():
    """The running tgtd, as the identity of its control socket; None when it cannot be told."""
    try:
        st = os.stat(TGTD_SOCKET)
    except OSError:
        return None
    return '%d:%d' % (st.st_ino, st.st_ctime_ns)


def read_record(instance):
    """The accounts of the secrets record when it describes tgtd ``instance``, else None (fail
    closed: a file that is a link, not root's own or readable by others is not believed)."""
    if instance is None or not private_dir_problem(os.path.dirname(RECORD_PATH)) is None:
        return None
    try:
        fd = os.open(RECORD_PATH, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        return known_record(handle.read(), instance)


def write_record(instance, accounts):
    """Write the secrets record (hashes only, 0600, atomically); False when it cannot be."""
    directory = os.path.dirname(RECORD_PATH)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    if private_dir_problem(directory):
        return False
    try:
        write_atomically(RECORD_PATH, record_text(instance, accounts), mode=0o600)
    except OSError:
        return False
    return True


def size_of(path):
    """Size in bytes of a backing file or block device, or None when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def backing_size(lun, check_mode):
    """The size a LUN's backing device has, in bytes (None when it cannot be read). In check mode a
    device smaller than the LUN's declared ``size`` counts at that size: an earlier task of the run
    (the volume's lvextend) grows it."""
    size = size_of(lun['path'])
    if check_mode and lun['declared_size'] is not None and (size is None or size < lun['declared_size']):
        return lun['declared_size']
    return size


def lun_where(target, lun_index, lun):
    """How an error names a LUN's path: the option and the value."""
    return 'targets[%d].luns[%d].path=%r' % (target['index'], lun_index, lun['path'])


def missing_paths(targets):
    """(LUN paths that do not exist, other unusable paths) as error messages, and the LUNs backed by
    a block device as (target, lun index, lun), for paths_in_use."""
    absent, errors, devices = [], [], []
    for target in targets:
        for lun_index, lun in enumerate(target['luns']):
            where = lun_where(target, lun_index, lun)
            if not os.path.exists(lun['path']):
                absent.append(where + ' does not exist; create the volume or file first')
            elif os.path.isdir(lun['path']):
                errors.append(where + ' is a directory; give a file or a block device')
            elif stat.S_ISBLK(os.stat(lun['path']).st_mode):
                devices.append((target, lun_index, lun))
    return absent, errors, devices


def paths_in_use(devices, live):
    """Of the block-device LUNs ``devices``, those a LUN would newly export that something on this
    host uses, as error messages.

    One that the live target already exports as that LUN was checked when it was added, so a
    no-op run does not look at every device again.
    """
    errors = []
    for target, lun_index, lun in devices:
        if live.get(target['iqn'], {}).get('luns', {}).get(lun['lun'], {}).get('path') == lun['path']:
            continue
        usage = device_usage(os.path.basename(os.path.realpath(lun['path'])), sys_block='/sys/class/block')
        if usage:
            errors.append(lun_where(target, lun_index, lun) + ' is in use on this host (%s); export a device '
                          'nothing here uses (unmount it or stop what holds it first)' % '; '.join(usage))
    return errors


def read_iothreads(module, runner):
    """The I/O threads per LUN of the running tgtd (None: its default)."""
    pid = runner.read(TGTD_PID_ARGV, what='reading the pid of tgtd')[1].strip()
    try:
        with open('/proc/%s/cmdline' % pid) as handle:
            return iothreads_running(handle.read())
    except (OSError, ValueError) as error:
        module.fail_json(msg='cannot tell the I/O threads of the running tgtd (%s has MainPID %r: %s); start '
                             'tgtd through %s and re-run' % (TGT_UNIT, pid, error, TGT_UNIT), commands=runner.commands)


def converge_iothreads(module, runner, wanted, live):
    """Restart tgtd with ``wanted`` I/O threads per LUN while it exports no target (its unit's ExecStart
    must pass them: the storage_node role's drop-in does), or warn. Returns (restarted, live)."""
    restart, warning = iothreads_step(wanted, read_iothreads(module, runner), live)
    if warning:
        module.warn(warning)
    if not restart:
        return False, live
    runner.apply([Action(['systemctl', 'restart', TGT_UNIT],
                         'restart tgtd with %d I/O threads per LUN while it exports no target' % wanted)])
    if module.check_mode:
        return True, live
    running = read_iothreads(module, runner)
    if running != wanted:
        module.fail_json(msg='iothreads=%d: tgtd restarted with %s I/O threads per LUN, since %s does not pass '
                             '--nr_iothreads %d to tgtd; give it in a drop-in of the unit (the storage_node role '
                             'writes one) and re-run' % (wanted, running or 'its default of 16', TGT_UNIT, wanted),
                         changed=True, commands=runner.commands)
    return True, parse_show(runner.read(SHOW_TARGETS, what='reading tgt targets')[1])


def run(module):
    """Read, plan, apply, report: the whole tgt_target module."""
    params = module.params
    desired, errors = validate_targets(params['targets'])
    wanted = set(t['iqn'] for t in desired)
    absent, path_errors, devices = missing_paths([t for t in desired if t['state'] == 'present'])
    if module.check_mode:
        # A task before this one may create the volumes in this run: warn, and predict the rest.
        for error in absent:
            module.warn('check mode: ' + error)
    else:
        errors += absent
    errors += path_errors
    error = iothreads_error(params['iothreads'])
    if error:
        errors.append(error)
    refuse_bad_input(module, errors)
    nothing_live = 'no targets and no accounts'  # what check mode predicts from without a tgtd
    missing = require_tools(module, TGT_TOOLS, nothing_live)

    runner = Runner(module)
    with host_lock(module):
        live, tgtd_down = {}, bool(missing)
        if not missing:
            # In check mode a stopped tgtd is what an earlier task of the run (the role's service
            # task) starts: predict from no targets, as without tgt. Otherwise it is an error.
            rc, out, err = runner.read(SHOW_TARGETS, what='reading tgt targets',
                                       ok_rcs=(0, TGTD_NOT_RUNNING_RC) if module.check_mode else (0,))
            tgtd_down = rc == TGTD_NOT_RUNNING_RC
            if tgtd_down:
                module.warn('check mode: no tgtd answers (%s); predicted as after an earlier task of this run '
                            'starts %s, from %s' % (err.strip(), TGT_UNIT, nothing_live))
            else:
                live = parse_show(out)
        restarted = False
        # Without a tgtd there is none to restart: the one the package and the role start has the count.
        if params['iothreads'] is not None and not tgtd_down:
            restarted, live = converge_iothreads(module, runner, params['iothreads'], live)
        errors = paths_in_use(devices, live)
        refuse_bad_input(module, errors)
        for target in desired:
            for lun in target['luns']:
                lun['size'] = backing_size(lun, module.check_mode)
        files = read_managed_files()
        instance = tgtd_instance()
        records = read_record(instance)
        options = dict(exclusive=params['exclusive'], force=params['force'], persist=params['persist'],
                       records=records, resize_in_use=params['resize_in_use'], expect_logouts=module.check_mode)
        plan = plan_targets(desired, live, files, **options)
        if plan.needs_accounts:
            accounts = set() if tgtd_down else parse_accounts(runner.read(SHOW_ACCOUNTS, what='reading tgt accounts')[1])
            plan = plan_targets(desired, live, files, accounts=accounts, **options)
        for warning in plan.warnings:
            module.warn(warning)
        if plan.refusals:
            error = Refusal(plan.refusals)
            module.fail_json(msg='refused, nothing was changed: ' + str(error), reasons=error.reasons, commands=[])

        touched = [t['iqn'] for t in desired] + (
            [iqn for iqn in files if iqn not in wanted] if params['exclusive'] else [])
        before = dict((iqn, owned_view(live.get(iqn))) for iqn in touched) if module._diff else None
        if not module.check_mode and (plan.rekeyed or plan.deleted_users) and instance is not None:
            # Void the entries of the accounts this run touches first: should it stop half-way,
            # the next run sets their secrets again rather than trust an old entry.
            if not write_record(instance, records_voided(records, plan)):
                module.fail_json(msg='cannot write %s (the hashes of the CHAP secrets set), nothing was changed; '
                                     'make /run/openblock-storage a directory only root can write and re-run'
                                 % RECORD_PATH, commands=[])
        changed = runner.apply(plan.actions, explain=lambda action, rc, output: plan.blocked_advice(action)) or restarted
        if not module.check_mode and instance is not None:
            recorded = records_after(records, desired, plan, lambda: os.urandom(16).hex())
            if recorded != (records or {}) and not write_record(instance, recorded):
                module.warn('could not write %s: the next run sets the CHAP secrets again' % RECORD_PATH)
        if any(not isinstance(a, FileWrite) for a in plan.actions) and not module.check_mode:
            live = parse_show(runner.read(SHOW_TARGETS, what='reading tgt targets')[1])

    results = []
    for target in desired:
        if target['iqn'] in live and (params['report'] == 'all' or target['iqn'] in plan.changed_iqns):
            view = target_view(live[target['iqn']], size_of)
            path = conf_path(target['iqn'])
            view['conf_file'] = path if os.path.exists(path) else None
            results.append(view)
    result = dict(changed=changed, targets=results, commands=runner.commands,
                  files=dict(written=sorted(plan.writes), removed=sorted(plan.removals)))
    if module._diff:
        if module.check_mode:
            after = dict(before)
            after.update((t['iqn'], desired_view(t)) for t in desired)
            after.update((iqn, None) for iqn in touched if iqn not in wanted)
        else:
            after = dict((iqn, owned_view(live.get(iqn))) for iqn in touched)
        result['diff'] = diff_result(before, after)
    module.exit_json(**result)
