"""sanlock_vg on the lab VM: removing a shared VG whose LV is active on this host is refused,
with or without force, and so is removing it where it is not lock-started; it goes through once the
LV is deactivated, without hanging (it leaves the lockspace and drops the lock type first). Between
the two, lvmlockd is killed while the LV is active and state=recovered adopts its orphaned lease
(lvm2 2.03.25 and later; skipped before).

A shared VG needs no second host: lvmlockd and sanlock run the same way with one. The fixture
turns the VM into a one-host sanlock setup and undoes it at the end.

Resources of this file only: disk virtio-spare1, VG itest_sanlock; /etc/lvm/lvm.conf and
/etc/lvm/lvmlocal.conf (saved under /run and restored); the services wdmd, sanlock and lvmlockd
(stopped again); the softdog module, loaded with soft_noboot=1 when the VM has no watchdog, so a
watchdog that fires can never reboot the VM under the other test files. Every LVM and systemctl
command of setup and cleanup runs under coreutils timeout, and the module calls give
lock_start_timeout, so a stuck lock daemon fails the file within minutes instead of hanging it.
"""

import re
import time

import pytest

DISK = '/dev/disk/by-id/virtio-spare1'
VG = 'itest_sanlock'
SAVED = '/run/itest-sanlock'

SETUP = r'''
set -e
mkdir -p {saved}
cp -a /etc/lvm/lvm.conf /etc/lvm/lvmlocal.conf {saved}/
test -e /dev/watchdog || modprobe softdog soft_noboot=1
sed -i 's/^\s*#\?\s*use_lvmlockd\s*=.*/\tuse_lvmlockd = 1/' /etc/lvm/lvm.conf
sed -i 's/^\s*#\?\s*host_id\s*=.*/\thost_id = 1/' /etc/lvm/lvmlocal.conf
test "$(lvmconfig global/use_lvmlockd)" = use_lvmlockd=1
test "$(lvmconfig local/host_id)" = host_id=1
timeout 120 systemctl start wdmd sanlock lvmlockd
timeout 300 vgcreate -q --shared --lock-type sanlock {vg} {disk}
timeout 120 lvcreate -q -y -L 8M -n lv1 --activate ey {vg}
# udev probes the new LV and holds it open meanwhile (lv_attr -wi-ao, seen once on trixie)
udevadm settle --timeout=60
'''.format(saved=SAVED, vg=VG, disk=DISK)

CLEANUP = r'''
if vgs {vg} >/dev/null 2>&1; then
  timeout 300 vgchange -q --lock-start {vg}; timeout 60 lvchange -q -an {vg}; timeout 60 vgchange -q --lock-stop {vg}
  timeout 60 vgchange -q -y --lock-type none --lockopt force {vg}
  timeout 120 vgremove -q -f --config global/use_lvmlockd=0 {vg}
fi
timeout 120 systemctl stop lvmlockd sanlock wdmd
if test -d {saved}; then cp -a {saved}/lvm.conf {saved}/lvmlocal.conf /etc/lvm/; rm -rf {saved}; fi
pvremove -q -y {disk} 2>/dev/null; wipefs -q --all {disk}
true
'''.format(saved=SAVED, vg=VG, disk=DISK)


def lv_state(lab):
    return lab.out('lvs --noheadings -o lv_name,lv_attr %s; vgs --noheadings -o vg_name,lv_count %s' % (VG, VG))


@pytest.fixture(scope='module')
def shared_vg(lab):
    lab.sh(CLEANUP, check=False)
    try:
        lab.sh(SETUP, timeout=900)
        yield lab
    finally:
        lab.sh(CLEANUP, check=False)
        assert lab.out('lvmconfig global/use_lvmlockd 2>/dev/null || true').strip() != 'use_lvmlockd=1'
        assert lab.out('wipefs --no-act --noheadings %s' % DISK).strip() == ''


def test_removal_with_an_active_lv_is_refused_even_with_force(shared_vg):
    lab = shared_vg
    before = lv_state(lab)
    assert 'lv1' in before and '-wi-a-' in before
    result = lab.module('sanlock_vg', dict(name=VG, state='absent'))
    assert result['failed'] and result['commands'] == []
    assert 'state=absent: LV(s) lv1 of %s are active on this host; deactivate them first' % VG in result['msg']
    assert 'still holds 1 LV(s) (lv1); set force=true' in result['msg']
    result = lab.module('sanlock_vg', dict(name=VG, state='absent', force=True))
    assert result['failed'] and result['commands'] == []
    assert 'LV(s) lv1 of %s are active on this host' % VG in result['msg'] and 'set force=true' not in result['msg']
    assert lv_state(lab) == before


