"""lvm_vg on the lab VM: real LVM on the spare disks.

Resources of this file only: disks virtio-spare1 and virtio-spare2, VGs named itest_lvm*, the dm
device itest_lvm_grow (on spare2, to grow a PV). Both disks are left without any signature.
"""

import pytest
from lvm_disks import DISK1, DISK2, assert_wiped, clean_disks, lvm_state

VG = 'itest_lvm_vg'
GROW = '/dev/mapper/itest_lvm_grow'


@pytest.fixture(scope='module')
def disks(lab):
    clean_disks(lab)
    yield lab
    clean_disks(lab)
    assert_wiped(lab)


def test_bad_input_fails_before_any_change(disks):
    lab = disks
    before = lvm_state(lab)
    result = lab.module('lvm_vg', dict(name='itest lvm', pvs=[DISK1, '/dev/disk/by-id/virtio-nosuch', 'sdb'],
                                       pesize='ten'))
    assert result['failed'] and result['commands'] == []
    for piece in ("name='itest lvm'", "pvs[1]='/dev/disk/by-id/virtio-nosuch' does not exist",
                  "pvs[2]='sdb' is not a device path", "pesize='ten' is not a size"):
        assert piece in result['msg']
    assert lvm_state(lab) == before


def test_signature_refused_without_force(disks):
    lab = disks
    lab.sh('mkfs.ext4 -q -F %s' % DISK1)
    before = lvm_state(lab)
    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1, DISK2]))
    assert result['failed']
    assert '%s carries ext4 signature(s)' % DISK1 in result['msg'] and 'force=true' in result['msg']
    # check mode with force shows the wipe and the creation, and does neither
    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1, DISK2], force=True), check=True)
    assert result['changed'] and result['commands'] == [
        'wipefs --all ' + DISK1, 'vgcreate %s %s %s' % (VG, DISK1, DISK2)]
    assert lvm_state(lab) == before
    assert 'ext4' in lab.out('wipefs --no-act %s' % DISK1)


def test_create_with_force_then_rerun_changes_nothing(disks):
    lab = disks
    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1, DISK2], force=True), diff=True)
    assert result['changed'], result
    assert result['diff']['before'] == {}
    assert result['diff']['after']['pvs'] == {DISK1: 255, DISK2: 255}
    vg = result['vg']
    assert vg['name'] == VG and vg['pv_count'] == 2 and vg['lv_count'] == 0
    assert vg['extent_size'] == 4 << 20 and vg['size'] == 510 * (4 << 20) == vg['free']
    assert sorted(pv['name'] for pv in vg['pvs']) == ['/dev/vdb', '/dev/vdc']
    assert lab.out('vgs --noheadings -o pv_count %s' % VG).strip() == '2'

    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1, DISK2]), diff=True)
    assert not result['changed'] and result['commands'] == []
    assert result['diff']['before'] == result['diff']['after']


def test_pv_of_another_vg_refused_even_with_force(disks):
    lab = disks
    before = lvm_state(lab)
    result = lab.module('lvm_vg', dict(name='itest_lvm_other', pvs=[DISK2], force=True))
    assert result['failed'] and '%s is a physical volume of volume group %s' % (DISK2, VG) in result['msg']
    assert lvm_state(lab) == before


def test_reduce_refuses_a_pv_with_extents_then_releases_an_empty_one(disks):
    lab = disks
    lab.sh('lvcreate -q -L 8M -n thick %s /dev/vdc' % VG)
    before = lvm_state(lab)
    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1], reduce=True))
    assert result['failed'] and '/dev/vdc still holds 2 used extent(s)' in result['msg']
    assert lvm_state(lab) == before
    lab.sh('lvremove -q -f %s/thick' % VG)
    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1], reduce=True), diff=True)
    assert result['changed'] and result['commands'] == ['vgreduce %s /dev/vdc' % VG, 'pvremove /dev/vdc']
    assert result['diff']['after']['pvs'] == {DISK1: 255}
    assert result['vg']['pv_count'] == 1
    assert lab.out('wipefs --no-act --noheadings %s' % DISK2).strip() == ''
    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1, DISK2]))
    assert result['changed'] and result['commands'] == ['vgextend %s %s' % (VG, DISK2)]


def test_removal_of_a_vg_with_lvs_needs_force(disks):
    lab = disks
    lab.sh('lvcreate -q -L 8M -n thick %s' % VG)
    before = lvm_state(lab)
    result = lab.module('lvm_vg', dict(name=VG, state='absent'))
    assert result['failed'] and 'holds 1 logical volume(s); set force=true' in result['msg']
    result = lab.module('lvm_vg', dict(name=VG, state='absent', force=True), check=True, diff=True)
    assert result['changed'] and result['commands'] == ['vgremove --force ' + VG, 'pvremove /dev/vdb /dev/vdc']
    assert result['diff']['after'] == {}
    assert lvm_state(lab) == before
    result = lab.module('lvm_vg', dict(name=VG, state='absent', force=True))
    assert result['changed'] and result['vg'] == {}
    assert lab.out('wipefs --no-act --noheadings %s %s' % (DISK1, DISK2)).strip() == ''


def test_pvresize_follows_a_grown_device(disks):
    lab = disks
    # a 128MiB dm device on spare2, past its first MiB so the disk itself shows no PV label
    lab.sh("dmsetup create itest_lvm_grow --table '0 262144 linear %s 2048'" % DISK2)
    result = lab.module('lvm_vg', dict(name='itest_lvm_grow', pvs=[GROW]))
    assert result['changed'] and result['vg']['extent_count'] == 31
    lab.sh("dmsetup suspend itest_lvm_grow && dmsetup reload itest_lvm_grow --table '0 524288 linear %s 2048' "
           "&& dmsetup resume itest_lvm_grow" % DISK2)
    result = lab.module('lvm_vg', dict(name='itest_lvm_grow', pvs=[GROW], pvresize=True), diff=True)
    assert result['changed'] and result['commands'] == ['pvresize ' + GROW]
    assert result['diff']['before']['pvs'] == {GROW: 31} and result['diff']['after']['pvs'] == {GROW: 63}
    assert result['vg']['size'] == 63 * (4 << 20)
    result = lab.module('lvm_vg', dict(name='itest_lvm_grow', pvs=[GROW], pvresize=True))
    assert not result['changed']
    result = lab.module('lvm_vg', dict(name='itest_lvm_grow', state='absent'))
    assert result['commands'] == ['vgremove itest_lvm_grow', 'pvremove ' + GROW]
    lab.sh('dmsetup remove itest_lvm_grow')
