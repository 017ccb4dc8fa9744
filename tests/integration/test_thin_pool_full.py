"""A thin pool never fills silently (issue #19 item 10), proven on the real tools of the lab VM.

A thin volume of a small pool is exported by tgt and written through the VM's own iSCSI login
(127.0.0.1), as a compute node writes to a Cinder volume:

1. With the settings the storage_node role applies through lvm_config (monitoring on, autoextend
   threshold 80, percent 20), dmeventd grows the pool by itself when a writer drives it past 80%.
2. A pool that cannot grow (no free extent in its VG) queues the writes it has no space for during
   dm-thin's ``no_space_timeout`` (60 s here: LVM's default ``activation/error_when_full = 0``
   creates pools that queue), then fails them: the initiator's flush (SYNCHRONIZE CACHE) gets a
   medium error and the writer's fsync fails, before the writer's hard timeout.
3. Meanwhile lvm_thinvol reports the full pool (data_percent 100) and warns at usage_warning_threshold.
4. Another thin volume of the pool keeps its data, dmeventd logged the full pool, and after vgextend
   and ``lvextend --use-policies`` (the command dmeventd runs) the same iSCSI session writes again.
5. The pool's metadata, checked with thin_check after all this (pool inactive, its _tmeta activated
   alone as a read-only component LV), is clean.

tgt's LUNs cache writes (WCE on, the backing device opened without O_DIRECT): a direct write is
acknowledged once it is in tgtd's page cache, and a write the pool has no space for fails at the
initiator's next flush, when the target's fdatasync fails. The writers here flush (conv=fsync), as
filesystems and qemu do.

The tests run in order on one fixture; each shell step is one SSH call with timeouts inside.
Resources of this file only (all removed at the end, and before the start): disks virtio-spare1 and
virtio-spare2, VG itest_thinfull, target iqn.2026-11.test.thinfull:vol-a and its node record, files
/run/itest-thinfull-writer.* and /run/itest-thinfull-mark-*, the copy of /etc/lvm in
/var/tmp/itest-thinfull (lvm.conf and lvmlocal.conf are restored from it).
"""

import time

import pytest
from lvm_disks import DISK1, DISK2

VG = 'itest_thinfull'
IQN = 'iqn.2026-11.test.thinfull:vol-a'
LUN = '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-%s-lun-1' % IQN
SAVED = '/var/tmp/itest-thinfull'
WRITER = '/run/itest-thinfull-writer'
MIB = 1 << 20
# What roles/storage_node sets (storage_node_lvm_settings with the role's defaults).
THRESHOLD = 80
SETTINGS = {'activation/monitoring': 1, 'activation/thin_pool_autoextend_threshold': THRESHOLD,
            'activation/thin_pool_autoextend_percent': 20}
# Step 1: 2MiB in vol-b and 12MiB through iSCSI in vol-a, 87.5% of the 16MiB pool; autoextend
# makes it 20MiB (70%).
POOL_MIB = 16
VOL_B_MIB = 2
FIRST_WRITE_MIB = 12
# Step 2, the VG without free extents: 10MiB of new chunks at 64MiB into vol-a, 4MiB more than the
# pool has left. Step 4: 2MiB of new chunks at 128MiB once the pool has grown again.
SECOND_SEEK_MIB, SECOND_WRITE_MIB = 64, 10
THIRD_SEEK_MIB, THIRD_WRITE_MIB = 128, 2

CLEANUP = r'''
# writes queued in a full pool: fail them now instead of after no_space_timeout
dmsetup status {vg}-pool-tpool 2>/dev/null | grep -q out_of_data_space && \
    timeout 60 lvchange -q --errorwhenfull y {vg}/pool
test -f {writer}.pid && kill -KILL -- -$(cat {writer}.pid) 2>/dev/null
timeout 30 iscsiadm -m node -T {iqn} -u >/dev/null 2>&1; iscsiadm -m node -T {iqn} -o delete >/dev/null 2>&1
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n "s/^Target \([0-9]*\): {iqn}\$/\1/p")
[ -n "$tid" ] && timeout 30 tgtadm --lld iscsi --mode target --op delete --force --tid $tid
timeout 120 vgremove -q -f {vg} 2>/dev/null
for d in {disk1} {disk2}; do pvremove -q -y $d 2>/dev/null; wipefs -q --all $d; done
if test -f {saved}/lvm.conf; then
    cp -p {saved}/lvm.conf {saved}/lvmlocal.conf /etc/lvm/
    cmp -s {saved}/lvm.conf /etc/lvm/lvm.conf && cmp -s {saved}/lvmlocal.conf /etc/lvm/lvmlocal.conf && \
        echo "@@restored"
fi
rm -rf {saved} {writer}.* /run/itest-thinfull-mark-*
true
'''.format(vg=VG, iqn=IQN, writer=WRITER, saved=SAVED, disk1=DISK1, disk2=DISK2)

