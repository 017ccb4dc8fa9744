from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.openblock.storage.plugins.filter.cinder_volumes import (
    host_volume_iqns, thin_volumes, volume_targets)
from ansible_collections.openblock.storage.plugins.module_utils.lvm import parse_report, thick_facts, thick_spec

PREFIX = 'iqn.2010-10.org.openstack:'
GROUPS = {'all': ['storage1', 'compute1', 'compute2'], 'compute_nodes': ['compute1', 'compute2'],
          'storage_nodes': ['storage1']}
HOSTVARS = {
    'storage1': {},
    'compute1': {'compute_initiator_name': 'iqn.2004-10.com.ubuntu:01:c1'},
    'compute2': {'compute_initiator_name': 'iqn.2004-10.com.ubuntu:01:c2'},
}
VOLUMES = [
    {'name': 'one', 'size': '1G', 'attach_to': ['compute1']},
    {'name': 'both', 'size': '512M', 'attach_to': ['compute_nodes', 'compute1']},
    {'name': 'old', 'state': 'absent'},
    {'name': 'lun', 'device': '/dev/disk/by-id/virtio-shared-lun', 'attach_to': ['compute2']},
]


def test_multiattach_acl_is_exactly_the_attached_initiators():
    targets = volume_targets(VOLUMES, GROUPS, HOSTVARS, 'cinder-volumes', PREFIX)
    assert targets[0] == {'iqn': PREFIX + 'volume-one', 'state': 'present',
                          'luns': [{'lun': 1, 'path': '/dev/cinder-volumes/volume-one', 'size': '1G'}],
                          'initiators': ['iqn.2004-10.com.ubuntu:01:c1']}
    assert targets[1]['initiators'] == ['iqn.2004-10.com.ubuntu:01:c1', 'iqn.2004-10.com.ubuntu:01:c2']
    assert targets[2] == {'iqn': PREFIX + 'volume-old', 'state': 'absent'}


def test_device_exports_are_targets_but_not_thin_volumes():
    targets = volume_targets(VOLUMES, GROUPS, HOSTVARS, 'cinder-volumes', PREFIX)
    assert targets[3]['luns'] == [{'lun': 1, 'path': '/dev/disk/by-id/virtio-shared-lun'}]
    assert targets[3]['initiators'] == ['iqn.2004-10.com.ubuntu:01:c2']
    assert 'volume-lun' not in [v['name'] for v in thin_volumes(VOLUMES)]


def test_thin_volumes_split_by_state():
    assert thin_volumes(VOLUMES) == [{'name': 'volume-one', 'state': 'present', 'size': '1G'},
                                     {'name': 'volume-both', 'state': 'present', 'size': '512M'}]
    assert thin_volumes(VOLUMES, 'absent') == [{'name': 'volume-old', 'state': 'absent'}]


def test_host_volume_iqns():
    assert host_volume_iqns(VOLUMES, 'compute2', GROUPS, HOSTVARS, PREFIX) == [PREFIX + 'volume-both', PREFIX + 'volume-lun']
    assert host_volume_iqns(VOLUMES, 'compute1', GROUPS, HOSTVARS, PREFIX) == [PREFIX + 'volume-one', PREFIX + 'volume-both']


def test_detached_volumes_are_the_declared_ones_a_host_must_not_see():
    # absent everywhere, and attached elsewhere; a volume the inventory does not declare is left alone
    assert host_volume_iqns(VOLUMES, 'compute1', GROUPS, HOSTVARS, PREFIX, attached=False) == [
        PREFIX + 'volume-old', PREFIX + 'volume-lun']
    assert host_volume_iqns(VOLUMES, 'compute2', GROUPS, HOSTVARS, PREFIX, attached=False) == [
        PREFIX + 'volume-one', PREFIX + 'volume-old']


@pytest.mark.parametrize('volumes, words', [
    ([{'name': 'x', 'size': '1G', 'attach_to': ['nohost']}], ["'nohost'", 'neither a host nor a group']),
    ([{'name': 'bad name', 'size': '1G'}], ["storage_node_volumes[0].name", "'bad name'"]),
    ([{'name': 'x'}], ['needs a size']),
    ([{'name': 'x', 'size': '1G', 'device': '/dev/vdc'}], ['not both']),
    ([{'name': 'x', 'size': '1G', 'state': 'gone'}], ["state='gone'"]),
])
def test_bad_volumes_name_the_entry(volumes, words):
    with pytest.raises(AnsibleFilterError) as err:
        volume_targets(volumes, GROUPS, HOSTVARS, 'cinder-volumes', PREFIX)
    for word in words:
        assert word in str(err.value)


def test_unknown_initiator_says_what_to_run():
    hostvars = dict(HOSTVARS, compute2={})
    with pytest.raises(AnsibleFilterError, match='run the compute_initiator role on compute2'):
        volume_targets(VOLUMES, GROUPS, hostvars, 'cinder-volumes', PREFIX)


def test_the_lists_fit_lvm_thickvol_and_luns_are_the_thick_lv_paths():
    for state in ('present', 'absent'):
        _spec, errors = thick_spec(dict(vg='cinder-volumes', volumes=thin_volumes(VOLUMES, state)))
        assert errors == []
    # the device path LVM reports for a thick LV (recorded in the lab) is /dev/<vg>/<lv>, as the LUN path
    fixture = Path(__file__).resolve().parents[2] / 'fixtures' / 'lvm' / 'lvs_thick_mixed.json'
    facts = thick_facts('itest_lvm_thick', parse_report(fixture.read_text(), 'lv'))
    assert facts['volumes']['thick-a']['path'] == '/dev/itest_lvm_thick/thick-a'
    targets = volume_targets([dict(name='a', size='1G')], GROUPS, HOSTVARS, 'itest_lvm_thick', PREFIX)
    assert targets[0]['luns'][0]['path'] == '/dev/itest_lvm_thick/volume-a'
