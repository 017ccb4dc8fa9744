# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LVM for the collection: JSON report readers, the device signature probe, name rules, planners.

State is read with one JSON report per object kind (``vgs``, ``pvs``, ``lvs`` with
``--reportformat json --units b --nosuffix``), so every size is an exact byte count. The
planners (``plan_vg``, ``plan_thin``) are pure: they take what the readers returned and the
validated input, and return the ordered ``Action`` list plus the state expected afterwards, or
raise ``Refusal`` naming every destructive or impossible step the input asked for.
"""

from __future__ import annotations

import copy
import json
import os
import re

from ansible_collections.openblock.storage.plugins.module_utils.devices import devices_usage
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    Action, Runner, diff_result, host_lock, require_tools)
from ansible_collections.openblock.storage.plugins.module_utils.sizes import (
    SizeError, human, parse_percent, parse_size, round_up)

VG_FIELDS = ('vg_name', 'vg_uuid', 'vg_attr', 'vg_size', 'vg_free', 'vg_extent_size',
             'vg_extent_count', 'vg_free_count', 'pv_count', 'lv_count')
PV_FIELDS = ('pv_name', 'vg_name', 'pv_uuid', 'dev_size', 'pv_size', 'pe_start', 'pv_free', 'pv_pe_count',
             'pv_pe_alloc_count')
LV_FIELDS = ('lv_name', 'lv_attr', 'lv_size', 'pool_lv', 'origin', 'lv_path', 'data_percent',
             'metadata_percent', 'chunk_size', 'lv_metadata_size', 'zero', 'discards')
# Report fields that hold a byte or extent count; everything else stays a string.
INT_FIELDS = frozenset(('vg_size', 'vg_free', 'vg_extent_size', 'vg_extent_count', 'vg_free_count',
                        'pv_count', 'lv_count', 'dev_size', 'pv_size', 'pe_start', 'pv_free', 'pv_pe_count',
                        'pv_pe_alloc_count', 'lv_size', 'chunk_size', 'lv_metadata_size'))

# lvm2 lib/misc/lvm-string.c: the characters of a VG or LV name, and what LVM keeps for itself.
_NAME_RE = re.compile(r'^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$')
NAME_MAX = 127
RESERVED_PREFIXES = ('snapshot', 'pvmove')
RESERVED_PARTS = ('_cdata', '_cmeta', '_corig', '_cpool', '_cvol', '_iorig', '_mimage', '_mlog',
                  '_pmspare', '_rimage', '_rmeta', '_tdata', '_tmeta', '_vdata', '_vorigin', '_wcorig')
DISCARDS = ('ignore', 'nopassdown', 'passdown')
# The command behind every LVM command (vgs, lvs, pvs, lvmconfig are links to it), and its package.
LVM_TOOLS = {'lvm': 'lvm2'}
# Thin pools are checked and repaired by thin_check and friends at activation.
THIN_TOOLS = dict(LVM_TOOLS, thin_check='thin-provisioning-tools')
# Cinder's max_over_subscription_ratio default: thin volumes may add up to 20 times their pool's size.
MAX_OVER_SUBSCRIPTION_RATIO = 20.0
# Pool data or metadata usage (percent) lvm_thinvol warns at unless told another threshold.
USAGE_WARNING_THRESHOLD = 80


class Refusal(Exception):
    """The plan would destroy data or cannot be carried out; ``reasons`` say why and what to do."""

    def __init__(self, reasons):
        super(Refusal, self).__init__('; '.join(reasons))
        self.reasons = list(reasons)


# ---------------------------------------------------------------------------------------------
# Reading

def report_argv(command, fields, *args):
    """argv of an LVM report command with exact byte sizes in JSON."""
    return [command, '--reportformat', 'json', '--units', 'b', '--nosuffix',
            '-o', ','.join(fields)] + list(args)


def parse_report(text, kind):
    """Rows of a JSON report (``kind`` is ``vg``, ``pv`` or ``lv``), counts and sizes as ints.

    Not-applicable values (``""``) become None. A ``log`` section (lvm2 >= 2.03.26) is skipped.
    """
    try:
        sections = json.loads(text)['report']
    except (ValueError, KeyError, TypeError):
        raise ValueError('LVM printed no JSON report: %r' % text[:300])
    rows = []
    for section in sections:
        for row in section.get(kind, []):
            rows.append(dict((key, _value(key, value)) for key, value in row.items()))
    return rows


def _value(key, value):
    if value == '':
        return None
    if key in INT_FIELDS:
        return int(value)
    return value


def vg_report_argv(name):
    """The ``vgs`` of VG ``name`` alone (empty report, exit 0, when it does not exist)."""
    return report_argv('vgs', VG_FIELDS, '--select', 'vg_name=%s' % name)


def lv_report_argv(vg):
    """The ``lvs`` of every visible LV of ``vg``."""
    return report_argv('lvs', LV_FIELDS, vg)


def read_vg(runner, name):
    """The report row of VG ``name``, or None when no such VG exists (one ``vgs``)."""
    rows = parse_report(runner.read(vg_report_argv(name), what='reading volume group %s' % name)[1], 'vg')
    return rows[0] if rows else None


def read_pvs(runner):
    """Every PV the host sees (one ``pvs``)."""
    return parse_report(runner.read(report_argv('pvs', PV_FIELDS), what='reading physical volumes')[1], 'pv')


def read_lvs(runner, vg):
    """Every visible LV of ``vg`` (one ``lvs``); hidden pool sub-LVs are not listed."""
    return parse_report(runner.read(lv_report_argv(vg), what='reading logical volumes of %s' % vg)[1], 'lv')


def name_holders(lvs, usage=devices_usage):
    """Add ``held_by`` to each open LV row: what holds its device-mapper device (a process with the
    device open, a holder, a mount or swap), so a refusal can name it. LVM's open flag decides;
    this only names. ``usage`` is devices.devices_usage (a stub in tests)."""
    held = dict((lv['lv_name'], os.path.basename(os.path.realpath(lv['lv_path'])))
                for lv in lvs if _is_open(lv) and lv.get('lv_path'))
    found = usage(sorted(set(held.values()))) if held else {}
    for lv in lvs:
        if lv['lv_name'] in held:
            lv['held_by'] = found.get(held[lv['lv_name']], [])
    return lvs


def converge_lvs(module, spec, plan, view, facts, predicted, tools=None):
    """Read VG ``spec['vg']`` and its LVs, plan, apply, re-read, and exit the module with the result.

    The body that lvm_thinvol and lvm_thickvol share: ``plan(vg, lvs)`` returns ``(actions, expected
    view)`` or raises Refusal, ``view(lvs)`` is what diff mode shows, ``facts(lvs)`` the objects the
    module returns (their volumes cut to the changed ones by the module's ``report`` option,
    plan.REPORT_OPTION); ``predicted`` says what check mode would do once a VG that does not exist yet
    (an earlier task may create it in this run) is there, with %d for the number of ``spec['volumes']``
    to create; with none, it would do nothing (volumes to remove: a new VG has none). ``tools`` are
    the commands it needs
    (plan.require_tools; LVM_TOOLS when None): in check mode without lvm2 no VG exists yet.
    """
    def returned(lvs, changed_names):
        """The facts, with only the volumes in ``changed_names`` unless the task asks for report=all."""
        found = facts(lvs)
        if module.params['report'] != 'all':
            found['volumes'] = dict((name, v) for name, v in found['volumes'].items() if name in changed_names)
        return found

    vg_name = spec['vg']
    runner = Runner(module)
    missing = require_tools(module, tools or LVM_TOOLS, 'no volume group and no logical volumes')
    with host_lock(module):
        vg = None if 'lvm' in missing else read_vg(runner, vg_name)
        if not vg and module.check_mode:
            created = sum(1 for volume in spec['volumes'] if volume['state'] == 'present')
            if not created:
                module.exit_json(changed=False, commands=[], msg='check mode: vg=%r does not exist yet, so neither '
                                 'do the volumes to remove' % vg_name)
            module.exit_json(changed=True, commands=[], msg='check mode: vg=%r does not exist yet; once it does, %s'
                             % (vg_name, predicted % created))
        if not vg:
            module.fail_json(msg='vg=%r: no such volume group; create it first with openblock.storage.lvm_vg'
                                 % vg_name, commands=[])
        lvs = name_holders(read_lvs(runner, vg_name))
        if module.check_mode:
            removed = set(volume['name'] for volume in spec['volumes'] if volume['state'] == 'absent')
            for lv in lvs:
                if lv['lv_name'] in removed and _exported_only(lv):
                    # The storage_node role removes a volume's target (tgt_target) before the volume.
                    module.warn('check mode: %s/%s is open by tgtd only (%s); predicted as after an earlier task of '
                                'this run removes its target' % (vg_name, lv['lv_name'], '; '.join(lv['held_by'])))
                    lv['lv_attr'] = lv['lv_attr'][:5] + '-' + lv['lv_attr'][6:]
        before = view(lvs)
        try:
            actions, expected = plan(vg, lvs)
        except Refusal as refusal:
            module.fail_json(msg=str(refusal), reasons=refusal.reasons, commands=[], **returned(lvs, ()))
        changed = runner.apply(actions, fail_extra=dict(vg=vg_name))
        if changed and not module.check_mode:
            lvs = read_lvs(runner, vg_name)
            expected = view(lvs)

    changed_names = set(name for name in set(before['volumes']) | set(expected['volumes'])
                        if before['volumes'].get(name) != expected['volumes'].get(name))
    result = dict(changed=changed, commands=runner.commands, **returned(lvs, changed_names))
    if module._diff:
        result['diff'] = diff_result(before, expected)
    module.exit_json(**result)


def signature_argv(device):
    """``wipefs`` in no-act mode lists every signature libblkid finds (filesystem, RAID, LVM, table)."""
    return ['wipefs', '--no-act', '--json', device]


def parse_signatures(text):
    """Signature types (``ext4``, ``LVM2_member``, ``gpt``...) from ``wipefs --json``; empty output means none."""
    if not text.strip():
        return []
    return [entry.get('type') or 'unknown' for entry in json.loads(text).get('signatures', [])]


# ---------------------------------------------------------------------------------------------
# Input rules

def name_error(name, option, lv=False):
    """Why ``name`` cannot be a VG (or, with ``lv``, an LV) name, or None."""
    if not isinstance(name, str) or not name:
        return '%s=%r is empty; give a name' % (option, name)
    if len(name) > NAME_MAX:
        return '%s=%r is longer than the %d characters LVM allows' % (option, name, NAME_MAX)
    if name in ('.', '..') or not _NAME_RE.match(name):
        return ('%s=%r is not a valid LVM name; use letters, digits and + _ . - '
                '(not starting with -)' % (option, name))
    if lv:
        for prefix in RESERVED_PREFIXES:
            if name.startswith(prefix):
                return '%s=%r starts with %r, which LVM reserves; choose another name' % (option, name, prefix)
        for part in RESERVED_PARTS:
            if part in name:
                return '%s=%r contains %r, which LVM reserves for hidden LVs; choose another name' % (option, name, part)
    return None


def _size(value, option, errors):
    """Byte count of ``value`` (None stays None); a bad value adds an error and returns None."""
    if value is None:
        return None
    try:
        return parse_size(value, option)
    except SizeError as err:
        errors.append(str(err))
        return None


def _power_of_two_error(size, option, value, minimum):
    if size is not None and (size < minimum or size & (size - 1)):
        return '%s=%r must be a power of two of at least %s' % (option, value, human(minimum))
    return None


def vg_spec(params):
    """Validated lvm_vg input, and the list of every error found in it."""
    errors = []
    error = name_error(params['name'], 'name')
    if error:
        errors.append(error)
    pesize = _size(params.get('pesize'), 'pesize', errors)
    error = _power_of_two_error(pesize, 'pesize', params.get('pesize'), 1024)
    if error:
        errors.append(error)
    devices = params.get('pvs') or []
    if params['state'] == 'present' and not devices:
        errors.append('pvs=%r: state=present needs at least one device; list the devices of the VG'
                      % (params.get('pvs'),))
    for index, device in enumerate(devices):
        if not isinstance(device, str) or not device.startswith('/dev/'):
            errors.append('pvs[%d]=%r is not a device path; give a path under /dev/, for example '
                          '/dev/disk/by-id/...' % (index, device))
    if len(set(devices)) != len(devices):
        errors.append('pvs=%r names a device twice; list each device once' % (devices,))
    spec = dict(name=params['name'], state=params['state'], pvs=list(devices), pesize=pesize,
                pvresize=bool(params.get('pvresize')), reduce=bool(params.get('reduce')),
                force=bool(params.get('force')))
    return spec, errors


def _listed_volume(item, index, seen, errors, percent_note, pool=None):
    """``(where, name, size in bytes or None)`` of ``volumes[index]``; adds its errors to ``errors``.

    ``seen`` collects the names so far (a name listed twice is an error); ``percent_note`` says why
    percent sizes do not apply; ``pool`` is a name no volume may take.
    """
    where = 'volumes[%d]' % index
    name = item.get('name')
    error = name_error(name, where + '.name', lv=True)
    if error:
        errors.append(error)
    elif pool is not None and name == pool:
        errors.append('%s.name=%r is the pool itself; a volume needs its own name' % (where, name))
    elif name in seen:
        errors.append('%s.name=%r is listed twice; list each volume once' % (where, name))
    seen.add(name)
    size = item.get('size')
    if size is not None and '%' in str(size):
        errors.append('%s.size=%r: percent sizes do not apply to %s; give bytes with a unit, for example 10G'
                      % (where, size, percent_note))
        return where, name, None
    size = _size(size, where + '.size', errors)
    if size == 0:
        errors.append('%s.size=%r is zero; give the volume a size' % (where, item.get('size')))
    return where, name, size


def ratio_error(value, option):
    """Why ``value`` (a number, or a string of one from an inventory) is not an over-subscription ratio, or None."""
    try:
        ratio = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        ratio = None
    if ratio is None or not 1 <= ratio < float('inf'):
        return ('%s=%r is not a ratio of at least 1.0 (as Cinder requires); give the most virtual size the pool '
                'may hold per byte of its own size, for example 20.0' % (option, value))
    return None


def thin_spec(params):
    """Validated lvm_thinvol input, and the list of every error found in it."""
    errors = []
    for option, lv in (('vg', False), ('pool', True)):
        error = name_error(params[option], option, lv=lv)
        if error:
            errors.append(error)

    size = params.get('size')
    pool_size = None
    if size is not None:
        percent = parse_percent(size)
        if percent:
            pool_size = percent
        elif '%' in str(size):
            errors.append('size=%r is not a size; write bytes with a unit (100G) or NN%%VG / NN%%FREE '
                          'with 0 < NN <= 100' % (size,))
        else:
            pool_size = _size(size, 'size', errors)
            if pool_size == 0:
                errors.append('size=%r is zero; give the pool a size' % (size,))
    chunksize = _size(params.get('chunksize'), 'chunksize', errors)
    # lvm2 thin pools: chunk size 64KiB..1GiB, a multiple of 64KiB.
    if chunksize is not None and (chunksize < 65536 or chunksize > (1 << 30) or chunksize % 65536):
        errors.append('chunksize=%r must be a multiple of 64KiB between 64KiB and 1GiB' % (params.get('chunksize'),))
    metadata_size = _size(params.get('metadata_size'), 'metadata_size', errors)

    volumes = []
    seen = set()
    for index, item in enumerate(params.get('volumes') or []):
        where, name, vsize = _listed_volume(item, index, seen, errors, 'thin volumes (their size is virtual)',
                                            pool=params['pool'])
        origin = item.get('snapshot_of')
        if origin is not None:
            error = name_error(origin, where + '.snapshot_of', lv=True)
            if error:
                errors.append(error)
            elif origin == name:
                errors.append('%s.snapshot_of=%r is the volume itself' % (where, origin))
        volumes.append(dict(name=name, size=vsize, state=item.get('state') or 'present',
                            snapshot_of=origin, active=item.get('active', True) is not False,
                            where=where))
    ratio = params.get('max_over_subscription_ratio', MAX_OVER_SUBSCRIPTION_RATIO)
    error = ratio_error(ratio, 'max_over_subscription_ratio')
    if error:
        errors.append(error)
    warn_at = params.get('usage_warning_threshold', USAGE_WARNING_THRESHOLD)
    if isinstance(warn_at, bool) or not isinstance(warn_at, int) or not 1 <= warn_at <= 100:
        errors.append('usage_warning_threshold=%r is not a percent from 1 to 100; give the pool usage to warn '
                      'at, for example 80' % (warn_at,))
    spec = dict(vg=params['vg'], pool=params['pool'], size=pool_size, size_text=size,
                chunksize=chunksize, metadata_size=metadata_size, zero=params.get('zero'),
                discards=params.get('discards'), volumes=volumes, purge=bool(params.get('purge')),
                force=bool(params.get('force')), max_ratio=ratio, warn_at=warn_at)
    return spec, errors


# ---------------------------------------------------------------------------------------------
# Volume group

def pv_device(pv):
    """The resolved device path of a PV row (the module adds ``device``; LVM's name otherwise)."""
    return pv.get('device') or pv['pv_name']


def vg_facts(vg, pvs):
    """The VG as the module returns it: sizes in bytes, its PVs; {} when it does not exist."""
    if not vg:
        return {}
    members = [pv for pv in pvs if pv.get('vg_name') == vg['vg_name']]
    return dict(name=vg['vg_name'], uuid=vg['vg_uuid'], attr=vg['vg_attr'], size=vg['vg_size'],
                free=vg['vg_free'], extent_size=vg['vg_extent_size'],
                extent_count=vg['vg_extent_count'], free_count=vg['vg_free_count'],
                pv_count=vg['pv_count'], lv_count=vg['lv_count'],
                pvs=[dict(name=pv['pv_name'], size=pv['pv_size'], free=pv['pv_free'],
                          dev_size=pv['dev_size'], used_extents=pv['pv_pe_alloc_count'])
                     for pv in members])


def vg_view(vg, pvs, devices):
    """What diff mode shows of a VG: its extent size and the extent count of each device.

    Devices are named as the user gave them (``devices``: resolved path -> given path).
    """
    if not vg:
        return {}
    return dict(name=vg['vg_name'], extent_size=vg['vg_extent_size'],
                pvs=dict((devices.get(pv_device(pv), pv['pv_name']), pv['pv_pe_count'])
                         for pv in pvs if pv.get('vg_name') == vg['vg_name']))


def plan_vg(spec, vg, pvs, devices, signatures, in_use=None):
    """Actions that bring VG ``spec['name']`` to ``spec``, and the diff view expected after them.

    ``vg``: its report row or None; ``pvs``: every PV row; ``devices``: resolved path -> path as the
    user gave it, in the user's order; ``signatures``: resolved path -> signature types, for the
    devices that are not PVs yet; ``in_use``: resolved path -> why a device that is not a PV yet is
    in use (mounted, held by device-mapper or md, swap), refused even with force.
    """
    name, force = spec['name'], spec['force']
    refusals = []
    actions = []
    pv_by_device = dict((pv_device(pv), pv) for pv in pvs)
    members = [pv for pv in pvs if vg and pv.get('vg_name') == name]

    if spec['state'] == 'absent':
        if not vg:
            return actions, {}
        if vg['lv_count'] and not force:
            raise Refusal(['volume group %s holds %d logical volume(s); set force=true to remove it '
                           'with all of them' % (name, vg['lv_count'])])
        actions.append(Action(['vgremove', '--force', name] if vg['lv_count'] else ['vgremove', name],
                              'remove volume group %s' % name))
        labels = [pv['pv_name'] for pv in members]
        if labels:
            actions.append(Action(['pvremove'] + labels, 'remove the LVM labels of %s' % ', '.join(labels)))
        return actions, {}

    new = []  # resolved paths of the devices to add
    for device, given in devices.items():
        pv = pv_by_device.get(device)
        owner = pv.get('vg_name') if pv else None
        if owner and owner != name:
            refusals.append('pvs: %s is a physical volume of volume group %s; a device belongs to one VG '
                            '(remove it from %s first)' % (given, owner, owner))
            continue
        if pv is None and (in_use or {}).get(device):
            refusals.append('pvs: %s is in use on this host (%s); unmount it or stop what holds it, or choose '
                            'another device (force does not override this)' % (given, '; '.join(in_use[device])))
            continue
        if pv is None and signatures.get(device):
            if not force:
                refusals.append('pvs: %s carries %s signature(s) and may hold data; wipe it yourself or set '
                                'force=true to erase the signatures' % (given, ', '.join(signatures[device])))
            actions.append(Action(['wipefs', '--all', given], 'erase the %s signature(s) on %s'
                                  % (', '.join(signatures[device]), given)))
        if owner != name:
            new.append(device)

    if vg and spec['pesize'] and spec['pesize'] != vg['vg_extent_size']:
        refusals.append('pesize=%s but volume group %s has extents of %s; the extent size is chosen at '
                        'creation: drop pesize or recreate the VG'
                        % (human(spec['pesize']), name, human(vg['vg_extent_size'])))
    leaving = []
    if vg and spec['reduce']:
        for pv in members:
            if pv_device(pv) in devices:
                continue
            if pv['pv_pe_alloc_count']:
                refusals.append('reduce: %s still holds %d used extent(s) of %s; move them first (pvmove %s) '
                                'or list the device in pvs' % (pv['pv_name'], pv['pv_pe_alloc_count'], name,
                                                               pv['pv_name']))
            else:
                leaving.append(pv)
    if refusals:
        raise Refusal(refusals)

    expected = vg_view(vg, pvs, devices) or dict(name=name, pvs={})
    if not vg:
        argv = ['vgcreate']
        if spec['pesize']:
            argv += ['--physicalextentsize', '%db' % spec['pesize']]
            expected['extent_size'] = spec['pesize']
        actions.append(Action(argv + [name] + [devices[d] for d in new], 'create volume group %s on %s'
                              % (name, ', '.join(devices[d] for d in new))))
    elif new:
        actions.append(Action(['vgextend', name] + [devices[d] for d in new], 'add %s to volume group %s'
                              % (', '.join(devices[d] for d in new), name)))
    for device in new:
        expected['pvs'][devices[device]] = None  # LVM decides the extent count of a new PV
    if vg and spec['pvresize']:
        extent = vg['vg_extent_size']
        for pv in members:
            given = devices.get(pv_device(pv))
            # A PV's extents start at pe_start; its device has grown when it holds another whole extent.
            grown = (pv['dev_size'] - pv['pe_start']) // extent
            if given and grown > pv['pv_pe_count']:
                actions.append(Action(['pvresize', given], 'grow physical volume %s from %d to %d extents'
                                      % (given, pv['pv_pe_count'], grown)))
                expected['pvs'][given] = grown
    if leaving:
        labels = [pv['pv_name'] for pv in leaving]
        actions.append(Action(['vgreduce', name] + labels, 'take %s out of volume group %s'
                              % (', '.join(labels), name)))
        actions.append(Action(['pvremove'] + labels, 'remove the LVM labels of %s' % ', '.join(labels)))
        for label in labels:
            expected['pvs'].pop(label, None)
    return actions, expected


# ---------------------------------------------------------------------------------------------
# Thin pool and thin volumes

def _is_open(lv):
    return len(lv['lv_attr']) > 5 and lv['lv_attr'][5] == 'o'


def _is_active(lv):
    return len(lv['lv_attr']) > 4 and lv['lv_attr'][4] == 'a'


def _exported_only(lv):
    """Whether an open LV is held only by tgtd (exported as a LUN), as name_holders found it."""
    return bool(_is_open(lv) and lv.get('held_by')
                and all(re.search(r' is open by tgtd \(pid \d+\)$', reason) for reason in lv['held_by']))


def _held(lv):
    """What holds an open LV, as name_holders found it, for a message."""
    if 'held_by' not in lv:
        return 'mounted, exported or held'
    return '; '.join(lv['held_by']) or 'held by something this host does not show: no process, holder or mount'


def _open_refusal(why, vg_name, lv):
    """An open LV is never removed, force or not: LVM refuses to, after a clear would have run."""
    return ('%s: %s/%s is open (%s); stop what holds it (unexport, unmount or stop the process) and re-run; '
            'force does not remove an open volume' % (why, vg_name, lv['lv_name'], _held(lv)))


def _lcm(a, b):
    x, y = a, b
    while y:
        x, y = y, x % y
    return a // x * b


def _percent(value):
    return float(value) if value is not None else None


def over_subscription(provisioned, pool_size):
    """Cinder's over-subscription ratio: the virtual sizes of the pool's thin volumes (snapshots
    included) over the pool's data size, rounded to two decimals."""
    return round(float(provisioned) / pool_size, 2)


def thin_facts(vg, lvs, pool_name):
    """The pool and its thin volumes as the module returns them (sizes in bytes)."""
    pool = next((lv for lv in lvs if lv['lv_name'] == pool_name), None)
    facts = dict(pool={}, volumes={})
    if pool:
        provisioned = sum(lv['lv_size'] for lv in lvs if lv['pool_lv'] == pool_name)
        facts['pool'] = dict(name=pool_name, vg=vg, size=pool['lv_size'], attr=pool['lv_attr'],
                             data_percent=_percent(pool['data_percent']),
                             metadata_percent=_percent(pool['metadata_percent']),
                             chunk_size=pool['chunk_size'], metadata_size=pool['lv_metadata_size'],
                             zero=pool['zero'] == 'zero', discards=pool['discards'],
                             provisioned_size=provisioned,
                             over_subscription_ratio=over_subscription(provisioned, pool['lv_size']))
    for lv in lvs:
        if lv['pool_lv'] == pool_name:
            facts['volumes'][lv['lv_name']] = dict(size=lv['lv_size'], path=lv['lv_path'],
                                                   attr=lv['lv_attr'], origin=lv['origin'],
                                                   active=_is_active(lv), open=_is_open(lv))
    return facts


def thin_warnings(pool, warn_at, max_ratio):
    """Why the pool in ``thin_facts`` needs attention: its data or metadata usage at or above
    ``warn_at`` percent (a full pool fails the writes of every volume in it), or more thin volumes
    than ``max_ratio`` allows (forced, or from before the limit)."""
    warnings = []
    if not pool:
        return warnings
    target = '%s/%s' % (pool['vg'], pool['name'])
    for what, key, remedy in (('data', 'data_percent', 'grow the pool (size) or free space in its volumes'),
                              ('metadata', 'metadata_percent', 'grow its metadata (metadata_size)')):
        if pool[key] is not None and pool[key] >= warn_at:
            warnings.append('thin pool %s: %s usage %.2f%% is at or above %d%% (usage_warning_threshold); when '
                            'it reaches 100%% every volume of the pool fails its writes: %s, or check that LVM '
                            'autoextend (monitoring, free extents in the VG) works'
                            % (target, what, pool[key], warn_at, remedy))
    if pool['over_subscription_ratio'] > max_ratio:
        warnings.append('thin pool %s holds %s of thin volumes in %s, over-subscribed %sx, above '
                        'max_over_subscription_ratio=%s' % (target, human(pool['provisioned_size']),
                                                            human(pool['size']), pool['over_subscription_ratio'],
                                                            max_ratio))
    return warnings


def thin_view(lvs, pool_name):
    """What diff mode shows: the pool's size and settings, each volume's size, activity and origin."""
    pool = next((lv for lv in lvs if lv['lv_name'] == pool_name), None)
    if not pool:
        return dict(pool={}, volumes={})
    return dict(pool=dict(size=pool['lv_size'], chunk_size=pool['chunk_size'],
                          metadata_size=pool['lv_metadata_size'], zero=pool['zero'] == 'zero',
                          discards=pool['discards']),
                volumes=dict((lv['lv_name'], dict(size=lv['lv_size'], active=_is_active(lv), origin=lv['origin']))
                             for lv in lvs if lv['pool_lv'] == pool_name))


def _planned_pool_size(spec, vg, pool, expected):
    """The pool's data size in bytes once the plan has run. A pool created with NN%VG or NN%FREE gets
    that share of the VG's extents, rounded down (as LVM did for the recorded 95%VG pool)."""
    if pool or not isinstance(spec['size'], tuple):
        return expected['pool']['size']
    percent, of = spec['size']
    extents = vg['vg_extent_count'] if of == 'VG' else vg['vg_free_count']
    return int(extents * percent / 100) * vg['vg_extent_size']


def _over_subscription_refusals(spec, vg, pool, lvs, expected):
    """Refuse a plan that creates or grows thin volumes past ``max_over_subscription_ratio`` of the
    pool's size after the plan (a pool grown in the same plan counts at its new size), unless force.
    Plans that add no virtual size (no-ops, removals, shrinks, activations) are never refused."""
    before = dict((lv['lv_name'], lv['lv_size']) for lv in lvs if lv['pool_lv'] == spec['pool'])
    after = expected['volumes']
    if spec['force'] or not any(v['size'] > before.get(name, 0) for name, v in after.items()):
        return []
    pool_size = _planned_pool_size(spec, vg, pool, expected)
    provisioned = sum(v['size'] for v in after.values())
    ratio = over_subscription(provisioned, pool_size)
    if ratio <= spec['max_ratio']:
        return []
    return ['max_over_subscription_ratio=%s: after this run thin pool %s/%s (%s) would hold %s of thin volumes, '
            'an over-subscription of %sx (the virtual sizes of its thin volumes over the pool size, as in '
            'Cinder); grow the pool (size), raise max_over_subscription_ratio, or set force=true'
            % (spec['max_ratio'], spec['vg'], spec['pool'], human(pool_size), human(provisioned), ratio)]


def plan_thin(spec, vg, lvs):
    """Actions that bring the pool and the listed volumes to ``spec``, and the expected diff view.

    ``vg`` is the VG's report row and ``lvs`` its LV rows. Sizes are rounded up to whole extents
    (and pool sizes to whole chunks) before they are compared, as LVM rounds them on create.
    """
    vg_name, pool_name, force = spec['vg'], spec['pool'], spec['force']
    extent = vg['vg_extent_size']
    by_name = dict((lv['lv_name'], lv) for lv in lvs)
    pool = by_name.get(pool_name)
    expected = copy.deepcopy(thin_view(lvs, pool_name))
    refusals = []
    pool_actions = []
    target = '%s/%s' % (vg_name, pool_name)

    if pool and pool['lv_attr'][0] != 't':
        raise Refusal(['pool=%s: %s exists and is not a thin pool (lv_attr %s); choose another pool name'
                       % (pool_name, target, pool['lv_attr'])])
    if not pool:
        if spec['size'] is None:
            raise Refusal(['pool %s does not exist; give size (for example 100G or 95%%VG) to create it' % target])
        argv = ['lvcreate', '--type', 'thin-pool']
        if isinstance(spec['size'], tuple):
            argv += ['--extents', '%s%%%s' % (_number(spec['size'][0]), spec['size'][1])]
            size = spec['size_text']
        else:
            size = round_up(spec['size'], _lcm(extent, spec['chunksize'] or extent))
            argv += ['--size', '%db' % size]
        if spec['chunksize']:
            argv += ['--chunksize', '%db' % spec['chunksize']]
        if spec['metadata_size']:
            argv += ['--poolmetadatasize', '%db' % round_up(spec['metadata_size'], extent)]
        if spec['zero'] is not None:
            argv += ['--zero', 'y' if spec['zero'] else 'n']
        if spec['discards']:
            argv += ['--discards', spec['discards']]
        pool_actions.append(Action(argv + ['--name', pool_name, vg_name], 'create thin pool %s' % target))
        expected['pool'] = dict(size=size)
    else:
        chunk = pool['chunk_size']
        if isinstance(spec['size'], int):
            size = round_up(spec['size'], _lcm(extent, chunk))
            if size > pool['lv_size']:
                pool_actions.append(Action(['lvextend', '--size', '%db' % size, target],
                                           'grow thin pool %s from %s to %s' % (target, human(pool['lv_size']), human(size))))
                expected['pool']['size'] = size
            elif size < pool['lv_size']:
                refusals.append('size=%r is smaller than thin pool %s (%s); LVM cannot shrink a thin pool: '
                                'give at least its current size, or drop size'
                                % (spec['size_text'], target, human(pool['lv_size'])))
        # A NN%VG / NN%FREE size only applies at creation: afterwards the pool keeps its size.
        if spec['chunksize'] and spec['chunksize'] != chunk:
            refusals.append('chunksize=%s but thin pool %s has chunks of %s; the chunk size is fixed at '
                            'creation: drop chunksize' % (human(spec['chunksize']), target, human(chunk)))
        if spec['metadata_size']:
            meta = round_up(spec['metadata_size'], extent)
            if meta > pool['lv_metadata_size']:
                pool_actions.append(Action(['lvextend', '--poolmetadatasize', '%db' % meta, target],
                                           'grow the metadata of thin pool %s to %s' % (target, human(meta))))
                expected['pool']['metadata_size'] = meta
            elif meta < pool['lv_metadata_size']:
                refusals.append('metadata_size=%s is smaller than the metadata of thin pool %s (%s); '
                                'LVM cannot shrink it'
                                % (human(spec['metadata_size']), target, human(pool['lv_metadata_size'])))
        if spec['zero'] is not None and spec['zero'] != (pool['zero'] == 'zero'):
            pool_actions.append(Action(['lvchange', '--zero', 'y' if spec['zero'] else 'n', target],
                                       'turn zeroing of new chunks %s in thin pool %s' % ('on' if spec['zero'] else 'off', target)))
            expected['pool']['zero'] = spec['zero']
        if spec['discards'] and spec['discards'] != pool['discards']:
            pool_actions.append(Action(['lvchange', '--discards', spec['discards'], target],
                                       'set discards of thin pool %s to %s' % (target, spec['discards'])))
            expected['pool']['discards'] = spec['discards']

    volumes = expected['volumes']
    listed = set(v['name'] for v in spec['volumes'])
    going = set(v['name'] for v in spec['volumes'] if v['state'] == 'absent')
    removals, grows, creates, snapshots, activate, deactivate = [], [], [], [], [], []

    def remove(lv, why):
        if _is_open(lv):
            refusals.append(_open_refusal(why, vg_name, lv))
        removals.append(lv['lv_name'])
        volumes.pop(lv['lv_name'], None)

    for vol in spec['volumes']:
        name, where = vol['name'], vol['where']
        lv = by_name.get(name)
        if lv and lv['pool_lv'] != pool_name:
            refusals.append('%s.name=%r: %s/%s exists and is not a thin volume of pool %s; choose another name'
                            % (where, name, vg_name, name, pool_name))
            continue
        if vol['state'] == 'absent':
            if lv:
                remove(lv, where)
            continue
        size = round_up(vol['size'], extent) if vol['size'] else None
        if lv:
            if size and size > lv['lv_size']:
                grows.append(Action(['lvextend', '--size', '%db' % size, '%s/%s' % (vg_name, name)],
                                    'grow thin volume %s/%s from %s to %s' % (vg_name, name, human(lv['lv_size']), human(size))))
                volumes[name]['size'] = size
            elif size and size < lv['lv_size']:
                if not force:
                    refusals.append('%s.size=%s is smaller than %s/%s (%s); shrinking loses the data past the new '
                                    'end: set force=true to shrink it'
                                    % (where, human(vol['size']), vg_name, name, human(lv['lv_size'])))
                grows.append(Action(['lvreduce', '--force', '--size', '%db' % size, '%s/%s' % (vg_name, name)],
                                    'shrink thin volume %s/%s from %s to %s' % (vg_name, name, human(lv['lv_size']), human(size))))
                volumes[name]['size'] = size
            if vol['active'] and not _is_active(lv):
                activate.append(name)
            elif not vol['active'] and _is_active(lv):
                if _is_open(lv):
                    refusals.append('%s.active=false: %s/%s is open (%s) and cannot be '
                                    'deactivated; stop its user first' % (where, vg_name, name, _held(lv)))
                deactivate.append(name)
            volumes[name]['active'] = vol['active']
            continue
        origin = vol['snapshot_of']
        if origin is None:
            if size is None:
                refusals.append('%s: thin volume %s/%s does not exist; give its size to create it'
                                % (where, vg_name, name))
                continue
            creates.append(Action(['lvcreate', '--type', 'thin', '--virtualsize', '%db' % size,
                                   '--thinpool', pool_name, '--name', name,
                                   '--activate', 'y' if vol['active'] else 'n', vg_name],
                                  'create thin volume %s/%s of %s' % (vg_name, name, human(size))))
            volumes[name] = dict(size=size, active=vol['active'], origin=None)
            continue
        if origin not in volumes or origin in going or (spec['purge'] and origin not in listed):
            refusals.append('%s.snapshot_of=%r: no thin volume %s/%s in pool %s to snapshot (list the origin '
                            'before its snapshots)' % (where, origin, vg_name, origin, pool_name))
            continue
        # Thin snapshots skip activation by default; clear the flag so `active` means what it says.
        snapshots.append(Action(['lvcreate', '--snapshot', '--setactivationskip', 'n',
                                 '--activate', 'y' if vol['active'] else 'n', '--name', name,
                                 '%s/%s' % (vg_name, origin)],
                                'create thin snapshot %s/%s of %s' % (vg_name, name, origin)))
        volumes[name] = dict(size=volumes[origin]['size'], active=vol['active'], origin=origin)
        if size and size > volumes[name]['size']:
            snapshots.append(Action(['lvextend', '--size', '%db' % size, '%s/%s' % (vg_name, name)],
                                    'grow thin snapshot %s/%s to %s' % (vg_name, name, human(size))))
            volumes[name]['size'] = size
        elif size and size < volumes[name]['size']:
            refusals.append('%s.size=%s is smaller than its origin %s (%s); a snapshot starts at its origin\'s '
                            'size: drop size or make it at least that' % (where, human(vol['size']), origin,
                                                                          human(volumes[origin]['size'])))

    if spec['purge']:
        unlisted = [lv for lv in lvs if lv['pool_lv'] == pool_name and lv['lv_name'] not in listed]
        if unlisted and not force:
            refusals.append('purge would remove %d thin volume(s) not listed in volumes (%s); set force=true '
                            'to remove them' % (len(unlisted), ', '.join(sorted(lv['lv_name'] for lv in unlisted))))
        for lv in unlisted:
            remove(lv, 'purge')
    refusals += _over_subscription_refusals(spec, vg, pool, lvs, expected)
    if refusals:
        raise Refusal(refusals)

    actions = []
    if removals:
        # One lvremove for every removal: LVM commits the VG metadata once.
        actions.append(Action(['lvremove', '--force'] + ['%s/%s' % (vg_name, n) for n in removals],
                              'remove thin volume(s) %s' % ', '.join(removals)))
    actions += pool_actions + grows + creates + snapshots
    if activate:
        actions.append(Action(['lvchange', '--activate', 'y', '--ignoreactivationskip']
                              + ['%s/%s' % (vg_name, n) for n in activate],
                              'activate %s' % ', '.join(activate)))
    if deactivate:
        actions.append(Action(['lvchange', '--activate', 'n'] + ['%s/%s' % (vg_name, n) for n in deactivate],
                              'deactivate %s' % ', '.join(deactivate)))
    return actions, expected


def _number(value):
    """95.0 -> '95', 2.5 -> '2.5' (LVM reads both)."""
    return ('%f' % value).rstrip('0').rstrip('.')


# ---------------------------------------------------------------------------------------------
# Thick (plain, linear) volumes

MiB = 1 << 20
CLEAR_CHOICES = ('zero', 'none')
# lv_attr character 1 of the LVs this module refuses, and why; '-' is a plain (linear or striped) LV.
_NOT_THICK = {
    'V': 'a thin volume; thin volumes and pools belong to openblock.storage.lvm_thinvol',
    't': 'a thin pool; thin volumes and pools belong to openblock.storage.lvm_thinvol',
    'o': 'the origin of snapshots; remove its snapshots first',
    's': 'a snapshot',
}


def clear_size_error(value, option):
    """Why ``value`` is not a number of MiB to clear (0 = all), or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return ('%s=%r is not a number of MiB; give 0 (clear the whole volume) or the MiB to clear from its start, '
                'for example 100' % (option, value))
    return None


def thick_spec(params):
    """Validated lvm_thickvol input, and the list of every error found in it."""
    errors = []
    error = name_error(params['vg'], 'vg')
    if error:
        errors.append(error)
    clear_size = params.get('clear_size')
    if clear_size is None:
        clear_size = 0
    error = clear_size_error(clear_size, 'clear_size')
    if error:
        errors.append(error)
    volumes = []
    seen = set()
    for index, item in enumerate(params.get('volumes') or []):
        where, name, size = _listed_volume(item, index, seen, errors, 'thick volumes in this module '
                                           '(a percentage of the VG moves as it fills)')
        volumes.append(dict(name=name, size=size, state=item.get('state') or 'present', where=where))
    spec = dict(vg=params['vg'], volumes=volumes, clear=params.get('clear') or 'zero', clear_size=clear_size,
                force=bool(params.get('force')))
    return spec, errors


def _thick_error(lv):
    """Why an existing LV is not one this module manages, or None for a plain LV."""
    kind = lv['lv_attr'][:1]
    if kind == '-':
        return None
    return ('is %s (lv_attr %s), not a plain thick volume'
            % (_NOT_THICK.get(kind, 'a special LV (mirror, RAID, cache or VDO)'), lv['lv_attr']))


def thick_facts(vg, lvs):
    """The plain LVs of the VG as the module returns them (sizes in bytes)."""
    return dict(vg=vg, volumes=dict((lv['lv_name'], dict(size=lv['lv_size'], path=lv['lv_path'], attr=lv['lv_attr'],
                                                         active=_is_active(lv), open=_is_open(lv)))
                                    for lv in lvs if _thick_error(lv) is None))


def thick_view(lvs):
    """What diff mode shows: each plain LV's size and activity."""
    return dict(volumes=dict((lv['lv_name'], dict(size=lv['lv_size'], active=_is_active(lv)))
                             for lv in lvs if _thick_error(lv) is None))


def zero_action(vg_name, name, start, length):
    """Write zeros over ``length`` bytes of /dev/VG/NAME from byte ``start``, bypassing the page cache.

    Bytes, not blocks, count (``count_bytes``, ``seek_bytes``), so any length is exact; ``conv=fsync``
    makes dd fail when a write does not reach the device.
    """
    argv = ['dd', 'if=/dev/zero', 'of=/dev/%s/%s' % (vg_name, name), 'bs=1M', 'count=%d' % length,
            'iflag=count_bytes', 'oflag=direct' + (',seek_bytes' if start else ''), 'conv=fsync', 'status=none']
    if start:
        argv.insert(5, 'seek=%d' % start)
    where = 'the first %s' % human(length) if not start else '%s from %s' % (human(length), human(start))
    # Bounded by what it writes: 2 min plus 4 MiB/s, slow for any disk but not for a hung one.
    return Action(argv, 'write zeros over %s of %s/%s' % (where, vg_name, name), timeout=120 + length // (4 << 20))


def plan_thick(spec, vg, lvs):
    """Actions that bring the listed plain LVs of the VG to ``spec``, and the expected diff view.

    Order: clear and remove, clear the tail and shrink, grow, create, so the space freed first is
    there for what grows. With ``clear=zero`` a removed LV is overwritten with zeros first (its first
    ``clear_size`` MiB, or all of it), and so is the part a shrink cuts off; an inactive LV is
    activated to be cleared. Refuses, before any action, LVs that are not plain, the removal of an open
    LV even with force (its clear would run and LVM then refuse the removal), shrinking without
    force, and sizes the VG has no room for.
    """
    vg_name, force, zero = spec['vg'], spec['force'], spec['clear'] == 'zero'
    extent = vg['vg_extent_size']
    by_name = dict((lv['lv_name'], lv) for lv in lvs)
    expected = copy.deepcopy(thick_view(lvs))
    volumes = expected['volumes']
    refusals = []
    activate, clears, removals, shrinks, grows, creates = [], [], [], [], [], []
    needed = 0  # bytes of extents the plan takes from the VG's free space (negative: frees)

    for vol in spec['volumes']:
        name, where = vol['name'], vol['where']
        lv = by_name.get(name)
        target = '%s/%s' % (vg_name, name)
        if lv and _thick_error(lv):
            refusals.append('%s.name=%r: %s %s; choose another name' % (where, name, target, _thick_error(lv)))
            continue
        if vol['state'] == 'absent':
            if not lv:
                continue
            if _is_open(lv):
                refusals.append(_open_refusal(where, vg_name, lv))
            if zero:
                if not _is_active(lv):
                    activate.append(target)
                length = lv['lv_size'] if not spec['clear_size'] else min(lv['lv_size'], spec['clear_size'] * MiB)
                clears.append(zero_action(vg_name, name, 0, length))
            removals.append(target)
            needed -= lv['lv_size']
            volumes.pop(name, None)
            continue
        size = round_up(vol['size'], extent) if vol['size'] else None
        if not lv:
            if size is None:
                refusals.append('%s: volume %s does not exist; give its size to create it' % (where, target))
                continue
            creates.append(Action(['lvcreate', '--yes', '--wipesignatures', 'y', '--size', '%db' % size,
                                   '--name', name, vg_name],
                                  'create thick volume %s of %s' % (target, human(size))))
            volumes[name] = dict(size=size, active=True)
            needed += size
        elif size and size > lv['lv_size']:
            grows.append(Action(['lvextend', '--size', '%db' % size, target],
                                'grow thick volume %s from %s to %s' % (target, human(lv['lv_size']), human(size))))
            volumes[name]['size'] = size
            needed += size - lv['lv_size']
        elif size and size < lv['lv_size']:
            if not force:
                refusals.append('%s.size=%s is smaller than %s (%s); shrinking loses the data past the new end: '
                                'set force=true to shrink it' % (where, human(vol['size']), target, human(lv['lv_size'])))
            if zero:
                if not _is_active(lv):
                    activate.append(target)
                shrinks.append(zero_action(vg_name, name, size, lv['lv_size'] - size))
            shrinks.append(Action(['lvreduce', '--force', '--size', '%db' % size, target],
                                  'shrink thick volume %s from %s to %s' % (target, human(lv['lv_size']), human(size))))
            volumes[name]['size'] = size
            needed -= lv['lv_size'] - size
    if needed > vg['vg_free']:
        refusals.append('volumes need %s more than volume group %s has free (%s); give smaller sizes, remove '
                        'volumes, or add a device to the VG (openblock.storage.lvm_vg)'
                        % (human(needed), vg_name, human(vg['vg_free'])))
    if refusals:
        raise Refusal(refusals)

    actions = []
    if activate:
        actions.append(Action(['lvchange', '--activate', 'y'] + activate, 'activate %s to clear it' % ', '.join(activate)))
    actions += clears
    if removals:
        # One lvremove for every removal: LVM commits the VG metadata once.
        actions.append(Action(['lvremove', '--force'] + removals, 'remove thick volume(s) %s' % ', '.join(removals)))
    return actions + shrinks + grows + creates, expected
