# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every error in the variables of one of the collection's roles, found before the role changes anything.

The argument specs of the roles check types and choices; the rules here are the ones a spec cannot
say (LVM names, sizes, iSCSI names, portals, WWIDs, aliases, and facts about other hosts of the
inventory). They reuse the modules' own validators, so a role and the module it calls word an
error the same way. Each error names the variable, the value, and what to write instead.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.openblock.storage.plugins.filter.cinder_volumes import _check, attached_hosts
from ansible_collections.openblock.storage.plugins.module_utils.iscsi import auth_value_errors
from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    CLEAR_CHOICES, clear_size_error, name_error, ratio_error)
from ansible_collections.openblock.storage.plugins.module_utils.multipath import alias_errors
from ansible_collections.openblock.storage.plugins.module_utils.names import iscsi_name_error, parse_portal
from ansible_collections.openblock.storage.plugins.module_utils.sizes import SizeError, parse_percent, parse_size
from ansible_collections.openblock.storage.plugins.module_utils.tgt import IOTHREADS_RANGE
from ansible_collections.openblock.storage.plugins.module_utils.tgt import _account as tgt_account

_FILTER_RE = re.compile(r'^a(.).*\1$')


def _size_error(value, option, percent=False):
    if percent and parse_percent(value):
        return None
    if '%' in str(value):
        if percent:
            return ('%s=%r is not a size; write bytes with a unit (100G) or NN%%VG / NN%%FREE with '
                    '0 < NN <= 100' % (option, value))
        return '%s=%r: percent sizes do not apply here; give bytes with a unit, for example 10G' % (option, value)
    try:
        size = parse_size(value, option)
    except SizeError as err:
        return str(err)
    if size == 0:
        return '%s=%r is zero; give a size, for example 10G' % (option, value)
    return None


def _devices(devices, option):
    errors = []
    for index, device in enumerate(devices or []):
        if not isinstance(device, str) or not device.startswith('/dev/'):
            errors.append('%s[%d]=%r is not a device path; give a path under /dev/, for example '
                          '/dev/disk/by-id/...' % (option, index, device))
    if len(set(map(str, devices or []))) != len(devices or []):
        errors.append('%s=%r names a device twice; list each device once' % (option, devices))
    return errors


def _prefix_error(prefix, option, sample, example):
    """Why ``prefix`` + ``sample`` is not an iSCSI name, worded for the prefix, or None."""
    if iscsi_name_error(str(prefix) + sample, option) is None:
        return None
    return ('%s=%r does not make valid iSCSI names (%r is not one); give a lower-case prefix of the form '
            'iqn.YYYY-MM.reversed.domain, such as %s' % (option, prefix, str(prefix) + sample, example))


def _chap_errors(chap, option, tgt):
    """Errors in a CHAP account {user, password} (None = no CHAP); never shows the password.

    ``tgt`` applies tgt's rules (the account of the targets), else iscsiadm's (the initiator's).
    """
    errors = []
    if chap is None:
        return errors
    if not isinstance(chap, dict) or set(chap) != {'user', 'password'}:
        keys = sorted(chap) if isinstance(chap, dict) else type(chap).__name__
        return ['%s must be a dict with exactly user and password (got %s); or leave it unset for no CHAP'
                % (option, keys)]
    if tgt:
        tgt_account(chap, option, errors)
    else:
        errors += auth_value_errors(chap, option)
    return errors


def _lvm_type_errors(values):
    """Errors in storage_node_lvm_type and the thick volumes' clear settings (absent variables are not checked)."""
    errors = []
    for option, choices in (('storage_node_lvm_type', ('thin', 'thick')), ('storage_node_volume_clear', CLEAR_CHOICES)):
        if option in values and values[option] not in choices:
            errors.append('%s=%r: choose %s' % (option, values[option], ' or '.join(choices)))
    if 'storage_node_volume_clear_size' in values:
        value = values['storage_node_volume_clear_size']
        # inventory values may be strings of digits; the module's int option takes them
        error = clear_size_error(int(value) if isinstance(value, str) and value.isdigit() else value,
                                 'storage_node_volume_clear_size')
        if error:
            errors.append(error)
    return errors