SAVE = 'mkdir -p {0} && cp -p /etc/lvm/lvm.conf /etc/lvm/lvmlocal.conf {0}/'.format(SAVED)

# After lvm_config, as the role orders it: the pool is created (and registered with dmeventd) with
# the autoextend settings in place.
SETUP = r'''
set -e
pvcreate -q {disk1}
vgcreate -q {vg} {disk1}
lvcreate -q -y --type thin -V 256M -L {pool}M --thinpool pool -n vol-a {vg}
lvcreate -q -y -V 16M -T {vg}/pool -n vol-b
timeout 60 dd if=/dev/urandom of=/dev/{vg}/vol-b bs=1M count={volb} oflag=direct status=none
systemctl start tgt
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target \([0-9]*\): .*/\1/p' | sort -n | tail -1)
tid=$(( ${{tid:-0}} + 1 ))
tgtadm --lld iscsi --mode target --op new --tid $tid -T {iqn}
tgtadm --lld iscsi --mode logicalunit --op new --tid $tid --lun 1 -b /dev/{vg}/vol-a
tgtadm --lld iscsi --mode target --op bind --tid $tid -I 127.0.0.1
iscsiadm -m node -T {iqn} -p 127.0.0.1:3260 -o new >/dev/null
timeout 60 iscsiadm -m node -T {iqn} -p 127.0.0.1:3260 --login >/dev/null
timeout 30 udevadm settle
for i in $(seq 50); do test -b {lun} && break; sleep 0.2; done
test -b {lun}
'''.format(vg=VG, iqn=IQN, lun=LUN, disk1=DISK1, pool=POOL_MIB, volb=VOL_B_MIB)

# Shell functions every step script starts with. Each prints a block: a line "@@name", then lines.
HELPERS = r'''
facts() {{ echo "@@$1"; lvs --noheadings --units b --nosuffix -o lv_size,data_percent {vg}/pool; \
    dmsetup status {vg}-pool-tpool; }}
mark() {{ echo "itest-thinfull $RUN $1" > /dev/kmsg; date +%s > /run/itest-thinfull-mark-$1; }}
kernel() {{ echo "@@kernel"; dmesg | sed -n "/itest-thinfull $RUN $1\$/,\$p"; }}
journal() {{ echo "@@journal"; journalctl -q -u dm-event --since @$(cat /run/itest-thinfull-mark-$1) --no-pager; }}
'''.format(vg=VG)


def blocks(out):
    """The "@@name" blocks of a step's output: {name: [lines]}; lines before any block under ''."""
    found, name = {'': []}, ''
    for line in out.splitlines():
        if line.startswith('@@'):
            name = line[2:].strip()
            found[name] = []
        else:
            found[name].append(line)
    return found


def pool_facts(lines):
    """(size in bytes, data percent, dm status) from a facts block."""
    size, percent = lines[0].split()
    return int(size), float(percent), lines[1]


def stamp(lines, text):
    """Kernel time stamp (s) of the first line containing ``text``, or None."""
    for line in lines:
        if text in line and line.startswith('['):
            return float(line[1:line.index(']')])
    return None


class Node:
    """The lab VM and the figures the tests measure, shared by the tests of this file (in order)."""

    def __init__(self, lab):
        self.lab = lab
        self.run = '%d' % time.time()  # marks this run's lines in the kernel log
        self.figures = {}
        self.config = None

    def step(self, script, timeout):
        """Run a step script (with the helpers) in one SSH call; return its blocks."""
        prefix = 'RUN=%s\n%s\n' % (self.run, HELPERS)
        return blocks(self.lab.sh(prefix + script, timeout=timeout)[1])


