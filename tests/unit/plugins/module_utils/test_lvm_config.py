"""lvm_config: the file editor, the device classifier and the filter planner, on facts recorded in the lab.

The fixtures under tests/unit/fixtures/lvm_config/ were recorded on the lab VM (Debian 12, lvm2
2.03.16, systemd 252):
- lvm.conf.bookworm, lvmlocal.conf.bookworm: the files the lvm2 package installs, as shipped.
- pvs_layout.json: ``pvs --config devices/scan_lvs=1`` (the readers' JSON report) with five PVs:
  /dev/vdb (VG cinder-volumes, which holds thin volume volume-1), a guest's PV inside that volume
  (VG guestvg), /dev/loop0 on a backing file (VG loopvg), /dev/mapper/localdm (dm-linear on /dev/vdc,
  VG dmvg) and /dev/sda, a LUN of tgt on the VM itself logged in over iSCSI (VG remotevg).
- facts_layout.json: ``read_facts`` run on the VM for those PVs and the named devices
  /dev/disk/by-id/virtio-spare3, /dev/vdd, /dev/loop0, /dev/disk/by-id/virtio-nonexistent, /dev/sdz.
  A udev rule like the storage_node role's gave the loop device /dev/disk/by-id/openblock-loop-loopvg.
- lvmconfig_readback.out: ``lvmconfig devices/global_filter global/use_lvmlockd local/host_id`` on
  candidate files in an LVM_SYSTEM_DIR.
- lvmconfig_one_element.out: ``lvmconfig devices/global_filter`` of a file holding
  global_filter = [ "r|.*|" ]: LVM prints an array of one element as that element alone.
- lvmconfig_backslash.out: ``lvmconfig devices/global_filter`` of a file holding
  "a|^/dev/vd\\w\\.x$|" - the same output as for "a|^/dev/vd\\\\w\\\\.x$|": LVM reads a doubled
  backslash as one and keeps a single one.
"""

import copy
import json
import os
from pathlib import Path

import pytest

from ansible_collections.openblock.storage.plugins.module_utils.lvm import parse_report
from ansible_collections.openblock.storage.plugins.module_utils.lvm_config import (
    accept_entry, classify, config_spec, parse_readback, parse_value, plan_config, plan_filter, read_block,
    read_facts, readback_errors, scan, set_setting, split_dm_name, stable_name)

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'lvm_config'
LVM_CONF = (FIXTURES / 'lvm.conf.bookworm').read_text()
LVMLOCAL_CONF = (FIXTURES / 'lvmlocal.conf.bookworm').read_text()
FACTS = json.loads((FIXTURES / 'facts_layout.json').read_text())
TEXTS = {'lvm': LVM_CONF, 'lvmlocal': LVMLOCAL_CONF}


def spec_of(**params):
    spec, errors = config_spec(params)
    assert errors == []
    return spec


def filter_spec(devices=(), accept=(), exclude_vgs=()):
    return dict(devices=list(devices), accept=list(accept), exclude_vgs=list(exclude_vgs))


def changed_lines(before, after):
    """Lines removed from and added to ``before``, in order (the files differ only in managed lines)."""
    old, new = before.splitlines(), after.splitlines()
    return [line for line in old if line not in new], [line for line in new if line not in old]


# ---------------------------------------------------------------------------------------------
# The files

def test_the_shipped_files_have_their_sections_and_no_active_managed_setting():
    sections, settings = scan(LVM_CONF.splitlines(True))
    assert {'config', 'devices', 'global', 'activation'} <= set(sections)
    assert ('devices', 'global_filter') not in settings
    assert ('global', 'use_lvmlockd') not in settings  # only the commented example
    sections, settings = scan(LVMLOCAL_CONF.splitlines(True))
    assert list(sections) == ['local'] and ('local', 'host_id') not in settings


