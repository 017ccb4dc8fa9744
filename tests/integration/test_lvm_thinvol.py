"""lvm_thinvol on the lab VM: a real thin pool on the spare disks, many volumes in one task.

Resources of this file only: disks virtio-spare1 and virtio-spare2, VG itest_lvm_thin, wrapper
scripts /usr/local/sbin/<lvm command> (present only while the command count is measured).
Both disks are left without any signature.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from lvm_disks import DISK1, DISK2, assert_wiped, clean_disks, lvm_state

VG = 'itest_lvm_thin'
# Enough to prove one task and a bounded no-op; the figures at N = 10..500 are in bench/.
MANY = 50
# Every LVM command our modules may run; the count wrappers log each call, then exec the real one.
LVM_COMMANDS = ('vgs', 'pvs', 'lvs', 'lvcreate', 'lvextend', 'lvreduce', 'lvchange', 'lvremove',
                'vgcreate', 'vgextend', 'vgreduce', 'vgremove', 'pvcreate', 'pvremove', 'pvresize', 'lvm')
CALL_LOG = '/run/itest-lvm-calls.log'
HOLDER = '/run/itest-lvm-holder.pid'  # a process that keeps a volume open


def thin(**kwargs):
    return dict(dict(vg=VG, pool='pool'), **kwargs)


def clean(lab):
    clean_disks(lab, also='rm -f %s; for c in %s; do rm -f /usr/local/sbin/$c; done' % (CALL_LOG, ' '.join(LVM_COMMANDS)))


def release(lab):
    lab.sh('test -f {0} && kill $(cat {0}) && rm -f {0} && sleep 1; true'.format(HOLDER))


@pytest.fixture(scope='module')
def vg(lab):
    clean(lab)
    result = lab.module('lvm_vg', dict(name=VG, pvs=[DISK1, DISK2]))
    assert result['changed'] and result['vg']['size'] == 510 * (4 << 20)
    yield lab
    release(lab)
    result = lab.module('lvm_vg', dict(name=VG, state='absent', force=True))
    assert not result['failed'], result
    clean(lab)
    assert_wiped(lab)


VOLUMES = [dict(name='vol-a', size='100M'), dict(name='vol-b', size='1G', active=False),
           dict(name='vol-a-snap', snapshot_of='vol-a')]


def test_bad_input_fails_before_any_change(vg):
    lab = vg
    before = lvm_state(lab)
    result = lab.module('lvm_thinvol', thin(size='90%VGX', volumes=[
        dict(name='snapshot-1', size='1G'), dict(name='vol-1', size='10%VG'), dict(name='vol 2', size='1G'),
        dict(name='vol-3', size='12Q'), dict(name='pvmove7', size='1G')]))
    assert result['failed'] and result['commands'] == []
    for piece in ("size='90%VGX'", "volumes[0].name='snapshot-1' starts with 'snapshot'",
                  "volumes[1].size='10%VG': percent sizes do not apply to thin volumes",
                  "volumes[2].name='vol 2' is not a valid LVM name", "volumes[3].size='12Q' is not a size",
                  "volumes[4].name='pvmove7' starts with 'pvmove'"):
        assert piece in result['msg']
    result = lab.module('lvm_thinvol', dict(vg='itest_lvm_nosuch', pool='pool', size='1G'))
    assert result['failed'] and "vg='itest_lvm_nosuch': no such volume group" in result['msg']
    assert lvm_state(lab) == before


def test_check_mode_then_create_then_rerun(vg):
    lab = vg
    before = lvm_state(lab)
    args = thin(size='90%VG', volumes=VOLUMES)
    result = lab.module('lvm_thinvol', args, check=True, diff=True)
    assert result['changed'] and len(result['commands']) == 4
    assert result['commands'][0] == 'lvcreate --type thin-pool --extents 90%VG --name pool ' + VG
    assert result['diff']['after']['pool'] == {'size': '90%VG'}
    assert sorted(result['diff']['after']['volumes']) == ['vol-a', 'vol-a-snap', 'vol-b']
    assert lvm_state(lab) == before

    result = lab.module('lvm_thinvol', args, diff=True)
    assert result['changed'], result
    pool = result['pool']
    assert pool['size'] == 459 * (4 << 20)  # 90% of 510 extents, rounded down by LVM
    assert pool['attr'][0] == 't' and pool['data_percent'] == 0.0 and pool['metadata_percent'] > 0
    # vol-a, its snapshot and vol-b: 1224MiB of thin volumes in 1836MiB
    assert pool['provisioned_size'] == 1224 << 20 and pool['over_subscription_ratio'] == 0.67
    volumes = result['volumes']
    assert volumes['vol-a']['size'] == 100 << 20 and volumes['vol-a']['path'] == '/dev/%s/vol-a' % VG
    assert volumes['vol-a-snap']['origin'] == 'vol-a' and volumes['vol-a-snap']['active']
    assert not volumes['vol-b']['active'] and volumes['vol-b']['attr'][4] == '-'
    assert result['diff']['before'] == {'pool': {}, 'volumes': {}}
    assert result['diff']['after']['volumes']['vol-b'] == {'size': 1 << 30, 'active': False, 'origin': None}
    lab.sh('test -b /dev/%s/vol-a && test -b /dev/%s/vol-a-snap && ! test -e /dev/%s/vol-b' % (VG, VG, VG))

    # Re-run: the %VG size is not chased (the VG's free space changed), nothing to do
    result = lab.module('lvm_thinvol', args, diff=True)
    assert not result['changed'] and result['commands'] == [] and result['volumes'] == {}
    assert result['diff']['before'] == result['diff']['after']


def test_grow_then_shrink_refused(vg):
    lab = vg
    result = lab.module('lvm_thinvol', thin(volumes=[dict(name='vol-a', size='201000000')]))
    # 201000000 B rounds up to 48 extents of 4MiB
    assert result['changed'] and result['commands'] == ['lvextend --size 201326592b %s/vol-a' % VG]
    assert result['volumes']['vol-a']['size'] == 201326592
    before = lvm_state(lab)
    result = lab.module('lvm_thinvol', thin(volumes=[dict(name='vol-a', size='100M')]))
    assert result['failed'] and 'volumes[0].size=100MiB is smaller than %s/vol-a (192MiB)' % VG in result['msg']
    result = lab.module('lvm_thinvol', thin(size='1G'))
    assert result['failed'] and 'LVM cannot shrink a thin pool' in result['msg']
    assert lvm_state(lab) == before


def test_open_volume_and_purge_refused_without_force(vg):
    lab = vg
    lab.sh('(setsid sh -c \'echo $$ > %s; exec sleep 4242\' < /dev/%s/vol-a > /dev/null 2>&1 &); sleep 1'
           % (HOLDER, VG))
    before = lvm_state(lab)
    result = lab.module('lvm_thinvol', thin(volumes=[dict(name='vol-a', state='absent')], force=True))
    assert result['failed'] and '%s/vol-a is open' % VG in result['msg'] and 'is open by sleep (pid' in result['msg']
    assert 'force does not remove an open volume' in result['msg'] and 'force=true' not in result['msg']
    result = lab.module('lvm_thinvol', thin(volumes=[dict(name='vol-a')], purge=True))
    assert result['failed'] and 'purge would remove 2 thin volume(s) not listed in volumes (vol-a-snap, vol-b)' \
        in result['msg']
    assert lvm_state(lab) == before
    release(lab)
    result = lab.module('lvm_thinvol', thin(volumes=[dict(name='vol-a')], purge=True, force=True), diff=True)
    assert result['changed'] and result['commands'] == ['lvremove --force %s/vol-a-snap %s/vol-b' % (VG, VG)]
    assert result['volumes'] == {}  # vol-a stays as it was; the run changed no volume that is left
    assert sorted(result['diff']['after']['volumes']) == ['vol-a']


def run_kept(lab, args):
    """Run lvm_thinvol through ansible keeping the module file on the VM; return its path there."""
    env = dict(lab.env, ANSIBLE_KEEP_REMOTE_FILES='1')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible'), 'lab1', '-i', str(lab.inventory),
           '-m', 'openblock.storage.lvm_thinvol', '-a', json.dumps(args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return lab.out('ls -t /root/.ansible/tmp/*/AnsiballZ_lvm_thinvol.py | head -1').strip()


def test_many_volumes_in_one_task(vg):
    lab = vg
    # Inactive: under TCG each activation costs about 0.7 s of udev work, which is not what this measures.
    volumes = [dict(name='many-%03d' % i, size='1G', active=False) for i in range(MANY)]
    # 50GiB more in the 1836MiB pool is past Cinder's default ratio of 20: refused before any change
    result = lab.module('lvm_thinvol', thin(volumes=volumes))
    assert result['failed'] and result['commands'] == []
    assert ('max_over_subscription_ratio=20.0: after this run thin pool %s/pool (1836MiB) would hold 51392MiB of '
            'thin volumes, an over-subscription of 27.99x' % VG) in result['msg']
    started = time.monotonic()
    result = lab.module('lvm_thinvol', thin(volumes=volumes, max_over_subscription_ratio=30.0))
    created = time.monotonic() - started
    assert result['changed'] and len(result['commands']) == MANY, result.get('msg')
    assert sorted(result['volumes']) == [v['name'] for v in volumes]  # the created ones, not vol-a
    assert int(lab.out('lvs --noheadings -S pool_lv=pool %s | wc -l' % VG)) == MANY + 1

    # The no-op run: count the LVM commands it starts through logging wrappers.
    wrappers = ' '.join(LVM_COMMANDS)
    lab.sh('for c in %s; do printf \'#!/bin/sh\\necho "$(basename $0) $*" >> %s\\nexec /sbin/$(basename $0) "$@"\\n\' '
           '> /usr/local/sbin/$c; chmod 755 /usr/local/sbin/$c; done; : > %s' % (wrappers, CALL_LOG, CALL_LOG))
    try:
        started = time.monotonic()
        # at the default ratio and a 1% usage threshold, so that the no-op also warns
        kept = run_kept(lab, thin(volumes=volumes, usage_warning_threshold=1))
        task_time = time.monotonic() - started
        calls = lab.out('cat %s' % CALL_LOG).splitlines()
        # the same module file, run again on the VM: its own wall time without ansible's transport
        vm_time = float(lab.out('TIMEFORMAT=%%R; { time python3 %s > /tmp/itest-lvm-out.json; } 2>&1' % kept))
        rerun = json.loads(lab.out('cat /tmp/itest-lvm-out.json'))
    finally:
        lab.sh('for c in %s; do rm -f /usr/local/sbin/$c; done; rm -rf /root/.ansible/tmp/ansible-tmp-*; '
               'rm -f /tmp/itest-lvm-out.json' % wrappers)
    print('\n%d volumes: creation task %.1f s; no-op task %.1f s, %d LVM commands (%s); module alone in the VM %.2f s'
          % (MANY, created, task_time, len(calls), '; '.join(c.split()[0] for c in calls), vm_time))
    assert len(calls) <= 3, calls
    assert rerun['changed'] is False and rerun['commands'] == []
    # a no-op is never refused, but the over-subscribed pool and its metadata usage are warned about
    assert rerun['pool']['over_subscription_ratio'] == 27.99
    # ansible-core 2.19 returns each warning as {"event": {"msg": ...}}
    warnings = '\n'.join(w['event']['msg'] if isinstance(w, dict) else w for w in rerun['warnings'])
    assert 'over-subscribed 27.99x, above max_over_subscription_ratio=20.0' in warnings, warnings
    assert 'metadata usage %.2f%% is at or above 1%%' % rerun['pool']['metadata_percent'] in warnings, warnings

    result = lab.module('lvm_thinvol', thin(volumes=[dict(name='vol-a')], purge=True, force=True, report='all'))
    assert result['changed'] and len(result['commands']) == 1  # one lvremove for all of them
    assert sorted(result['volumes']) == ['vol-a']
