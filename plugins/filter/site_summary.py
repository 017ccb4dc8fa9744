# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The table `make demo` prints after site.yml: built from what the modules returned in the same run.

Storage nodes: the thin pool (lvm_thinvol) and each target with its LUNs, ACL and connected initiators
(tgt_target, report=all). Compute nodes: each session by target and portal (iscsi_session) and each
multipath map with its paths' states (multipath_config). No command runs on a host for it.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The names the roles register their module results under.
RESULTS = {
    'pool': 'storage_node_pool_result',
    'targets': 'storage_node_export',
    'sessions': 'compute_initiator_sessions',
    'maps': 'multipath_config',
}


def _size(size):
    """Bytes as the largest binary unit with one decimal: 1073741824 -> 1.0 GiB."""
    if size is None:
        return '?'
    value = float(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return '%.1f %s' % (value, unit) if unit != 'B' else '%d B' % value
        value /= 1024
    return '?'  # not reached


def _percent(value):
    return '-' if value is None else '%.1f%%' % float(value)


def _result(hostvars, host, key):
    """The registered result, or None when the task did not run (skipped, or another play)."""
    result = hostvars[host].get(RESULTS[key])
    if not isinstance(result, dict) or result.get('skipped'):
        return None
    return result


def storage_lines(host, hostvars):
    lines = ['%s (storage node)' % host]
    pool = (_result(hostvars, host, 'pool') or {}).get('pool')
    if pool:
        lines.append('  pool %s/%s: %s, data %s, metadata %s, provisioned %s (x%s)' % (
            pool.get('vg'), pool.get('name'), _size(pool.get('size')), _percent(pool.get('data_percent')),
            _percent(pool.get('metadata_percent')), _size(pool.get('provisioned_size')),
            pool.get('over_subscription_ratio')))
    targets = (_result(hostvars, host, 'targets') or {}).get('targets')
    if targets is None:
        lines.append('  targets: not exported in this run')
        return lines
    if not targets:
        lines.append('  targets: none')
    for target in targets:
        lines.append('  target %s (tid %s)' % (target.get('iqn'), target.get('tid')))
        for lun in target.get('luns') or []:
            # tgt's own size text where the module could not read the device's size
            size = _size(lun['size']) if lun.get('size') is not None else lun.get('size_text') or '?'
            wwid = ', wwid %s' % lun['wwid'] if lun.get('wwid') else ''
            lines.append('    lun %s: %s, %s%s' % (lun.get('lun'), lun.get('path'), size, wwid))
        acl = target.get('acl') or {}
        lines.append('    allowed: %s' % (', '.join((acl.get('initiators') or []) + (acl.get('addresses') or []))
                                          or 'nobody'))
        accounts = target.get('accounts') or {}
        if accounts.get('incoming'):
            lines.append('    CHAP users: %s' % ', '.join(accounts['incoming']))
        connected = ['%s from %s' % (c.get('initiator'), ', '.join(c.get('addresses') or []))
                     for c in target.get('connected') or []]
        # as tgt_target saw them when it ran: on a first converge the logins come after the export
        lines.append('    connected at export: %s' % ('; '.join(connected) or 'none'))
    return lines


def compute_lines(host, hostvars):
    lines = ['%s (compute node)' % host]
    sessions = _result(hostvars, host, 'sessions')
    if sessions is None:
        lines.append('  sessions: no target attached')
    else:
        for session in sessions.get('sessions') or []:
            disks = ', '.join('%s (lun %s)' % (d.get('name'), d.get('lun')) for d in session.get('devices') or [])
            lines.append('  session %s @ %s: %s, %s'
                         % (session.get('target'), session.get('portal'), session.get('state'), disks or 'no disk'))
    maps = (_result(hostvars, host, 'maps') or {}).get('maps')
    if maps is None:
        lines.append('  multipath: not configured in this run')
        return lines
    if not maps:
        lines.append('  multipath maps: none')
    for name in sorted(maps):
        item = maps[name]
        paths = ', '.join('%s %s/%s' % (p.get('dev'), p.get('state'), p.get('dm_state')) for p in item.get('paths') or [])
        lines.append('  map %s (%s, wwid %s): %s' % (name, item.get('dm'), item.get('wwid'), paths or 'no path'))
    return lines


def site_summary(hostvars, groups):
    """Lines of the summary for the storage_nodes and compute_nodes groups of ``groups``."""
    if not hasattr(hostvars, '__getitem__') or not isinstance(groups, dict):
        raise AnsibleFilterError('site_summary: call it as hostvars | openblock.storage.site_summary(groups)')
    lines = []
    for host in groups.get('storage_nodes', []):
        lines.extend(storage_lines(host, hostvars))
    for host in groups.get('compute_nodes', []):
        lines.extend(compute_lines(host, hostvars))
    return lines


class FilterModule:
    def filters(self):
        return {'site_summary': site_summary}