def _number(value):
    """A number given as a number or as a string of one (inventory values may be strings); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _thin_pool_errors(values):
    """Errors in the over-subscription ratio and the pool autoextend settings (absent ones are not checked)."""
    errors = []
    if 'storage_node_max_over_subscription_ratio' in values:
        error = ratio_error(values['storage_node_max_over_subscription_ratio'], 'storage_node_max_over_subscription_ratio')
        if error:
            errors.append(error)
    # lvm.conf(5): the threshold is a percent, values below 50 act as 50 and 100 turns autoextend off.
    for option, low, high, hint in (
            ('storage_node_thin_pool_autoextend_threshold', 50, 100, 'the pool usage that triggers autoextend, '
             'for example 80; 100 turns autoextend off'),
            ('storage_node_thin_pool_autoextend_percent', 1, 100, 'how much autoextend grows the pool, in percent '
             'of its size, for example 20')):
        if option in values:
            value = values[option]
            number = _number(value)
            if number is None or not low <= number <= high or number != int(number):
                errors.append('%s=%r is not a whole percent from %d to %d; give %s' % (option, value, low, high, hint))
    return errors


def storage_node_errors(values, groups, hostvars):
    errors = _chap_errors(values.get('storage_node_chap'), 'storage_node_chap', tgt=True)
    errors += _lvm_type_errors(values)
    thick = values.get('storage_node_lvm_type') == 'thick'
    for option, lv in (('storage_node_vg', False), ('storage_node_pool', True)):
        if option == 'storage_node_pool' and thick:
            continue
        error = name_error(values.get(option), option, lv=lv)
        if error:
            errors.append(error)
    for option, percent in (('storage_node_pool_size', True), ('storage_node_backing_file_size', False)):
        if option == 'storage_node_backing_file_size' and values.get('storage_node_devices'):
            continue
        if option == 'storage_node_pool_size' and thick:
            continue
        error = _size_error(values.get(option), option, percent)
        if error:
            errors.append(error)
    errors += _devices(values.get('storage_node_devices'), 'storage_node_devices')
    if not thick:
        errors += _thin_pool_errors(values)
    iothreads = values.get('storage_node_tgt_iothreads')
    low, high = IOTHREADS_RANGE  # the bound tgt_target checks too
    if iothreads is not None and not (str(iothreads).isdigit() and low <= int(iothreads) <= high):
        errors.append('storage_node_tgt_iothreads=%r: give tgtd a whole number of %d to %d I/O threads per LUN, '
                      'or null for its default of 16' % (iothreads, low, high))
    prefix = values.get('storage_node_iqn_prefix')
    error = _prefix_error(prefix, 'storage_node_iqn_prefix', 'volume-1', 'iqn.2010-10.org.openstack:')
    if error:
        errors.append(error)
    names = {}
    for index, volume in enumerate(values.get('storage_node_volumes') or []):
        where = 'storage_node_volumes[%d]' % index
        try:
            name, state = _check(volume, index)
        except AnsibleFilterError as err:
            errors.append(str(err))
            continue
        if name in names:
            errors.append('%s.name=%r is listed twice (also storage_node_volumes[%d]); list each volume once'
                          % (where, name, names[name]))
            continue
        names[name] = index
        if state != 'present':
            continue
        if volume.get('size') is not None:
            error = _size_error(volume['size'], where + '.size')
            if error:
                errors.append(error)
        if volume.get('device') is not None:
            errors += _devices([volume['device']], where + '.device')
        try:
            hosts = attached_hosts(volume, groups, hostvars, index)
        except AnsibleFilterError as err:
            errors.append('%s; list host names or group names of the inventory' % err)
            continue
        holders = {}
        for host in hosts:
            initiator = hostvars[host].get('compute_initiator_name')
            if initiator and initiator in holders:
                errors.append('%s.attach_to: hosts %s and %s share the initiator name %r, so the target cannot tell '
                              'them apart; give each host its own name (run the compute_initiator role, which '
                              'replaces duplicates, or fix /etc/iscsi/initiatorname.iscsi)'
                              % (where, holders[initiator], host, initiator))
            holders.setdefault(initiator, host)
    return errors


def compute_initiator_errors(values):
    errors = _chap_errors(values.get('compute_initiator_chap'), 'compute_initiator_chap', tgt=False)
    for index, portal in enumerate(values.get('compute_initiator_portals') or []):
        try:
            parse_portal(portal, 'compute_initiator_portals[%d]' % index)
        except ValueError as err:
            errors.append(str(err))
    for index, target in enumerate(values.get('compute_initiator_targets') or []):
        error = iscsi_name_error(target, 'compute_initiator_targets[%d]' % index)
        if error:
            errors.append(error)
    for option, sample, example in (('compute_initiator_iqn_prefix', 'volume-1', 'iqn.2010-10.org.openstack:'),
                                    ('compute_initiator_name_prefix', ':1a2b3c', 'iqn.1993-08.org.debian:01')):
        error = _prefix_error(values.get(option), option, sample, example)
        if error:
            errors.append(error)
    for index, pattern in enumerate(values.get('compute_initiator_lvm_filter_accept') or []):
        if not isinstance(pattern, str) or not _FILTER_RE.match(pattern):
            errors.append('compute_initiator_lvm_filter_accept[%d]=%r is not an accept pattern; write a|regex| '
                          '(for example a|^/dev/mapper/shared-lun$|)' % (index, pattern))
    return errors


def multipath_errors(values):
    # the multipath_config module's own check, so the role and the module word errors alike
    return alias_errors(values.get('multipath_aliases'), 'multipath_aliases')


def shared_lvm_errors(values):
    errors = []
    error = name_error(values.get('shared_lvm_vg'), 'shared_lvm_vg')
    if error:
        errors.append(error)
    errors += _devices(values.get('shared_lvm_devices'), 'shared_lvm_devices')
    if not values.get('shared_lvm_devices'):
        errors.append('shared_lvm_devices=%r: give the shared LUN (its multipath alias, for example '
                      '/dev/mapper/shared-lun)' % (values.get('shared_lvm_devices'),))
    seen = {}
    for index, item in enumerate(values.get('shared_lvm_lvs') or []):
        where = 'shared_lvm_lvs[%d]' % index
        name = item.get('name') if isinstance(item, dict) else None
        error = name_error(name, where + '.name', lv=True)
        if error:
            errors.append(error)
        elif name in seen:
            errors.append('%s.name=%r is also shared_lvm_lvs[%d]; list each LV once' % (where, name, seen[name]))
        else:
            seen[name] = index
        if isinstance(item, dict) and item.get('size') is not None:
            error = _size_error(item['size'], where + '.size')
            if error:
                errors.append(error)
    for option, low in (('shared_lvm_lock_start_timeout', 1), ('shared_lvm_device_timeout', 1)):
        value = values.get(option)
        if value is not None and (not str(value).isdigit() or int(value) < low):
            errors.append('%s=%r: give a whole number of seconds, at least %d' % (option, value, low))
    return errors


def role_input_errors(values, role, groups=None, hostvars=None):
    """The errors in ``values`` (a dict of the role's variables) for ``role``; empty when all is well."""
    if role == 'storage_node':
        return storage_node_errors(values, groups or {}, hostvars or {})
    if role == 'compute_initiator':
        return compute_initiator_errors(values)
    if role == 'multipath':
        return multipath_errors(values)
    if role == 'shared_lvm':
        return shared_lvm_errors(values)
    raise AnsibleFilterError('role_input_errors: unknown role %r; one of storage_node, compute_initiator, '
                             'multipath, shared_lvm' % (role,))


class FilterModule(object):
    def filters(self):
        return {'role_input_errors': role_input_errors}
