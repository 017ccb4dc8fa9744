"""lvm_thickvol on the lab VM: thick LVs, and proof that clear=zero leaves no data on the freed extents.

Resources of this file only: VG itest_lvm_thick on virtio-spare3 when that disk is free (no signature,
no PV), else on a loop device over /var/tmp/itest-thick/disk.img (the other test files own the spares
they use); the holder process /run/itest-thick-holder.pid. All removed at the end, the disk left
without any signature.
"""

import pytest
from lvm_disks import hold, release

VG = 'itest_lvm_thick'
SPARE = '/dev/disk/by-id/virtio-spare3'
IMAGE = '/var/tmp/itest-thick/disk.img'
HOLDER = '/run/itest-thick-holder.pid'
MiB = 1 << 20
# The proof volume: 4 extents of 4 MiB, enough to show the same extents come back; every byte of it
# is written and scanned twice, which TCG makes dear.
SIZE = 16 * MiB
# The pattern covers the volume from 1MiB to its end: lvcreate zeroes the first 4KiB itself.
PATTERN_START = 1 * MiB


def state(lab):
    """What check mode and refusals must leave untouched."""
    return lab.out('vgs --units b -o vg_name,vg_size,vg_free,lv_count %s; lvs -a --units b -o lv_name,lv_attr,lv_size,'
                   'seg_pe_ranges %s' % (VG, VG))


