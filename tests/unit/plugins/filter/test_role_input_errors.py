"""role_input_errors: the roles' defaults and a realistic inventory pass; the bad rows of
tests/bad_inputs.yml are checked end to end by tests/unit/roles/test_bad_role_inputs.py."""

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.openblock.storage.plugins.filter.role_input_errors import role_input_errors

from pathlib import Path

ROLES = Path(__file__).resolve().parents[4] / 'roles'


def defaults(role):
    return yaml.safe_load((ROLES / role / 'defaults' / 'main.yml').read_text())


GROUPS = {'compute_nodes': ['compute1', 'compute2'], 'storage_nodes': ['storage1']}
HOSTVARS = {'compute1': {'compute_initiator_name': 'iqn.2004-10.com.ubuntu:01:aaaa'},
            'compute2': {'compute_initiator_name': 'iqn.2004-10.com.ubuntu:01:bbbb'},
            'storage1': {}}


def test_storage_node_defaults_and_a_seed_inventory_pass():
    values = defaults('storage_node')
    values['storage_node_volumes'] = [dict(name='vol1', size='1G', attach_to=['compute_nodes']),
                                      dict(name='shared-lun', size='2G', attach_to=['compute1', 'compute2']),
                                      dict(name='gone', state='absent')]
    assert role_input_errors(values, 'storage_node', GROUPS, HOSTVARS) == []


def test_compute_initiator_defaults_pass():
    values = defaults('compute_initiator')
    values.update(compute_initiator_portals=['10.50.1.10:3260', '[fd00::10]:3260', '10.50.2.10'],
                  compute_initiator_targets=['iqn.2010-10.org.openstack:volume-vol1'],
                  compute_initiator_lvm_filter_accept=['a|^/dev/mapper/shared-lun$|'],
                  compute_initiator_chap=None)  # the default is a template: the storage node's account
    assert role_input_errors(values, 'compute_initiator') == []


SECRET = 'lab-only-Zq8fT2mWx9'


def test_chap_accounts_pass_on_both_sides():
    chap = dict(user='openblock-lab', password=SECRET)
    assert role_input_errors(dict(defaults('storage_node'), storage_node_chap=chap), 'storage_node') == []
    assert role_input_errors(dict(storage_node_chap=None), 'storage_node') == role_input_errors(
        dict(), 'storage_node')
    assert role_input_errors(dict(compute_initiator_chap=chap), 'compute_initiator') == role_input_errors(
        dict(compute_initiator_chap=None), 'compute_initiator')


@pytest.mark.parametrize('chap, words', [
    (dict(user='open lab', password=SECRET), ["storage_node_chap.user='open lab'", '1 to 64']),
    (dict(user='openblock-lab', password='short-1'), ['storage_node_chap.password', 'shorter than 12']),
    (dict(user='openblock-lab', password=SECRET + ' #x'), ['storage_node_chap.password', 'shell']),
    (dict(user='openblock-lab'), ['storage_node_chap must be a dict with exactly user and password']),
    ('openblock-lab:' + SECRET, ['storage_node_chap must be a dict', 'got str']),
])
def test_bad_storage_node_chap_is_named_without_its_password(chap, words):
    errors = role_input_errors(dict(defaults('storage_node'), storage_node_chap=chap), 'storage_node')
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0], errors
    assert SECRET not in errors[0]


@pytest.mark.parametrize('chap, words', [
    (dict(user='', password=SECRET), ["compute_initiator_chap.user: ''", '1 to 255 characters']),
    (dict(user='openblock-lab', password=SECRET + ' x'), ['compute_initiator_chap.password: the value']),
    (dict(user='openblock-lab', password='x' * 256), ['compute_initiator_chap.password: the value', '255']),
    (dict(user='openblock-lab', password=SECRET, extra=1), ["got ['extra', 'password', 'user']"]),
])
def test_bad_compute_initiator_chap_is_named_without_its_password(chap, words):
    values = dict(compute_initiator_chap=chap, compute_initiator_iqn_prefix='iqn.2010-10.org.openstack:',
                  compute_initiator_name_prefix='iqn.2004-10.com.ubuntu')
    errors = role_input_errors(values, 'compute_initiator')
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0], errors
    assert SECRET not in errors[0] and 'x' * 20 not in errors[0]


