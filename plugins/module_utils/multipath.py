# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dm-multipath for tgt LUNs: the drop-in multipathd reads, the WWIDs of aliased LUNs, the wwids
file, the kernel modules and multipathd itself, read once, planned in pure Python, applied in order.

The drop-in holds defaults, a blacklist, the device section for tgt's LUNs (vendor IET, product
VIRTUAL-DISK) and one ``multipath { wwid alias }`` per alias. An alias names its WWID, or a target
(``iqn``, or ``volume`` behind a name prefix) whose LUN 1 this host sees under
/dev/disk/by-path; the WWID of such a LUN is what multipath uses for a SCSI disk: udev's
ID_SERIAL, read from the udev database (the value ``/lib/udev/scsi_id --whitelisted
--replace-whitespace`` prints). multipathd is reconfigured only when its configuration changed.
"""

from __future__ import annotations

import glob
import json
import os
import re

from ansible_collections.openblock.storage.plugins.module_utils.names import iscsi_name_error
from ansible_collections.openblock.storage.plugins.module_utils.system_units import parse_show
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    Action, FileWrite, Runner, diff_result, host_lock, read_text, refuse_bad_input, require_tools)

MODULES_LOAD = '/etc/modules-load.d/openblock-multipath.conf'
WWIDS_FILE = '/etc/multipath/wwids'
UDEV_DB = '/run/udev/data'
HEADER = '# Managed by openblock.storage (multipath_config): changes here are overwritten.\n'
FIND_MULTIPATHS = ('no', 'yes', 'strict', 'greedy', 'smart')
# `multipath -a` is needed for a map to form only where multipathd takes just the WWIDs it knows.
NEEDS_WWIDS = ('strict',)
SHOW_MAPS = ['multipathd', 'show', 'maps', 'json']
# multipathd and its unit come with multipath-tools.
MULTIPATH_TOOLS = {'multipathd': 'multipath-tools'}
UNIT = 'multipathd.service'
SHOW_UNIT = ['systemctl', 'show', UNIT, '--property=UnitFileState,ActiveState']
SCSI_ID = ['/lib/udev/scsi_id', '--whitelisted', '--replace-whitespace']

# A multipath alias becomes /dev/mapper/<alias>: no spaces, quotes, braces or slashes.
ALIAS_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$')
# WWIDs as scsi_id and multipath print them: a SCSI designator type digit (1 T10, 2 EUI-64, 3 NAA,
# 8 SCSI name) and its identifier, or the NVMe forms (eui., nvme., uuid.).
WWID_RE = re.compile(r'^([1-8][0-9A-Za-z_.:-]{1,254}|(eui|naa|nvme|uuid|t10)\.[0-9A-Za-z_.:-]{1,250})$')
WWID_HINT = 'read it on a host that sees the LUN with /lib/udev/scsi_id -g -u -d /dev/sdX or multipath -ll'
VOLUME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$')
_KEY_RE = re.compile(r'^[a-z][a-z0-9_]*$')
_MODULE_RE = re.compile(r'^[A-Za-z0-9_-]+$')


def _volume_error(value, where):
    if isinstance(value, str) and VOLUME_RE.match(value):
        return None
    return ('%s.volume=%r is not a volume name of storage_node_volumes; use letters, digits, ".", "_", "+" and "-"'
            % (where, value))


def alias_errors(entries, option='aliases', volume_error=_volume_error):
    """Errors in a list of aliases ({alias, wwid} | {alias, iqn} | {alias, volume}), each naming the
    entry, the value and what to write instead."""
    errors = []
    aliases, wwids = {}, {}
    for index, entry in enumerate(entries or []):
        where = '%s[%d]' % (option, index)
        if not isinstance(entry, dict):
            errors.append('%s=%r: each alias is a dict with alias and one of wwid, iqn or volume' % (where, entry))
            continue
        alias = entry.get('alias')
        if not isinstance(alias, str) or not ALIAS_RE.match(alias):
            errors.append('%s.alias=%r: an alias becomes /dev/mapper/<alias>; use 1 to 128 letters, digits and '
                          '_ . + - (starting with a letter or digit)' % (where, alias))
        elif alias in aliases:
            errors.append('%s.alias=%r is also %s[%d]; give each map its own alias' % (where, alias, option, aliases[alias]))
        else:
            aliases[alias] = index
        given = [key for key in ('wwid', 'iqn', 'volume') if entry.get(key) is not None]
        if len(given) != 1:
            errors.append('%s (alias %r) gives %s; give exactly one of wwid, iqn or volume'
                          % (where, alias, ' and '.join(given) or 'none of wwid, iqn, volume'))
            continue
        key = given[0]
        value = entry[key]
        if key == 'wwid':
            if not isinstance(value, str) or not WWID_RE.match(value):
                errors.append('%s.wwid=%r is not a WWID; %s' % (where, value, WWID_HINT))
            elif value in wwids:
                errors.append('%s.wwid=%r is also the WWID of %s[%d]; one map has one alias'
                              % (where, value, option, wwids[value]))
            else:
                wwids[value] = index
        elif key == 'iqn':
            error = iscsi_name_error(value, where + '.iqn')
            if error:
                errors.append(error)
        else:
            error = volume_error(value, where)
            if error:
                errors.append(error)
    return errors


def _one_line(value):
    return value is not None and '\n' not in str(value) and '"' not in str(value) and str(value).strip() != ''


def find_multipaths_value(value):
    """The find_multipaths word for a value (YAML turns bare yes/no into booleans), or None."""
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return value if value in FIND_MULTIPATHS else None


def spec_errors(params):
    """Input errors, each naming the option and the value; empty when the input is good."""
    errors = alias_errors(params.get('aliases'))
    if params.get('aliases'):
        error = iscsi_name_error(params['iqn_prefix'] + 'volume-1', 'iqn_prefix')
        if error and any(isinstance(e, dict) and e.get('volume') is not None for e in params['aliases']):
            errors.append('iqn_prefix=%r does not make iSCSI names of volumes (iqn_prefix + "volume-" + name); give '
                          'a prefix like iqn.2010-10.org.openstack:' % (params['iqn_prefix'],))
    if find_multipaths_value(params.get('find_multipaths')) is None:
        errors.append('find_multipaths=%r: choose one of %s' % (params.get('find_multipaths'), ', '.join(FIND_MULTIPATHS)))
    for index, devnode in enumerate(params.get('blacklist_devnodes') or []):
        if not _one_line(devnode):
            errors.append('blacklist_devnodes[%d]=%r: give a one-line regex without double quotes' % (index, devnode))
    for key, value in (params.get('tgt_device') or {}).items():
        if not _KEY_RE.match(str(key)):
            errors.append('tgt_device: %r is not a multipath.conf device keyword (like no_path_retry)' % (key,))
        elif not _one_line(value):
            errors.append('tgt_device.%s=%r: give a one-line value without double quotes' % (key, value))
    for index, name in enumerate(params.get('kernel_modules') or []):
        if not isinstance(name, str) or not _MODULE_RE.match(name):
            errors.append('kernel_modules[%d]=%r is not a kernel module name (like dm_multipath)' % (index, name))
    dropin = params.get('dropin') or ''
    if not (dropin.startswith('/') and dropin.endswith('.conf')):
        errors.append('dropin=%r: give an absolute path ending in .conf (multipathd reads only *.conf in its '
                      'config_dir, /etc/multipath/conf.d)' % (dropin,))
    return errors


def alias_iqn(entry, prefix):
    """The target name whose LUN 1 an alias names, or None for an alias given by WWID."""
    if entry.get('iqn') is not None:
        return entry['iqn']
    if entry.get('volume') is not None:
        return '%svolume-%s' % (prefix, entry['volume'])
    return None


def _setting(value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    text = str(value)
    return '"%s"' % text if ' ' in text else text


def render(find_multipaths, blacklist_devnodes, tgt_device, pairs):
    """The drop-in's text; ``pairs`` are the (alias, wwid) of the multipaths section, in order."""
    lines = [HEADER.rstrip('\n'), 'defaults {', '\tuser_friendly_names no',
             '\tfind_multipaths %s' % find_multipaths, '}', '', 'blacklist {']
    lines += ['\tdevnode "%s"' % devnode for devnode in blacklist_devnodes]
    lines += ['}', '', 'devices {', '\tdevice {', '\t\tvendor "IET"', '\t\tproduct "VIRTUAL-DISK"']
    lines += ['\t\t%s %s' % (key, _setting(value)) for key, value in tgt_device.items()]
    lines += ['\t}', '}', '', 'multipaths {']
    for alias, wwid in pairs:
        lines += ['\tmultipath {', '\t\twwid %s' % wwid, '\t\talias %s' % alias, '\t}']
    lines.append('}')
    return '\n'.join(lines) + '\n'


