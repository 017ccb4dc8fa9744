# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the inventory's storage_node_volumes into the arguments of lvm_thinvol (or lvm_thickvol) and tgt_target.

A volume is an LV (``size``), thin or thick as the role's lvm_type says, or a disk of the storage node
exported as it is (``device``). Either kind of LV is /dev/<vg>/volume-<name>.

Kept in Python, not Jinja, so the ACL derivation (which initiators may see which volume) is one
readable function with unit tests.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

VOLUME_NAME_RE = re.compile(r'^[a-zA-Z0-9][a-zA-Z0-9_.+-]{0,62}$')


def _check(volume, index):
    where = 'storage_node_volumes[%d]' % index
    if not isinstance(volume, dict) or 'name' not in volume:
        raise AnsibleFilterError('%s=%r: each volume is a dict with at least a name' % (where, volume))
    name = str(volume['name'])
    if not VOLUME_NAME_RE.match(name):
        raise AnsibleFilterError('%s.name=%r: use letters, digits, ".", "_", "+" and "-" (at most 63, '
                                 'starting with a letter or digit)' % (where, name))
    state = volume.get('state', 'present')
    if state not in ('present', 'absent'):
        raise AnsibleFilterError('%s.state=%r: choose present or absent' % (where, state))
    if volume.get('size') and volume.get('device'):
        raise AnsibleFilterError('%s (%s): give a size (a thin volume) or a device (an exported disk), '
                                 'not both' % (where, name))
    if state == 'present' and not (volume.get('size') or volume.get('device')):
        raise AnsibleFilterError('%s (%s): a present volume needs a size, for example 10G, or a device '
                                 'to export' % (where, name))
    return name, state


def thin_volumes(volumes, state='present'):
    """The lvm_thinvol / lvm_thickvol ``volumes`` list for the declared volumes in ``state``."""
    result = []
    for index, volume in enumerate(volumes or []):
        name, vstate = _check(volume, index)
        if vstate != state or volume.get('device'):
            continue
        entry = {'name': 'volume-' + name, 'state': vstate}
        if vstate == 'present':
            entry['size'] = str(volume['size'])
        result.append(entry)
    return result


def attached_hosts(volume, groups, hostvars, index=0):
    """Hosts a volume is attached to: each attach_to entry is a group name or a host name."""
    hosts = []
    for entry in volume.get('attach_to') or []:
        if entry in groups:
            members = groups[entry]
        elif entry in hostvars:
            members = [entry]
        else:
            raise AnsibleFilterError('storage_node_volumes[%d].attach_to: %r is neither a host nor a group '
                                     'of the inventory' % (index, entry))
        hosts.extend(h for h in members if h not in hosts)
    return hosts


def volume_targets(volumes, groups, hostvars, vg, iqn_prefix, initiator_var='compute_initiator_name'):
    """The tgt_target ``targets`` list: one target per volume, its ACL the attached hosts' initiators."""
    targets = []
    for index, volume in enumerate(volumes or []):
        name, state = _check(volume, index)
        target = {'iqn': iqn_prefix + 'volume-' + name, 'state': state}
        if state == 'present':
            initiators = []
            for host in attached_hosts(volume, groups, hostvars, index):
                initiator = hostvars[host].get(initiator_var)
                if not initiator:
                    raise AnsibleFilterError('volume %s is attached to %s, whose %s is unknown: run the '
                                             'compute_initiator role on %s first (site.yml does)'
                                             % (name, host, initiator_var, host))
                if initiator not in initiators:
                    initiators.append(initiator)
            lun = {'lun': 1, 'path': volume.get('device') or '/dev/%s/volume-%s' % (vg, name)}
            if volume.get('size'):
                # check mode predicts the LUN's resize when the volume grows in the same run
                lun['size'] = str(volume['size'])
            target['luns'] = [lun]
            target['initiators'] = sorted(initiators)
        targets.append(target)
    return targets


def host_volume_iqns(volumes, host, groups, hostvars, iqn_prefix, attached=True):
    """IQNs of the present volumes attached to ``host``: what its initiator logs in to. With
    ``attached=False``, those of the other declared volumes (absent, or attached elsewhere): what it
    must log out of. A volume the list does not declare is in neither."""
    iqns = []
    for index, volume in enumerate(volumes or []):
        name, state = _check(volume, index)
        if (state == 'present' and host in attached_hosts(volume, groups, hostvars, index)) == attached:
            iqns.append(iqn_prefix + 'volume-' + name)
    return iqns


class FilterModule(object):
    def filters(self):
        return {
            'thin_volumes': thin_volumes,
            'volume_targets': volume_targets,
            'host_volume_iqns': host_volume_iqns,
        }