def test_multipath_aliases_of_each_kind_pass():
    values = dict(multipath_aliases=[dict(alias='vol1', iqn='iqn.2010-10.org.openstack:volume-vol1'),
                                     dict(alias='shared-lun', wwid='360000000000000000e00000000010001'),
                                     dict(alias='nvme1', wwid='eui.0025388b91b1b2c3'),
                                     dict(alias='vol2', volume='vol2')])
    assert role_input_errors(values, 'multipath') == []


def test_shared_lvm_defaults_pass_and_bad_lvs_are_named():
    values = defaults('shared_lvm')
    assert role_input_errors(values, 'shared_lvm') == []
    values['shared_lvm_lvs'] = [dict(name='images', size='20G'), dict(name='images', size='5%VG')]
    assert role_input_errors(values, 'shared_lvm') == [
        "shared_lvm_lvs[1].name='images' is also shared_lvm_lvs[0]; list each LV once",
        "shared_lvm_lvs[1].size='5%VG': percent sizes do not apply here; give bytes with a unit, for example 10G"]


def test_unknown_role_is_an_error():
    with pytest.raises(AnsibleFilterError, match="unknown role 'nosuch'"):
        role_input_errors({}, 'nosuch')


def test_storage_node_thick_needs_no_pool_and_checks_its_clear_settings():
    values = dict(defaults('storage_node'), storage_node_lvm_type='thick', storage_node_pool='bad pool',
                  storage_node_pool_size='95%VGG', storage_node_volume_clear_size='100')
    assert role_input_errors(values, 'storage_node') == []  # the pool variables do not apply to thick
    values.update(storage_node_lvm_type='thicc', storage_node_volume_clear='shred', storage_node_volume_clear_size=-1)
    assert role_input_errors(values, 'storage_node')[:3] == [
        "storage_node_lvm_type='thicc': choose thin or thick",
        "storage_node_volume_clear='shred': choose zero or none",
        'storage_node_volume_clear_size=-1 is not a number of MiB; give 0 (clear the whole volume) or the MiB to '
        'clear from its start, for example 100']


def test_storage_node_over_subscription_and_autoextend_settings():
    values = dict(defaults('storage_node'), storage_node_max_over_subscription_ratio='1.5',
                  storage_node_thin_pool_autoextend_threshold='100', storage_node_thin_pool_autoextend_percent=100)
    assert role_input_errors(values, 'storage_node') == []  # inventory strings of numbers are taken
    values.update(storage_node_max_over_subscription_ratio=0.9, storage_node_thin_pool_autoextend_threshold=49,
                  storage_node_thin_pool_autoextend_percent=20.5)
    assert role_input_errors(values, 'storage_node') == [
        'storage_node_max_over_subscription_ratio=0.9 is not a ratio of at least 1.0 (as Cinder requires); give the '
        'most virtual size the pool may hold per byte of its own size, for example 20.0',
        'storage_node_thin_pool_autoextend_threshold=49 is not a whole percent from 50 to 100; give the pool usage '
        'that triggers autoextend, for example 80; 100 turns autoextend off',
        'storage_node_thin_pool_autoextend_percent=20.5 is not a whole percent from 1 to 100; give how much '
        'autoextend grows the pool, in percent of its size, for example 20']
    for bad in ('many', float('inf'), True):
        values = dict(defaults('storage_node'), storage_node_max_over_subscription_ratio=bad)
        assert len(role_input_errors(values, 'storage_node')) == 1, bad
    # thick has no pool: its pool settings are not checked
    values = dict(defaults('storage_node'), storage_node_lvm_type='thick', storage_node_max_over_subscription_ratio=0)
    assert role_input_errors(values, 'storage_node') == []