def parse_udev_serial(text):
    """ID_SERIAL of a udev database entry (/run/udev/data/bMAJ:MIN), or None."""
    for line in (text or '').splitlines():
        if line.startswith('E:ID_SERIAL='):
            return line.split('=', 1)[1].strip() or None
    return None


def parse_wwids(text):
    """The WWIDs of /etc/multipath/wwids (lines /WWID/; # comments)."""
    found = set()
    for line in (text or '').splitlines():
        line = line.strip()
        if line.startswith('/') and line.endswith('/') and len(line) > 2:
            found.add(line[1:-1])
    return found


def parse_maps(text):
    """The maps of `multipathd show maps json`: {name: {wwid, dm, paths: [{dev, state, dm_state}]}}.

    ``state`` is the path checker's verdict (ready, faulty, ghost, ...), ``dm_state`` the kernel's
    (active, failed), as multipath -ll shows them.
    """
    maps = {}
    for item in json.loads(text).get('maps', []):
        paths = []
        for group in item.get('path_groups', []):
            for path in group.get('paths', []):
                paths.append(dict(dev=path.get('dev'), state=path.get('chk_st'), dm_state=path.get('dm_st')))
        maps[item.get('name')] = dict(wwid=item.get('uuid'), dm=item.get('sysfs'), paths=paths)
    return maps