def fill_pattern(lab, name):
    """Write 0xAA bytes from PATTERN_START to the end of the volume; return how many bytes are non-zero."""
    device = '/dev/%s/%s' % (VG, name)
    lab.sh("tr '\\000' '\\252' < /dev/zero | dd of=%s bs=1M seek=%d count=%d iflag=fullblock oflag=direct conv=fsync "
           "status=none" % (device, PATTERN_START // MiB, (SIZE - PATTERN_START) // MiB))
    return nonzero(lab, name)


def nonzero(lab, name):
    """Non-zero bytes of the volume, read past the page cache."""
    return int(lab.out("dd if=/dev/%s/%s bs=1M iflag=direct status=none | tr -d '\\000' | wc -c" % (VG, name)))


def extents(lab, name):
    """The physical extents of the volume, as `PV:first-last` ranges."""
    return lab.out('lvs --noheadings -o seg_pe_ranges %s/%s' % (VG, name)).split()


@pytest.fixture(scope='module')
def vg(lab):
    release(lab, HOLDER)
    lab.sh('vgremove -q -f %s 2>/dev/null; true' % VG)
    spare_free = lab.sh('test -z "$(wipefs --no-act --noheadings %s)" && ! pvs %s >/dev/null 2>&1' % (SPARE, SPARE),
                        check=False)[0] == 0
    if spare_free:
        disk = SPARE
    else:
        disk = lab.out('mkdir -p /var/tmp/itest-thick && truncate -s 256M %s && losetup --find --show %s'
                       % (IMAGE, IMAGE)).strip()
    print('\nVG %s on %s' % (VG, disk))
    result = lab.module('lvm_vg', dict(name=VG, pvs=[disk]))
    assert result['changed'], result
    yield lab
    release(lab, HOLDER)
    result = lab.module('lvm_vg', dict(name=VG, state='absent', force=True))
    assert not result['failed'], result
    if spare_free:
        lab.sh('wipefs -q --all %s' % SPARE)
        assert lab.out('wipefs --no-act --noheadings %s' % SPARE).strip() == ''
    else:
        lab.sh('losetup -d %s; rm -rf /var/tmp/itest-thick' % disk)


def thick(**kwargs):
    return dict(dict(vg=VG), **kwargs)


def test_bad_input_fails_before_any_change(vg):
    lab = vg
    before = state(lab)
    result = lab.module('lvm_thickvol', thick(clear_size=-5, volumes=[
        dict(name='snapshot-1', size='1G'), dict(name='vol-1', size='10%VG'), dict(name='vol 2', size='1G')]))
    assert result['failed'] and result['commands'] == []
    for piece in ('clear_size=-5 is not a number of MiB', "volumes[0].name='snapshot-1' starts with 'snapshot'",
                  "volumes[1].size='10%VG': percent sizes do not apply", "volumes[2].name='vol 2' is not a valid LVM name"):
        assert piece in result['msg']
    result = lab.module('lvm_thickvol', dict(vg='itest_lvm_nosuch', volumes=[dict(name='a', size='4M')]))
    assert result['failed'] and "vg='itest_lvm_nosuch': no such volume group" in result['msg']
    assert state(lab) == before


def test_check_mode_create_rerun_grow_and_shrink_refused(vg):
    lab = vg
    before = state(lab)
    args = thick(volumes=[dict(name='vol-a', size='10M'), dict(name='vol-b', size='8M')])
    result = lab.module('lvm_thickvol', args, check=True, diff=True)
    assert result['changed'] and result['commands'] == [
        'lvcreate --yes --wipesignatures y --size 12582912b --name vol-a ' + VG,
        'lvcreate --yes --wipesignatures y --size 8388608b --name vol-b ' + VG]
    assert result['diff'] == {'before': {'volumes': {}},
                              'after': {'volumes': {'vol-a': {'size': 12 * MiB, 'active': True},
                                                    'vol-b': {'size': 8 * MiB, 'active': True}}}}
    assert state(lab) == before

    result = lab.module('lvm_thickvol', args, diff=True)
    assert result['changed'] and len(result['commands']) == 2
    assert result['volumes']['vol-a'] == dict(size=12 * MiB, path='/dev/%s/vol-a' % VG, attr='-wi-a-----',
                                              active=True, open=False)
    assert result['diff']['after']['volumes']['vol-b'] == {'size': 8 * MiB, 'active': True}
    lab.sh('test -b /dev/%s/vol-a && test -b /dev/%s/vol-b' % (VG, VG))

    result = lab.module('lvm_thickvol', args, diff=True)
    assert not result['changed'] and result['commands'] == [] and result['volumes'] == {}
    assert result['diff']['before'] == result['diff']['after']
    everything = lab.module('lvm_thickvol', dict(args, report='all'))
    assert sorted(everything['volumes']) == ['vol-a', 'vol-b']

    result = lab.module('lvm_thickvol', thick(volumes=[dict(name='vol-a', size='20M')]))
    assert result['changed'] and result['commands'] == ['lvextend --size 20971520b %s/vol-a' % VG]
    assert result['volumes']['vol-a']['size'] == 20 * MiB

    before = state(lab)
    result = lab.module('lvm_thickvol', thick(volumes=[dict(name='vol-a', size='4M')]))
    assert result['failed'] and result['commands'] == []
    assert 'volumes[0].size=4MiB is smaller than %s/vol-a (20MiB)' % VG in result['msg']
    assert 'set force=true to shrink it' in result['msg']
    result = lab.module('lvm_thickvol', thick(volumes=[dict(name='vol-c', size='10G')]))
    assert result['failed'] and 'more than volume group %s has free' % VG in result['msg']
    assert state(lab) == before


def test_open_volume_refused_even_with_force(vg):
    """With force, an open volume used to be zero-filled and then kept (LVM refuses to remove it)."""
    lab = vg
    lab.sh("tr '\\000' '\\252' < /dev/zero | dd of=/dev/%s/vol-b bs=1M count=8 iflag=fullblock oflag=direct "
           "conv=fsync status=none" % VG)
    checksum = "dd if=/dev/%s/vol-b bs=1M iflag=direct status=none | sha256sum" % VG
    data = lab.out(checksum)
    hold(lab, '/dev/%s/vol-b' % VG, HOLDER)
    pid = lab.out('cat %s' % HOLDER).strip()
    before = state(lab)
    result = lab.module('lvm_thickvol', thick(volumes=[dict(name='vol-b', state='absent')], force=True))
    assert result['failed'] and result['commands'] == []
    print('\n' + result['msg'])
    assert '%s/vol-b is open (/dev/dm-' % VG in result['msg'] and 'is open by sleep (pid %s)' % pid in result['msg']
    assert 'force does not remove an open volume' in result['msg'] and 'force=true' not in result['msg']
    assert state(lab) == before and lab.out(checksum) == data
    release(lab, HOLDER)
    result = lab.module('lvm_thickvol', thick(volumes=[dict(name='vol-a', state='absent'),
                                                       dict(name='vol-b', state='absent')]))
    assert result['changed'] and result['commands'][-1] == 'lvremove --force %s/vol-a %s/vol-b' % (VG, VG)
    assert [c.split()[0] for c in result['commands']] == ['dd', 'dd', 'lvremove']
    assert result['volumes'] == {}


@pytest.mark.parametrize('clear', ['zero', 'none'])
def test_removed_volume_data_does_not_reach_the_next_volume(vg, clear):
    """The proof: the same extents come back in a new volume; with clear=zero they hold zeros only.

    clear=none is the control: the pattern is still there, so the test can tell the two apart.
    """
    lab = vg
    assert lab.out('lvs --noheadings %s' % VG).strip() == ''  # the VG is empty: LVM allocates from its start
    result = lab.module('lvm_thickvol', thick(volumes=[dict(name='proof', size='%dM' % (SIZE // MiB))]))
    assert result['changed'], result
    first = extents(lab, 'proof')
    written = fill_pattern(lab, 'proof')
    assert written == SIZE - PATTERN_START

    result = lab.module('lvm_thickvol', thick(clear=clear, volumes=[dict(name='proof', state='absent')]))
    assert result['changed'] and result['volumes'] == {}
    if clear == 'zero':
        assert result['commands'] == [
            'dd if=/dev/zero of=/dev/%s/proof bs=1M count=%d iflag=count_bytes oflag=direct conv=fsync status=none'
            % (VG, SIZE), 'lvremove --force %s/proof' % VG]
    else:
        assert result['commands'] == ['lvremove --force %s/proof' % VG]

    result = lab.module('lvm_thickvol', thick(volumes=[dict(name='proof', size='%dM' % (SIZE // MiB))]))
    assert result['changed'], result
    second = extents(lab, 'proof')
    left = nonzero(lab, 'proof')
    print('\nclear=%s: extents %s -> %s; %d pattern bytes written, %d non-zero bytes in the new volume'
          % (clear, first, second, written, left))
    assert second == first  # the new volume sits on the very extents of the removed one
    if clear == 'zero':
        assert left == 0
    else:
        assert left == written

    result = lab.module('lvm_thickvol', thick(clear='none', volumes=[dict(name='proof', state='absent')]))
    assert result['changed'] and result['commands'] == ['lvremove --force %s/proof' % VG]
