"""tgt_target on the lab VM: real tgtd, a real loopback iSCSI login, a tgtd restart.

Resources of this file only: disk virtio-spare3 (VG itest_tgt), files under /var/tmp/itest-tgt/,
targets named iqn.2026-11.test.tgt:*. Other test files create other targets on the same tgtd;
nothing here touches them.
"""

import json
import os
import time

import pytest

PREFIX = 'iqn.2026-11.test.tgt:'
MAIN = PREFIX + 'main'
FILLER = PREFIX + 'filler'
DIR = '/var/tmp/itest-tgt'
DISK = '/dev/disk/by-id/virtio-spare3'
VG = 'itest_tgt'
LV = '/dev/%s/lun1' % VG
PORTAL = '127.0.0.1:3260'
PORTAL2 = '127.0.0.2:3260'  # tgtd listens on every address: a second session beside one on PORTAL
SECRET = 'itest-chap-secret-1'  # must never appear in any output
NEW_SECRET = 'itest-chap-secret-2'
# Enough to prove one task and a bounded no-op; the figures at N = 10..500 are in bench/.
MANY = 50


def show(lab):
    return lab.out('tgtadm --lld iscsi --mode target --op show')


def our_blocks(text):
    """The show output of our targets only, keyed by IQN, without the tid line's number."""
    blocks, current = {}, None
    for line in text.splitlines():
        if line.startswith('Target '):
            iqn = line.split(': ', 1)[1]
            current = iqn if iqn.startswith(PREFIX) else None
            if current:
                blocks[current] = []
        elif current:
            blocks[current].append(line)
    return blocks


def main_spec(lab, initiator):
    return dict(iqn=MAIN,
                luns=[dict(lun=1, path=LV), dict(lun=2, path=DIR + '/file2.img')],
                initiators=[initiator], addresses=['127.0.0.1'],
                incoming_users=[dict(user='itestuser', password=SECRET)])


def login(lab, iqn):
    """Create the node record of one target only (discovery would record other tests' targets
    too), set CHAP, log in; return the disk of each LUN."""
    node = 'iscsiadm -m node -T %s -p %s' % (iqn, PORTAL)
    lab.sh('%s -o new >/dev/null' % node)
    for key, value in (('node.session.auth.authmethod', 'CHAP'), ('node.session.auth.username', 'itestuser'),
                       ('node.session.auth.password', SECRET)):
        lab.sh('%s --op update -n %s -v %s' % (node, key, value))
    lab.sh('%s --login' % node)
    lab.sh('udevadm settle')
    disks = {}
    for lun in (1, 2):
        link = '/dev/disk/by-path/ip-%s-iscsi-%s-lun-%d' % (PORTAL, iqn, lun)
        rc, out, _err = lab.sh('readlink -f %s' % link, check=False)
        if rc == 0 and out.strip().startswith('/dev/sd'):
            disks[lun] = out.strip()
    return disks


def second_login(lab, iqn, secret):
    """Try a CHAP login (secret None: no CHAP) to ``iqn`` through the second loopback portal, beside
    a session that may exist on the first; log out again. Return True when the target admitted it."""
    node = 'iscsiadm -m node -T %s -p %s' % (iqn, PORTAL2)
    lab.sh('%s -o new >/dev/null' % node)
    settings = [('node.session.auth.authmethod', 'CHAP' if secret else 'None'),
                ('node.session.auth.username', 'itestuser'), ('node.session.auth.password', secret or 'unused')]
    for key, value in settings:
        lab.sh('%s --op update -n %s -v %s' % (node, key, value))
    admitted = lab.sh('%s --login' % node, check=False)[0] == 0
    lab.sh('%s --logout' % node, check=False)
    lab.sh('%s -o delete' % node, check=False)
    return admitted


def logout(lab, iqn):
    lab.sh('iscsiadm -m node -T %s -p %s --logout' % (iqn, PORTAL), check=False)
    lab.sh('iscsiadm -m node -T %s -p %s -o delete' % (iqn, PORTAL), check=False)
    lab.sh('udevadm settle')


def failure(lab, args):
    """Run the module expecting it to fail; return its result. (The harness's json callback is not
    installed, so the result has no `failed` key: the FAILED! marker of the output tells.)"""
    result, output = lab.module('tgt_target', args, raw=True)
    assert 'FAILED!' in output or result.get('failed'), result
    assert SECRET not in output
    return result