def plan(params, found, current, wwids_known, missing_modules, unit, modules_load_text):
    """The actions that bring the host to the wanted multipath configuration.

    ``found``: {alias: wwid or None} of the aliases named by target, read on the host;
    ``current``: the drop-in's text (None: absent); ``wwids_known``: the WWIDs of the wwids file;
    ``missing_modules``: kernel modules not loaded; ``unit``: multipathd's UnitFileState and
    ActiveState; ``modules_load_text``: the modules-load.d file's text (None: absent).
    Returns (actions, text, pairs, missing aliases).
    """
    find = find_multipaths_value(params['find_multipaths'])
    pairs, missing = [], []
    for entry in params['aliases'] or []:
        wwid = entry.get('wwid') or found.get(entry['alias'])
        if wwid:
            pairs.append((entry['alias'], wwid))
        else:
            missing.append(entry['alias'])
    text = render(find, params['blacklist_devnodes'], params['tgt_device'], pairs)
    actions = []
    modules = params['kernel_modules']
    load_text = ''.join('%s\n' % name for name in modules)
    if modules and modules_load_text != load_text:
        actions.append(FileWrite(MODULES_LOAD, load_text, 'load %s at boot' % ', '.join(modules), mode=0o644))
    if missing_modules:
        actions.append(Action(['modprobe', '-a'] + list(missing_modules),
                              'load the kernel modules %s' % ', '.join(missing_modules)))
    reconfigure = False
    if current != text:
        actions.append(FileWrite(params['dropin'], text, 'write the multipath drop-in %s' % params['dropin'], mode=0o644))
        reconfigure = True
    if find in NEEDS_WWIDS:
        for alias, wwid in pairs:
            if wwid not in wwids_known:
                actions.append(Action(['multipath', '-a', wwid],
                                      'add the WWID of %s to %s (find_multipaths %s)' % (alias, WWIDS_FILE, find)))
                reconfigure = True
    active = unit.get('ActiveState') == 'active'
    if unit.get('UnitFileState') not in ('enabled', 'static', 'enabled-runtime', 'alias', 'indirect'):
        actions.append(Action(['systemctl', 'enable', UNIT], 'enable multipathd at boot'))
    if not active:
        actions.append(Action(['systemctl', 'start', UNIT], 'start multipathd'))
    elif reconfigure:
        actions.append(Action(['multipathd', 'reconfigure'], 'make multipathd read the changed configuration'))
    return actions, text, pairs, missing