@pytest.fixture(scope='module', name='node')
def node_fixture(lab):
    lab.sh(CLEANUP + SAVE, timeout=300)
    try:
        state = Node(lab)
        # The role's lvm_config task, settings only (the global_filter is test_lvm_config's proof).
        state.config = lab.module('lvm_config', {'settings': SETTINGS})
        lab.sh(SETUP, timeout=240)
        yield state
    finally:
        out = lab.sh(CLEANUP + 'echo "@@signatures"; wipefs --no-act --noheadings %s %s; echo "@@left"; '
                     'vgs --noheadings -o vg_name; tgtadm --lld iscsi --mode target --op show; iscsiadm -m node 2>&1; '
                     'true' % (DISK1, DISK2), check=False, timeout=300)[1]
        found = blocks(out)
        assert 'restored' in found, 'lvm.conf or lvmlocal.conf not restored: %s' % out
        left = '\n'.join(found.get('left', ['(no answer)']))
        assert VG not in left and IQN not in left and 'no answer' not in left, left
        assert not ''.join(found['signatures']).strip(), found['signatures']  # both disks wiped


def test_1_autoextend_grows_the_pool_under_a_writer(node):
    config = node.config
    assert not config['failed'] and config['changed'] and config['files'] == ['/etc/lvm/lvm.conf'], config
    found = node.step(r'''
echo "@@config"; lvmconfig activation/monitoring activation/thin_pool_autoextend_threshold \
    activation/thin_pool_autoextend_percent; lvs --noheadings -o seg_monitor {vg}/pool
facts before
mark autoextend
started=$(date +%s.%N)
timeout 90 dd if=/dev/zero of={lun} bs=1M count={count} oflag=direct conv=fsync status=none; echo "@@dd $?"
written=$(date +%s.%N)
for i in $(seq 60); do
    size=$(lvs --noheadings --units b --nosuffix -o lv_size {vg}/pool | tr -d ' ')
    [ "$size" -gt {size} ] && break
    sleep 1
done
echo "@@times"; echo "$started $written $(date +%s.%N)"
facts after
journal autoextend
kernel autoextend
'''.format(lun=LUN, count=FIRST_WRITE_MIB, vg=VG, size=POOL_MIB * MIB), timeout=240)
    assert [line.strip() for line in found['config']] == [
        'monitoring=1', 'thin_pool_autoextend_threshold=80', 'thin_pool_autoextend_percent=20', 'monitored']
    size, percent, status = pool_facts(found['before'])
    assert size == POOL_MIB * MIB and percent == VOL_B_MIB * 100.0 / POOL_MIB, (size, percent)
    assert 'queue_if_no_space' in status, status  # activation/error_when_full = 0, LVM's default
    assert 'dd 0' in found, found
    started, written, grown_at = (float(value) for value in found['times'][0].split())
    grown, percent, status = pool_facts(found['after'])
    low = stamp(found['kernel'], 'reached low water mark for data device')
    extended = stamp(found['kernel'], 'growing the data device')
    print('\nautoextend: pool %d MiB -> %d MiB (%.1f%% used) %.1f s after the writer started (%d MiB through '
          'iSCSI in %.1f s, fsync included); kernel: low water mark event -> data device grown %s s later'
          % (POOL_MIB, grown // MIB, percent, grown_at - started, FIRST_WRITE_MIB, written - started,
             '%.1f' % (extended - low) if low and extended else '?'))
    assert grown > POOL_MIB * MIB and percent < THRESHOLD, found  # the pool grew by itself
    assert low is not None and extended is not None, found['kernel']
    # the resize is dmeventd's
    assert any('Logical volume %s/pool successfully resized' % VG in line for line in found['journal']), found
    node.figures['pool_after_autoextend'] = grown