def md5(lab, path, count_mib=1):
    return lab.out('dd if=%s bs=1M count=%d iflag=direct status=none | md5sum' % (path, count_mib)).split()[0]


@pytest.fixture(scope='module')
def tgt_lab(lab):
    lab.sh('mkdir -p %s && truncate -s 32M %s/file2.img' % (DIR, DIR))
    lab.sh('pvcreate -q %s && vgcreate -q %s %s && lvcreate -q -y -L 64M -n lun1 %s' % (DISK, VG, DISK, VG))
    # Known contents, to compare with what the initiator reads.
    lab.sh('dd if=/dev/urandom of=%s bs=1M count=1 oflag=direct status=none' % LV)
    lab.sh('dd if=/dev/urandom of=%s/file2.img bs=1M count=1 conv=notrunc status=none' % DIR)
    initiator = lab.out("sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi").strip()
    yield lab, initiator
    for iqn in (MAIN, FILLER):
        logout(lab, iqn)
    # Remove every target and conf.d file of our prefix, whoever made it.
    for line in show(lab).splitlines():
        if line.startswith('Target ') and line.split(': ', 1)[1].startswith(PREFIX):
            tid = line.split()[1].rstrip(':')
            lab.sh('tgtadm --lld iscsi --mode target --op delete --force --tid %s' % tid, check=False)
    lab.sh("rm -f /etc/tgt/conf.d/openblock-%s*.conf" % PREFIX, check=False)
    for user in ('itestuser',):
        lab.sh('tgtadm --lld iscsi --mode account --op delete --user %s' % user, check=False)
    lab.sh('vgremove -q -f %s; pvremove -q -ff -y %s; wipefs -q -a %s' % (VG, DISK, DISK), check=False)
    lab.sh('rm -rf %s' % DIR, check=False)


def test_bad_input_fails_before_any_change(tgt_lab):
    lab, initiator = tgt_lab
    before = show(lab)
    result = failure(lab, dict(targets=[
        dict(iqn='IQN.2026-11.Bad Name'),
        dict(iqn=PREFIX + 'bad1', incoming_users=[dict(user='u', password='short')]),
        dict(iqn=PREFIX + 'bad2', luns=[dict(lun=1, path=DIR + '/does-not-exist.img')]),
    ]))
    assert "targets[0].iqn='IQN.2026-11.Bad Name'" in result['msg']
    assert 'targets[1].incoming_users[0].password' in result['msg']
    assert "targets[2].luns[0].path='%s/does-not-exist.img' does not exist" % DIR in result['msg']
    assert result['commands'] == []
    assert show(lab) == before
    assert lab.out('ls /etc/tgt/conf.d/').count(PREFIX) == 0


def tgtd_cmdline(lab):
    return lab.out('cat /proc/$(systemctl show --property=MainPID --value tgt.service)/cmdline')


def test_iothreads_restart_an_idle_tgtd_and_only_warn_a_busy_one(tgt_lab):
    """tgtd takes a LUN's I/O thread count when the LUN is added: with a drop-in that passes another
    count, the module restarts an idle tgtd (no target), and leaves a busy one running with a warning."""
    lab, initiator = tgt_lab
    dropin = '/etc/systemd/system/tgt.service.d/itest-iothreads.conf'
    idle = PREFIX + 'threads'
    assert 'Target ' not in show(lab), 'the lab tgtd exports targets of other tests: ' + show(lab)
    lab.sh("mkdir -p %s && printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/tgtd -f --nr_iothreads 4\\n' > %s && "
           "systemctl daemon-reload" % (os.path.dirname(dropin), dropin))
    try:
        assert '--nr_iothreads' not in tgtd_cmdline(lab)
        result = lab.module('tgt_target', dict(targets=[], iothreads=4))
        assert result['changed'] is True and result['commands'] == ['systemctl restart tgt.service'], result
        assert tgtd_cmdline(lab).split('\0')[:4] == ['/usr/sbin/tgtd', '-f', '--nr_iothreads', '4']
        assert lab.module('tgt_target', dict(targets=[], iothreads=4))['changed'] is False
        # busy: tgtd exports a target, another count is asked: no restart, a warning that says when it applies
        assert lab.module('tgt_target', dict(targets=[dict(iqn=idle)]))['changed'] is True
        pid = lab.out('systemctl show --property=MainPID --value tgt.service')
        result, output = lab.module('tgt_target', dict(targets=[dict(iqn=idle)], iothreads=2), raw=True)
        assert result['changed'] is False and result['commands'] == [], result
        # the result file drops warnings: read the one printed (a display may wrap it)
        printed = ' '.join(output.split())
        assert ('tgtd runs with 4 I/O threads per LUN and exports 1 target(s), so it was not restarted' in printed
                and 'iothreads=2 applies at its next restart' in printed), output
        assert lab.out('systemctl show --property=MainPID --value tgt.service') == pid
    finally:
        lab.sh('tgtadm --lld iscsi --mode target --op delete --force --tid $(tgtadm --lld iscsi --mode target '
               '--op show | sed -n "s/^Target \\([0-9]*\\): %s$/\\1/p")' % idle, check=False)
        lab.sh('rm -f %s /etc/tgt/conf.d/openblock-%s.conf && rmdir --ignore-fail-on-non-empty %s && '
               'systemctl daemon-reload && systemctl restart tgt' % (dropin, idle, os.path.dirname(dropin)), check=False)
    assert '--nr_iothreads' not in tgtd_cmdline(lab)