def by_path_devices(iqn):
    """The devices of LUN 1 of target ``iqn`` on this host (one per portal), sorted."""
    pattern = '/dev/disk/by-path/*-iscsi-%s-lun-1' % glob.escape(iqn)
    return sorted(os.path.realpath(link) for link in glob.glob(pattern))


def device_wwid(runner, device):
    """The WWID multipath uses for a SCSI disk: udev's ID_SERIAL, from the udev database; the same
    value from scsi_id when udev has not recorded it."""
    try:
        rdev = os.stat(device).st_rdev
    except OSError:
        return None
    serial = parse_udev_serial(read_text(os.path.join(UDEV_DB, 'b%d:%d' % (os.major(rdev), os.minor(rdev)))))
    if serial:
        return serial
    rc, out, err = runner.read(SCSI_ID + ['--device=' + device], ok_rcs=None)
    return out.strip() if rc == 0 and out.strip() else None


def resolve(runner, aliases, prefix):
    """{alias: wwid or None} of the aliases named by target, with the devices read."""
    found, devices = {}, {}
    for entry in aliases or []:
        iqn = alias_iqn(entry, prefix)
        if iqn is None:
            continue
        found[entry['alias']] = None
        devices[entry['alias']] = by_path_devices(iqn)
        for device in devices[entry['alias']]:
            found[entry['alias']] = device_wwid(runner, device)
            if found[entry['alias']]:
                break
    return found, devices


def read_maps(runner, module):
    rc, out, err = runner.read(SHOW_MAPS, ok_rcs=None)
    if rc != 0:
        return {}
    try:
        return parse_maps(out)
    except ValueError:
        module.warn('could not parse `%s`: %s' % (' '.join(SHOW_MAPS), out[:200]))
        return {}


def run(module):
    """Read, plan, apply, report: the whole multipath_config module."""
    params = module.params
    errors = spec_errors(params)
    refuse_bad_input(module, errors)
    # Without it systemd does not know the unit (enable and start are planned) and no map is read.
    require_tools(module, MULTIPATH_TOOLS, 'no drop-in, no WWIDs and no maps (multipath-tools\' defaults)')
    runner = Runner(module)
    with host_lock(module):
        found, devices = resolve(runner, params['aliases'], params['iqn_prefix'])
        current = read_text(params['dropin'])
        missing_modules = [name for name in params['kernel_modules'] if not os.path.exists('/sys/module/' + name)]
        unit = parse_show(runner.read(SHOW_UNIT, ok_rcs=None)[1], [UNIT]).get(UNIT, {})
        actions, text, pairs, missing = plan(params, found, current, parse_wwids(read_text(WWIDS_FILE)),
                                             missing_modules, unit, read_text(MODULES_LOAD))
        if missing:
            message = ('aliases %s name no iSCSI LUN on this host (no /dev/disk/by-path/*-iscsi-<target>-lun-1 '
                       'with a WWID); log in to their targets first (compute_initiator role) or give their wwid'
                       % ', '.join(missing))
            if not module.check_mode:
                module.fail_json(msg=message, missing=missing, commands=[])
            module.warn('check mode: %s; left out of the predicted drop-in' % message)
        changed = runner.apply(actions)
        maps = read_maps(runner, module) if module.check_mode is False or unit.get('ActiveState') == 'active' else {}
    result = dict(changed=changed, dropin=params['dropin'], wwids=dict(pairs), maps=maps,
                  devices=dict((alias, devs) for alias, devs in devices.items()), commands=runner.commands)
    if module._diff:
        result['diff'] = dict(diff_result(current or '', text), before_header=params['dropin'],
                              after_header=params['dropin'])
    module.exit_json(**result)