def test_a_killed_lvmlockd_is_recovered_by_adopting_its_orphaned_lease(shared_vg):
    """lvmlockd killed while lv1 is active exclusively: sanlock keeps the lockspace and lv1's lease
    ORPHAN. state=recovered starts lvmlockd and adopts both (lvm2 >= 2.03.25): lv1 stays active in its
    mode all along, sanlock is never restarted (so it may drive the watchdog, as on Debian 13), and a
    second run changes nothing."""
    lab = shared_vg
    version = lab.out('lvm version | sed -n "s/^ *LVM version: *//p"').strip()
    if tuple(int(part) for part in re.findall(r'\d+', version)[:3]) < (2, 3, 25):
        # checked before the kill: the old path waits for the lease to expire (minutes), and the other
        # tests of this file need lvmlockd running
        pytest.skip('lvm2 %s has no --lockopt adoptls/adoptlv (2.03.25+): the recovery takes the old path' % version)
    lab.sh('pkill -9 -x lvmlockd; sleep 1; ! systemctl is-active --quiet lvmlockd')
    assert 'ORPHAN' in lab.out('sanlock client status')
    sanlock_pid = lab.out('pidof sanlock').strip()
    args = dict(name=VG, state='recovered', lock_start_timeout=120)
    adoption = ['systemctl start lvmlockd.service', 'timeout 120 vgchange --lock-start --lockopt adoptls %s' % VG,
                'lvchange --activate ey --lockopt adoptlv %s/lv1' % VG]
    took = {}
    start = time.monotonic()
    result = lab.module('sanlock_vg', args, check=True)
    took['check'] = time.monotonic() - start
    assert result['changed'] and result['commands'] == adoption, result
    assert 'ORPHAN' in lab.out('sanlock client status')
    start = time.monotonic()
    result = lab.module('sanlock_vg', args)
    took['run'] = time.monotonic() - start
    assert result['changed'] and result['commands'] == adoption, result
    assert result['problems'] == ['lvmlockd not running', 'ORPHAN lease(s) of a dead lvmlockd on lv1'], result
    assert result['lvs']['lv1']['activation'] == 'exclusive' and not result['lvs']['lv1']['orphan'], result
    assert 'ORPHAN' not in lab.out('sanlock client status')
    assert lab.out('pidof sanlock').strip() == sanlock_pid
    assert '-wi-a-' in lv_state(lab)
    start = time.monotonic()
    result = lab.module('sanlock_vg', args)
    took['rerun'] = time.monotonic() - start
    assert not result['changed'] and result['commands'] == [] and result['problems'] == [], result
    print('adoption on lvm2 %s: check %.1f s, run %.1f s, rerun %.1f s' % (
        version, took['check'], took['run'], took['rerun']))


def test_removal_goes_through_once_the_lv_is_inactive(shared_vg):
    lab = shared_vg
    result = lab.module('sanlock_vg', dict(name=VG, lvs=[dict(name='lv1', activation='inactive')], lock_start_timeout=120))
    assert result['changed'] and result['lvs']['lv1']['activation'] == 'inactive', result
    # only a host that has the VG lock-started can read which other hosts still use it
    result = lab.module('sanlock_vg', dict(name=VG, state='stopped'))
    assert result['changed'] and result['lockspace']['joined'] is False, result
    result = lab.module('sanlock_vg', dict(name=VG, state='absent', force=True))
    assert result['failed'] and result['commands'] == [], result
    assert '%s is not lock-started on this host' % VG in result['msg']
    result = lab.module('sanlock_vg', dict(name=VG, state='started', lock_start_timeout=120))
    assert result['changed'] and result['lockspace']['joined'], result
    result = lab.module('sanlock_vg', dict(name=VG, state='absent', force=True))
    assert result['changed'] and result['commands'] == [
        'vgchange --lock-stop %s' % VG, 'vgchange --yes --lock-type none --lockopt force %s' % VG,
        'vgremove --config global/use_lvmlockd=0 --force %s' % VG], result
    assert lab.sh('vgs %s' % VG, check=False)[0] != 0