def test_new_settings_go_first_in_their_section_and_nothing_else_changes():
    spec = spec_of(settings={'global/use_lvmlockd': 1, 'local/host_id': 7})
    plan = plan_config(spec, TEXTS)
    lvm, local = plan['texts']['lvm'], plan['texts']['lvmlocal']
    assert changed_lines(LVM_CONF, lvm) == ([], ['\tuse_lvmlockd = 1'])
    assert lvm.splitlines()[lvm.splitlines().index('global {') + 1] == '\tuse_lvmlockd = 1'
    assert changed_lines(LVMLOCAL_CONF, local) == ([], ['\thost_id = 7'])
    assert '\t# use_lvmlockd = 0' in lvm and '\t# host_id = 0' in local  # the comments stay
    assert plan['before'] == {'/etc/lvm/lvm.conf': {'global/use_lvmlockd': None},
                              '/etc/lvm/lvmlocal.conf': {'local/host_id': None}}
    assert plan['after'] == {'/etc/lvm/lvm.conf': {'global/use_lvmlockd': 'use_lvmlockd = 1'},
                             '/etc/lvm/lvmlocal.conf': {'local/host_id': 'host_id = 7'}}


def test_second_run_is_a_no_op_and_a_changed_value_replaces_its_line_in_place():
    spec = spec_of(settings={'global/use_lvmlockd': 1, 'local/host_id': 7})
    done = plan_config(spec, TEXTS)['texts']
    assert plan_config(spec, done)['texts'] == {}
    moved = plan_config(spec_of(settings={'local/host_id': 8}), done)['texts']
    assert list(moved) == ['lvmlocal']
    assert changed_lines(done['lvmlocal'], moved['lvmlocal']) == (['\thost_id = 7'], ['\thost_id = 8'])
    assert len(moved['lvmlocal']) == len(done['lvmlocal'])


def test_a_line_the_old_role_wrote_is_kept_when_its_value_is_the_same():
    # lineinfile with to_json wrote ["...", "..."] without LVM's spaces.
    old = LVM_CONF.replace('devices {\n', 'devices {\n\tglobal_filter = ["a|^/dev/vdb$|", "r|.*|"]\n', 1)
    spec = spec_of(global_filter=filter_spec(devices=['/dev/disk/by-id/virtio-spare1']))
    plan = plan_config(spec, {'lvm': old}, FACTS_NO_PVS)
    removed, added = changed_lines(old, plan['texts']['lvm'])
    assert removed == ['\tglobal_filter = ["a|^/dev/vdb$|", "r|.*|"]']
    assert added == ['\tglobal_filter = [ "a|^/dev/disk/by-id/virtio-spare1$|", "r|.*|" ]']
    assert plan_config(spec, {'lvm': plan['texts']['lvm']}, FACTS_NO_PVS)['texts'] == {}


def test_a_duplicate_and_a_multi_line_setting_become_one_line():
    text = ('devices {\n\tdir = "/dev"\n\tglobal_filter = [ "a|x|",\n\t\t"r|.*|" ]  # old\n'
            '\tglobal_filter = [ "r|.*|" ]\n}\n')
    new, before, after = set_setting(text, 'devices', 'global_filter', ['a|y|', 'r|.*|'])
    assert new == 'devices {\n\tdir = "/dev"\n\tglobal_filter = [ "a|y|", "r|.*|" ]\n}\n'
    assert before == ['\tglobal_filter = [ "a|x|",\n\t\t"r|.*|" ]  # old', '\tglobal_filter = [ "r|.*|" ]']
    assert after == '\tglobal_filter = [ "a|y|", "r|.*|" ]'


def test_a_missing_section_or_file_is_added():
    assert set_setting('config {\n}', 'local', 'host_id', 3)[0] == 'config {\n}\nlocal {\n\thost_id = 3\n}\n'
    spec = spec_of(settings={'local/host_id': 3})
    assert plan_config(spec, {'lvm': LVM_CONF, 'lvmlocal': None})['texts'] == {'lvmlocal': 'local {\n\thost_id = 3\n}\n'}
    plan = plan_config(spec_of(settings={'global/use_lvmlockd': 1}), {'lvm': None})
    assert plan['errors'] == ['/etc/lvm/lvm.conf does not exist; install lvm2 first']