def test_create_lv_and_file_luns_and_read_them_through_a_login(tgt_lab):
    lab, initiator = tgt_lab
    result, raw = lab.module('tgt_target', dict(targets=[main_spec(lab, initiator)]), diff=True, raw=True)
    assert result.get('changed') and 'FAILED!' not in raw, result
    assert SECRET not in raw
    target = result['targets'][0]
    assert [lun['path'] for lun in target['luns']] == [LV, DIR + '/file2.img']
    assert target['luns'][0]['size'] == 64 << 20 and target['luns'][1]['size'] == 32 << 20
    assert target['acl'] == dict(addresses=['127.0.0.1'], initiators=[initiator])
    assert target['accounts'] == dict(incoming=['itestuser'], outgoing=None)
    mode = lab.out("stat -c '%%a %%U' '%s'" % target['conf_file']).strip()
    assert mode == '600 root'

    disks = login(lab, MAIN)
    try:
        assert sorted(disks) == [1, 2]
        assert md5(lab, disks[1]) == md5(lab, LV)
        assert md5(lab, disks[2]) == md5(lab, DIR + '/file2.img')
        for lun in target['luns']:
            wwid = lab.out('/lib/udev/scsi_id -g -u -d %s' % disks[lun['lun']]).strip()
            assert wwid == lun['wwid']
    finally:
        logout(lab, MAIN)


def test_rerun_changes_nothing(tgt_lab):
    lab, initiator = tgt_lab
    result = lab.module('tgt_target', dict(targets=[main_spec(lab, initiator)]))
    assert result['changed'] is False and result['commands'] == [], result


def test_a_device_in_use_is_refused_only_where_a_lun_would_newly_export_it(tgt_lab):
    """The re-run of an exported LUN does not check its device again; a new export of it is refused."""
    lab, initiator = tgt_lab
    sectors = lab.out('blockdev --getsz %s' % LV).strip()
    lab.sh("dmsetup create itest-tgt-holder --table '0 %s linear %s 0'" % (sectors, LV))
    try:
        result = lab.module('tgt_target', dict(targets=[main_spec(lab, initiator)]))
        assert result['changed'] is False and result['commands'] == [], result
        before = show(lab)
        result = failure(lab, dict(targets=[dict(iqn=FILLER, luns=[dict(lun=1, path=LV)])]))
        assert "targets[0].luns[0].path='%s' is in use on this host" % LV in result['msg']
        assert '(itest-tgt-holder)' in result['msg']
        assert result['commands'] == [] and show(lab) == before
    finally:
        lab.sh('dmsetup remove itest-tgt-holder')


def test_check_mode_changes_nothing(tgt_lab):
    lab, initiator = tgt_lab
    spec = main_spec(lab, initiator)
    spec['luns'] = spec['luns'][:1]
    spec['addresses'] = ['10.50.1.0/24']
    before, conf_before = show(lab), lab.out("cat /etc/tgt/conf.d/openblock-%s.conf" % MAIN)
    result = lab.module('tgt_target', dict(targets=[spec, dict(iqn=PREFIX + 'checkonly')]), check=True, diff=True)
    assert result['changed'] is True
    assert any('--op delete' in c and '--lun 2' in c for c in result['commands'])
    assert result['diff']['after'][MAIN]['addresses'] == ['10.50.1.0/24']
    assert show(lab) == before
    assert lab.out("cat /etc/tgt/conf.d/openblock-%s.conf" % MAIN) == conf_before
    assert PREFIX + 'checkonly' not in lab.out('ls /etc/tgt/conf.d/')