def test_2_a_pool_that_cannot_grow_queues_the_writes(node):
    # Every free extent of the VG taken (by a plain LV): autoextend has nothing to grow the pool with.
    found = node.step(r'''
set -e
lvcreate -q -y -l 100%FREE -n filler {vg}
echo "@@free"; vgs --noheadings -o vg_free_count {vg}
echo "@@no_space_timeout"; cat /sys/module/dm_thin_pool/parameters/no_space_timeout
echo "@@when_full"; lvs --noheadings -o lv_when_full {vg}/pool
echo "@@vol_b"; sha256sum < /dev/{vg}/vol-b
limit=$(( $(cat /sys/module/dm_thin_pool/parameters/no_space_timeout) + 30 ))
echo "@@limit"; echo $limit
set +e
rm -f {writer}.*
mark full
# the writer, on the initiator side, in the background, killed at its hard timeout
(setsid sh -c 'echo $$ > {writer}.pid; date +%s.%N > {writer}.start; \
  timeout -s KILL '$limit' dd if=/dev/zero of={lun} bs=1M count={count} seek={seek} oflag=direct conv=fsync \
  > {writer}.out 2>&1; echo $? > {writer}.rc; date +%s.%N > {writer}.end' < /dev/null > /dev/null 2>&1 &)
# Its writes land in tgtd's page cache; its fsync makes tgtd write them back, and the pool runs
# out of data space part-way through.
for i in $(seq 60); do
    kernel full | grep -q "out-of-data-space (queue IO)" && break
    test -f {writer}.rc && break
    sleep 1
done
echo "@@writer"; cat {writer}.start; date +%s.%N; cat {writer}.rc 2>/dev/null
facts full
kernel full
'''.format(vg=VG, writer=WRITER, lun=LUN, count=SECOND_WRITE_MIB, seek=SECOND_SEEK_MIB), timeout=240)
    figures = node.figures
    figures.update(no_space_timeout=int(found['no_space_timeout'][0]), when_full=found['when_full'][0].strip(),
                   writer_limit=int(found['limit'][0]), vol_b_sum=found['vol_b'][0],
                   writer_started=float(found['writer'][0]))
    assert found['free'][0].strip() == '0'
    assert figures['when_full'] == 'queue' and figures['no_space_timeout'] > 0, figures
    assert len(found['writer']) == 2, 'the writer ended before the pool filled: %s' % found
    size, percent, status = pool_facts(found['full'])
    assert percent == 100.0 and 'out_of_data_space' in status and 'queue_if_no_space' in status, (percent, status)
    assert stamp(found['kernel'], 'switching pool to out-of-data-space (queue IO) mode') is not None, found
    print('\nfull: pool %d MiB at %.0f%%, VG without free extents; writes queued (no_space_timeout %d s, when full: '
          '%s), %.1f s after the writer started' % (size // MIB, percent, figures['no_space_timeout'],
                                                    figures['when_full'],
                                                    float(found['writer'][1]) - figures['writer_started']))


def test_3_lvm_thinvol_reports_the_full_pool(node):
    # While the writes wait in the full pool: the existing volume again, nothing to change.
    started = time.monotonic()
    result, output = node.lab.module('lvm_thinvol', dict(vg=VG, pool='pool', volumes=[dict(name='vol-a', size='256M')],
                                                         usage_warning_threshold=THRESHOLD), raw=True)
    assert not result['failed'] and not result['changed'] and result['commands'] == [], result
    pool = result['pool']
    assert pool['data_percent'] == 100.0 and pool['size'] == node.figures['pool_after_autoextend'], pool
    # Ansible wraps warnings at the terminal's width; compare with the whitespace collapsed.
    warning = 'thin pool %s/pool: data usage 100.00%% is at or above %d%% (usage_warning_threshold)' % (VG, THRESHOLD)
    assert warning in ' '.join(output.split()), output
    print('\nlvm_thinvol on the full pool (%.1f s): data_percent %.2f, metadata_percent %.2f; warned: %s'
          % (time.monotonic() - started, pool['data_percent'], pool['metadata_percent'], warning))