def test_values_and_the_lvmconfig_read_back():
    assert parse_value(' [ "a|^/dev/x$|", "r|.*|" ] ') == ['a|^/dev/x$|', 'r|.*|']
    assert parse_value('1') == 1 and parse_value('"text"') == 'text'
    assert parse_value('[ "a", ') is None and parse_value('1 2') is None
    read = parse_readback((FIXTURES / 'lvmconfig_readback.out').read_text())
    assert read == {'global_filter': ['a|^/dev/disk/by-id/virtio-spare1$|', 'r|.*|'], 'use_lvmlockd': 1, 'host_id': 7}
    spec = spec_of(settings={'global/use_lvmlockd': 1, 'local/host_id': 7},
                   global_filter=filter_spec(devices=['/dev/disk/by-id/virtio-spare1']))
    plan = plan_config(spec, TEXTS, FACTS_NO_PVS)
    assert readback_errors(spec, plan, (FIXTURES / 'lvmconfig_readback.out').read_text()) == []
    spec = spec_of(settings={'local/host_id': 8})
    assert readback_errors(spec, plan_config(spec, TEXTS), 'host_id=7\n') == ["lvmconfig reads local/host_id as 7, not 8"]


def test_a_filter_of_one_pattern_reads_back_as_that_pattern():
    """A host with nothing to accept gets the reject-all alone, which lvmconfig prints without brackets."""
    spec = spec_of(global_filter=filter_spec())
    plan = plan_config(spec, TEXTS, FACTS_NO_PVS)
    assert plan['filter']['value'] == ['r|.*|']
    out = (FIXTURES / 'lvmconfig_one_element.out').read_text()
    assert parse_readback(out) == {'global_filter': 'r|.*|'}
    assert readback_errors(spec, plan, out) == []
    assert readback_errors(spec, plan, 'global_filter="a|x|"\n') == [
        "lvmconfig reads devices/global_filter as 'a|x|', not ['r|.*|']"]


def test_backslashes_are_written_doubled_and_read_as_lvm_reads_them():
    pattern = 'a|^/dev/vd\\w\\.x$|'
    spec = spec_of(global_filter=filter_spec(accept=[pattern]))
    plan = plan_config(spec, TEXTS, FACTS_NO_PVS)
    assert changed_lines(LVM_CONF, plan['texts']['lvm'])[1] == ['\tglobal_filter = [ "a|^/dev/vd\\\\w\\\\.x$|", "r|.*|" ]']
    assert readback_errors(spec, plan, (FIXTURES / 'lvmconfig_backslash.out').read_text()) == []
    assert parse_value('"a|^/dev/vd\\w$|"') == 'a|^/dev/vd\\w$|'  # a single one, as a hand-written file has it
    assert plan_config(spec, plan['texts'], FACTS_NO_PVS)['texts'] == {}


def test_a_templated_number_is_written_as_a_number():
    assert spec_of(settings={'local/host_id': '7'})['settings'] == [('lvmlocal', 'local', 'host_id', 7)]


@pytest.mark.parametrize('params, message', [
    ({'settings': {'use_lvmlockd': 1}}, "settings['use_lvmlockd']: the key is not section/name"),
    ({'settings': {'devices/global_filter': ['r|.*|']}}, 'with the global_filter option'),
    ({'settings': {'global/x': {'a': 1}}}, "settings['global/x']={'a': 1}: give a number"),
    ({'settings': {'devices/dir': 'a"b'}}, 'holds a double quote'),
    ({'global_filter': {'devices': ['sdb']}}, "global_filter.devices[0]='sdb' is not a device path"),
    ({'global_filter': {'accept': ['/dev/mapper/shared-lun']}}, "global_filter.accept[0]='/dev/mapper/shared-lun' is not an accept pattern"),
    ({'global_filter': {'accept': ['a|^/dev/x$|\\']}}, 'ends with a backslash'),
    ({'global_filter': {'exclude_vgs': ['bad name']}}, "global_filter.exclude_vgs[0]='bad name'"),
    ({}, 'nothing to set'),
])
def test_bad_input_is_refused_naming_the_option_and_the_value(params, message):
    _spec, errors = config_spec(params)
    assert len(errors) == 1 and message in errors[0]


# ---------------------------------------------------------------------------------------------
# Devices