def test_tgt_restart_brings_back_targets_acls_and_accounts(tgt_lab):
    lab, initiator = tgt_lab
    before = our_blocks(show(lab))
    lab.sh('systemctl restart tgt')
    after = our_blocks(show(lab))
    assert after == before
    assert 'itestuser' in '\n'.join(after[MAIN]) and initiator in '\n'.join(after[MAIN])
    result = lab.module('tgt_target', dict(targets=[main_spec(lab, initiator)]))
    assert result['changed'] is False, result
    # The account's secret came back too: CHAP login works.
    disks = login(lab, MAIN)
    logout(lab, MAIN)
    assert sorted(disks) == [1, 2]


def test_chap_secret_change_admits_no_login_without_it_and_keeps_sessions(tgt_lab):
    """Issue 19, items 2 and 3. The module's block (empty the access list of every target bound to
    the account) refuses new logins, whatever their credentials, while a session already logged in
    keeps doing I/O; its secret change runs block, delete, new, bind, unblock in that order; after
    it only the new secret logs in. With persist: false, a re-run is a no-op (the record of hashes)."""
    lab, initiator = tgt_lab
    disks = login(lab, MAIN)
    try:
        tid = int(next(line.split()[1].rstrip(':') for line in show(lab).splitlines() if line.endswith(': ' + MAIN)))
        acl = ['-I 127.0.0.1', '-Q %s' % initiator]
        # Each command's effect, by hand: the block refuses a login with the secret or none, even
        # once the account is gone (the state inside the swap), and the session's I/O goes on.
        for entry in acl:
            lab.sh('tgtadm --lld iscsi --mode target --op unbind --tid %d %s' % (tid, entry))
        assert not second_login(lab, MAIN, SECRET)
        lab.sh('tgtadm --lld iscsi --mode account --op delete --user itestuser')
        assert not second_login(lab, MAIN, None)
        lab.sh('dd if=/dev/urandom of=%s/io.bin bs=1M count=1 status=none && '
               'dd if=%s/io.bin of=%s bs=1M count=1 oflag=direct status=none' % (DIR, DIR, disks[2]))
        assert md5(lab, disks[2]) == md5(lab, DIR + '/io.bin')
        lab.sh('tgtadm --lld iscsi --mode account --op new --user itestuser --password %s && '
               'tgtadm --lld iscsi --mode account --op bind --tid %d --user itestuser' % (SECRET, tid))
        for entry in acl:
            lab.sh('tgtadm --lld iscsi --mode target --op bind --tid %d %s' % (tid, entry))

        spec = main_spec(lab, initiator)
        spec['incoming_users'][0]['password'] = NEW_SECRET
        result, raw = lab.module('tgt_target', dict(targets=[spec], persist=False), raw=True)
        assert result['changed'] and SECRET not in raw and NEW_SECRET not in raw, result
        commands = [c.split(' --lld iscsi ', 1)[-1] for c in result['commands']]
        order = ['--mode target --op unbind --tid %d -I 127.0.0.1' % tid,
                 '--mode target --op unbind --tid %d -Q %s' % (tid, initiator),
                 '--mode account --op delete --user itestuser',
                 '--mode account --op new --user itestuser --password ********',
                 '--mode account --op bind --tid %d --user itestuser' % tid,
                 '--mode target --op bind --tid %d -I 127.0.0.1' % tid,
                 '--mode target --op bind --tid %d -Q %s' % (tid, initiator)]
        assert [c for c in commands if c in order] == order, commands
        assert not second_login(lab, MAIN, None) and not second_login(lab, MAIN, SECRET)
        assert second_login(lab, MAIN, NEW_SECRET)
        assert md5(lab, disks[2]) == md5(lab, DIR + '/io.bin')  # the first session lived through it
        # persist: false keeps no conf.d file, and a re-run is still a no-op.
        again = lab.module('tgt_target', dict(targets=[spec], persist=False))
        assert again['changed'] is False and again['commands'] == [], again
        record = lab.out("cd /run/openblock-storage && stat -c '%a %U' tgt-chap.json && cat tgt-chap.json")
        assert record.startswith('600 root') and NEW_SECRET not in record
    finally:
        logout(lab, MAIN)
        # Back to the secret and the conf.d file the later tests log in with.
        lab.module('tgt_target', dict(targets=[main_spec(lab, initiator)]))