def test_4_the_writer_gets_the_error_within_no_space_timeout(node):
    figures = node.figures
    limit = figures['writer_limit']
    found = node.step(r'''
for i in $(seq {wait}); do test -f {writer}.rc && break; sleep 1; done
echo "@@writer"; cat {writer}.rc {writer}.end
echo "@@message"; cat {writer}.out
echo "@@disk"; basename $(readlink -f {lun})
echo "@@vol_b"; sha256sum < /dev/{vg}/vol-b
journal full
kernel full
'''.format(wait=limit + 15, writer=WRITER, lun=LUN, vg=VG), timeout=limit + 60)
    rc, ended = int(found['writer'][0]), float(found['writer'][1])
    message = ' | '.join(found['message'])
    kernel, journal, disk = found['kernel'], '\n'.join(found['journal']), found['disk'][0]
    queued = stamp(kernel, 'switching pool to out-of-data-space (queue IO) mode')
    failed = stamp(kernel, 'switching pool to out-of-data-space (error IO) mode')
    # the initiator's view: its disk (sdX, the iSCSI LUN) fails the flush
    initiator = [line for line in kernel if 'dev %s,' % disk in line or '[%s]' % disk in line]
    at_initiator = stamp(initiator, 'error')
    print('\nthe writer: exit %d %.1f s after it started (hard timeout %d s): %s\nkernel: queue IO -> error IO mode '
          '%s s, queue IO -> error at the initiator (%s) %s s\n%s\ndmeventd: %s'
          % (rc, ended - figures['writer_started'], limit, message,
             '%.1f' % (failed - queued) if failed and queued else '?', disk,
             '%.1f' % (at_initiator - queued) if at_initiator and queued else '?', '\n'.join(initiator),
             ' | '.join(line.split(': ', 1)[-1] for line in found['journal'][:4])))
    assert rc == 1, (rc, message)  # dd's own failure, not the hard timeout's kill (137)
    assert 'fsync failed' in message and ('No data available' in message or 'Input/output error' in message), message
    assert ended - figures['writer_started'] < limit, 'the error came only at the hard timeout'
    assert queued is not None and failed is not None and at_initiator is not None, kernel
    # the pool held the writes for no_space_timeout, then failed them, and the initiator heard it at once
    assert figures['no_space_timeout'] - 2 <= failed - queued <= figures['no_space_timeout'] + 5, (queued, failed)
    assert at_initiator - failed <= 5, (failed, at_initiator)
    assert any('medium error' in line.lower() or 'I/O error' in line for line in initiator), initiator
    # the other volume of the pool kept its data; the storage node's log says the pool is full
    assert found['vol_b'][0] == figures['vol_b_sum']
    assert 'Thin pool %s-pool-tpool data is now 100.00%% full' % VG in journal, journal
    assert 'Insufficient free space' in journal, journal


def test_5_space_added_then_the_same_session_writes_again(node):
    found = node.step(r'''
set -e
echo "@@session"; iscsiadm -m session | grep -F "{iqn}"
facts before
mark recovered
pvcreate -q {disk2}
vgextend -q {vg} {disk2}
timeout 120 lvextend -q --use-policies {vg}/pool
timeout 90 dd if=/dev/zero of={lun} bs=1M count={count} seek={seek} oflag=direct conv=fsync status=none
echo "@@written"
echo "@@session_after"; iscsiadm -m session | grep -F "{iqn}"
facts after
kernel recovered
'''.format(iqn=IQN, disk2=DISK2, vg=VG, lun=LUN, count=THIRD_WRITE_MIB, seek=THIRD_SEEK_MIB), timeout=300)
    before = pool_facts(found['before'])[0]
    size, percent, status = pool_facts(found['after'])
    print('\nspace added: pool %d MiB -> %d MiB (%.1f%% used after the write), status: %s'
          % (before // MIB, size // MIB, percent, status.split(' thin-pool ')[-1]))
    assert 'written' in found
    assert size > before and percent < 100.0, (size, percent)
    assert stamp(found['kernel'], 'switching pool to write mode') is not None, found['kernel']
    # the resize reloaded the pool's table: writes queue again when it is full, and no repair is needed
    assert ' rw ' in status and 'queue_if_no_space' in status and 'needs_check' not in status, status
    assert found['session_after'] == found['session']  # the same session, its disk never went away
    assert 'error' not in ' '.join(found['kernel']).lower(), found['kernel']


def test_6_the_pool_metadata_checks_clean(node):
    # Export gone and the pool inactive; its metadata LV activated alone (read-only component, LVM 2.03).
    found = node.step(r'''
set -e
timeout 30 iscsiadm -m node -T {iqn} -u >/dev/null; iscsiadm -m node -T {iqn} -o delete
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n "s/^Target \([0-9]*\): {iqn}\$/\1/p")
timeout 30 tgtadm --lld iscsi --mode target --op delete --tid $tid
timeout 120 lvchange -q -an {vg}/vol-a {vg}/vol-b {vg}/pool
timeout 60 lvchange -q -ay -y {vg}/pool_tmeta 2>/dev/null
echo "@@tmeta"; lvs --noheadings -a -o lv_attr {vg}/pool_tmeta
echo "@@thin_check"; rc=0; timeout 120 thin_check /dev/{vg}/pool_tmeta 2>&1 || rc=$?
echo "@@rc"; echo $rc
timeout 60 lvchange -q -an {vg}/pool_tmeta
'''.format(iqn=IQN, vg=VG), timeout=400)
    print('\nthin_check of %s/pool_tmeta (component LV, attr %s): exit %s\n%s'
          % (VG, found['tmeta'][0].strip(), found['rc'][0], '\n'.join(found['thin_check'])))
    assert found['tmeta'][0].strip().startswith('eRi-a'), found  # active alone, read-only
    assert found['rc'] == ['0'], found