FACTS_NO_PVS = dict(FACTS, pvs=[])


def test_the_recorded_devices_are_classified():
    blocks = FACTS['blocks']
    assert classify('vdb', blocks, ['cinder-volumes'])[0] == 'local'
    assert classify('dm-5', blocks, ['cinder-volumes']) == ('local', 'dm-5 is on vdc')
    assert classify('loop0', blocks, []) == ('local', 'loop0 is a loop device of /var/tmp/bf.img')
    assert classify('sda', blocks, [])[0] == 'remote'
    assert classify('dm-4', blocks, ['cinder-volumes'])[0] == 'excluded'
    # without the exclusion, the guest's PV is found local by walking dm-4 -> tpool -> tdata/tmeta -> vdb
    assert classify('dm-4', blocks, [])[0] == 'local'
    assert split_dm_name('cinder--volumes-cinder--volumes--pool-tpool') == ('cinder-volumes', 'cinder-volumes-pool-tpool')


def test_filter_of_the_recorded_layout_accepts_named_and_local_pvs_by_stable_names_only():
    spec = filter_spec(devices=['/dev/disk/by-id/virtio-spare3'], accept=['a|^/dev/mapper/shared-lun$|'],
                       exclude_vgs=['cinder-volumes'])
    value, accepted, rejected, errors = plan_filter(spec, FACTS)
    assert errors == []
    assert value == ['a|^/dev/mapper/shared-lun$|',
                     'a|^/dev/disk/by-id/virtio-spare3$|',
                     'a|^/dev/disk/by-id/openblock-loop-loopvg$|',
                     'a|^/dev/mapper/localdm$|',
                     'a|^/dev/disk/by-id/virtio-spare1$|',
                     'r|.*|']
    assert [(a['device'], a['name']) for a in accepted] == [
        ('/dev/disk/by-id/virtio-spare3', '/dev/disk/by-id/virtio-spare3'),
        ('/dev/loop0', '/dev/disk/by-id/openblock-loop-loopvg'),
        ('/dev/mapper/localdm', '/dev/mapper/localdm'),
        ('/dev/vdb', '/dev/disk/by-id/virtio-spare1')]
    assert [(r['device'], r['state']) for r in rejected] == [
        ('/dev/cinder-volumes/volume-1', 'excluded'), ('/dev/sda', 'remote')]
    assert not any('/dev/loop' in entry or '/dev/sd' in entry or '/dev/vd' in entry for entry in value)


def test_stable_names_never_fall_back_to_kernel_names():
    links = FACTS['links']
    assert stable_name('/dev/vdd', 'vdd', links) == '/dev/disk/by-id/virtio-spare3'
    assert stable_name('/dev/loop0', 'loop0', links) == '/dev/disk/by-id/openblock-loop-loopvg'
    # before the role's udev rule, a loop device has only its by-diskseq link, which changes at reboot
    without_rule = {'loop0': [p for p in links['loop0'] if 'openblock-loop' not in p and 'lvm-pv-uuid' not in p]}
    assert without_rule == {'loop0': ['/dev/disk/by-diskseq/17']}
    assert stable_name('/dev/loop0', 'loop0', without_rule) is None
    # the PV label's link only as a last resort (it appears with pvcreate)
    only_label = {'loop0': [p for p in links['loop0'] if 'openblock-loop' not in p]}
    assert stable_name('/dev/loop0', 'loop0', only_label).startswith('/dev/disk/by-id/lvm-pv-uuid-')
    assert accept_entry('/dev/disk/by-path/pci-0000:00:05.0+x') == 'a|^/dev/disk/by-path/pci-0000:00:05[.]0[+]x$|'