def test_removing_a_target_in_use_is_refused_without_force(tgt_lab):
    lab, initiator = tgt_lab
    login(lab, MAIN)
    try:
        before = show(lab)
        result = failure(lab, dict(targets=[dict(iqn=MAIN, state='absent')]))
        assert initiator in result['msg'] and 'force' in result['msg'], result
        changed_lun = main_spec(lab, initiator)
        changed_lun['luns'][1]['readonly'] = True
        result = failure(lab, dict(targets=[changed_lun]))
        assert 'changing LUN 2' in result['msg'], result
        assert show(lab) == before
    finally:
        logout(lab, MAIN)


def test_recreated_target_with_another_tid_keeps_its_wwid(tgt_lab):
    lab, initiator = tgt_lab
    disks = login(lab, MAIN)
    wwids = dict((lun, lab.out('/lib/udev/scsi_id -g -u -d %s' % disk).strip()) for lun, disk in disks.items())
    logout(lab, MAIN)
    old = lab.module('tgt_target', dict(targets=[main_spec(lab, initiator)], report='all'))['targets'][0]['tid']
    assert lab.module('tgt_target', dict(targets=[dict(iqn=MAIN, state='absent')]))['changed']
    # A filler takes the lowest free tid (the old one), so the target comes back with another.
    filler = lab.module('tgt_target', dict(targets=[dict(iqn=FILLER)]))['targets'][0]
    assert filler['tid'] == old
    new = lab.module('tgt_target', dict(targets=[main_spec(lab, initiator)]))['targets'][0]
    assert new['tid'] != old
    disks = login(lab, MAIN)
    try:
        assert dict((lun, lab.out('/lib/udev/scsi_id -g -u -d %s' % disk).strip())
                    for lun, disk in disks.items()) == wwids
    finally:
        logout(lab, MAIN)


def test_many_targets_in_one_task(tgt_lab, record_property):
    lab, initiator = tgt_lab
    lab.sh('mkdir -p %s/many && cd %s/many && for i in $(seq 1 %d); do truncate -s 1M $(printf t%%03d.img $i); done'
           % (DIR, DIR, MANY))
    targets = [dict(iqn='%smany-%03d' % (PREFIX, i), initiators=[initiator],
                    luns=[dict(lun=1, path='%s/many/t%03d.img' % (DIR, i))]) for i in range(1, MANY + 1)]
    started = time.monotonic()
    created = lab.module('tgt_target', dict(targets=targets))
    create_s = time.monotonic() - started
    # five tgtadm commands per target, each followed by the write of its conf.d file
    assert created['changed'] and len(created['commands']) == 6 * MANY, json.dumps(created)[:2000]
    assert [c.split()[0] for c in created['commands'][:6]] == ['tgtadm'] * 5 + ['write']
    assert len(created['targets']) == MANY

    started = time.monotonic()
    noop = lab.module('tgt_target', dict(targets=targets))
    noop_s = time.monotonic() - started
    assert noop['changed'] is False and noop['commands'] == [] and noop['targets'] == []
    everything = lab.module('tgt_target', dict(targets=targets, report='all'))
    assert everything['changed'] is False and [t['iqn'] for t in everything['targets']] == [t['iqn'] for t in targets]
    # Commands the module ran on the no-op: the one `tgtadm --op show` (reads are not in `commands`).
    noop_module_s = float(lab.out(
        "python3 -c 'import time,subprocess; t=time.monotonic(); "
        "subprocess.run([\"tgtadm\",\"--lld\",\"iscsi\",\"--mode\",\"target\",\"--op\",\"show\"],"
        "stdout=subprocess.DEVNULL, check=True); print(time.monotonic()-t)'"))

    started = time.monotonic()
    removed = lab.module('tgt_target', dict(targets=[dict(iqn=t['iqn'], state='absent') for t in targets]))
    remove_s = time.monotonic() - started
    assert removed['changed'] and len(removed['commands']) == 2 * MANY  # the target, then its conf.d file
    assert PREFIX + 'many-' not in show(lab)
    assert 'many-' not in lab.out('ls /etc/tgt/conf.d/')
    for key, value in (('create_s', create_s), ('create_commands', len(created['commands'])),
                       ('noop_s', noop_s), ('noop_commands', len(noop['commands'])),
                       ('show_many_s', noop_module_s), ('remove_s', remove_s)):
        record_property(key, value)
        print('tgt_target %d targets: %s = %s' % (MANY, key, value))