def test_a_named_device_without_a_stable_name_or_missing_is_refused():
    facts = copy.deepcopy(FACTS)
    facts['links']['loop0'] = ['/dev/disk/by-diskseq/17']
    spec = filter_spec(devices=['/dev/loop0', '/dev/sdz', '/dev/disk/by-id/virtio-nonexistent', '/dev/vdd'])
    value, accepted, _rejected, errors = plan_filter(spec, dict(facts, pvs=[]))
    assert errors == [
        "global_filter.devices[0]='/dev/loop0' has no name that survives a reboot; give its /dev/disk/by-id/... "
        "name (ls -l /dev/disk/by-id/)",
        "global_filter.devices[1]='/dev/sdz' does not exist; give its /dev/disk/by-id/... name (ls -l /dev/disk/by-id/)"]
    # a stable name that is not there yet (check mode before the loop unit ran) is accepted as given
    assert value == ['a|^/dev/disk/by-id/virtio-nonexistent$|', 'a|^/dev/disk/by-id/virtio-spare3$|', 'r|.*|']
    assert accepted[0]['why'] == 'named (not present now)'


def test_fail_closed_a_device_that_cannot_be_read_is_not_accepted():
    facts = copy.deepcopy(FACTS)
    # what read_block returns when sysfs cannot be read (see the reader test below), for vdc below localdm
    facts['blocks']['vdc'] = {'error': "reading /sys/class/block/vdc: [Errno 13] Permission denied"}
    plan = plan_config(spec_of(global_filter=filter_spec(exclude_vgs=['cinder-volumes'])), TEXTS, facts)
    assert 'a|^/dev/mapper/localdm$|' not in plan['filter']['value']
    assert {'device': '/dev/mapper/localdm', 'state': 'unknown',
            'why': 'vdc: reading /sys/class/block/vdc: [Errno 13] Permission denied'} in plan['filter']['rejected']
    assert any('/dev/mapper/localdm is not accepted' in w for w in plan['warnings'])
    # a PV whose device is gone, and a disk with nothing in sysfs to say what it is on
    facts['names']['/dev/loop0'] = None
    facts['blocks']['vdb'] = {'slaves': []}
    value = plan_filter(filter_spec(), facts)[0]
    assert value == ['r|.*|']


def test_the_reader_fails_closed_on_a_sysfs_it_cannot_read(tmp_path):
    block = tmp_path / 'class' / 'block' / 'vdq'
    (block / 'slaves').mkdir(parents=True)
    (block / 'dm').mkdir()
    (block / 'dm' / 'name').write_text('x')
    os.chmod(str(block / 'dm' / 'name'), 0)
    info = read_block('vdq', str(tmp_path))
    if os.geteuid() != 0:
        assert 'error' in info and 'Permission denied' in info['error']
    assert read_block('vdz', str(tmp_path)) == {'error': 'no %s/class/block/vdz' % tmp_path}
    facts = read_facts([{'pv_name': '/dev/nonexistent-pv', 'vg_name': 'x'}], [], str(tmp_path), str(tmp_path))
    assert facts['names'] == {'/dev/nonexistent-pv': None}
    value, accepted, rejected, errors = plan_filter(filter_spec(), facts)
    assert (value, accepted, errors) == (['r|.*|'], [], [])
    assert rejected == [{'device': '/dev/nonexistent-pv', 'state': 'unknown', 'why': 'no such device'}]


def test_the_reader_takes_the_pvs_report():
    pvs = parse_report((FIXTURES / 'pvs_layout.json').read_text(), 'pv')
    assert [pv['pv_name'] for pv in pvs] == [pv['pv_name'] for pv in FACTS['pvs']]


def test_plan_with_filter_and_settings_is_one_write_per_file_and_then_a_no_op():
    spec = spec_of(global_filter=filter_spec(devices=['/dev/disk/by-id/virtio-spare1'], exclude_vgs=['cinder-volumes']),
                   settings={'global/use_lvmlockd': 1, 'local/host_id': 7})
    plan = plan_config(spec, TEXTS, FACTS)
    assert sorted(plan['texts']) == ['lvm', 'lvmlocal']
    removed, added = changed_lines(LVM_CONF, plan['texts']['lvm'])
    assert removed == [] and added == [
        '\tglobal_filter = [ "a|^/dev/disk/by-id/virtio-spare1$|", "a|^/dev/disk/by-id/openblock-loop-loopvg$|", '
        '"a|^/dev/mapper/localdm$|", "r|.*|" ]', '\tuse_lvmlockd = 1']
    assert plan_config(spec, plan['texts'], FACTS)['texts'] == {}
