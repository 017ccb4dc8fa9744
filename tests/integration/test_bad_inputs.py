"""The `lab` rows of tests/bad_inputs.yml: the modules refuse bad input and destructive requests
that depend on the host's state (a mounted disk, an open device, an existing VG, a known unit; the
row's `state`) on the real tools, before anything changes. The `module` rows, refused from their
arguments alone, run on the controller in tests/unit/plugins/modules/test_bad_module_inputs.py.

All rows run in one Python process on the VM (vm_module_runner.py: each row through the module's
main() in a child of its own, ansible's module_utils compiled once: 34 rows took 555 s as Ansible
tasks under the full test load, each paying ~3.5 s of emulated CPU for AnsiballZ); the VM's LVM,
tgt, iSCSI, mount and signature state is read before and after and must be identical.

Resources of this file only (all removed at the end): disks virtio-spare1..3, VG itest_bad, mount
points /mnt/itest-bad and /mnt/itest-bad-iscsi, files under /var/tmp/itest-bad, target
iqn.2026-11.test.bad:used and its node record, the holder process /run/itest-bad-holder.pid, the masked
unit /etc/systemd/system/itest-masked.service.
"""

import base64
import io
import json
import tarfile
import time
from pathlib import Path

import ansible.module_utils
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / 'tests' / 'bad_inputs.yml'
ROWS = [row for row in yaml.safe_load(TABLE.read_text())['rows'] if row['where'] == 'lab']

USED = 'iqn.2026-11.test.bad:used'
LUN = '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-%s-lun-1' % USED
DISKS = ' '.join('/dev/disk/by-id/virtio-spare%d' % n for n in (1, 2, 3))

CLEANUP = r'''
test -f /run/itest-bad-holder.pid && kill $(cat /run/itest-bad-holder.pid); rm -f /run/itest-bad-holder.pid
umount /mnt/itest-bad-iscsi 2>/dev/null; umount /mnt/itest-bad 2>/dev/null
rmdir /mnt/itest-bad-iscsi /mnt/itest-bad 2>/dev/null
iscsiadm -m node -T {used} -u >/dev/null 2>&1; iscsiadm -m node -T {used} -o delete >/dev/null 2>&1
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n "s/^Target \([0-9]*\): {used}\$/\1/p")
[ -n "$tid" ] && tgtadm --lld iscsi --mode target --op delete --force --tid $tid
sleep 1
vgremove -q -f itest_bad 2>/dev/null
for d in {disks}; do pvremove -q -y $d 2>/dev/null; wipefs -q --all $d; done
rm -rf /var/tmp/itest-bad /etc/systemd/system/itest-masked.service
true
'''.format(used=USED, disks=DISKS)

SETUP = r'''
set -e
mkfs.ext4 -q -F /dev/disk/by-id/virtio-spare1
mkfs.ext4 -q -F /dev/disk/by-id/virtio-spare3
mkdir -p /mnt/itest-bad && mount /dev/disk/by-id/virtio-spare3 /mnt/itest-bad
pvcreate -q /dev/disk/by-id/virtio-spare2 && vgcreate -q itest_bad /dev/disk/by-id/virtio-spare2
lvcreate -q -y --type thin-pool -L 128M -n pool itest_bad
lvcreate -q -y -V 64M -T itest_bad/pool -n vol-a
lvcreate -q -y -V 64M -T itest_bad/pool -n vol-open
lvcreate -q -y -L 8M -n thick-open itest_bad
mkdir -p /var/tmp/itest-bad
truncate -s 32M /var/tmp/itest-bad/used.img
truncate -s 8M /var/tmp/itest-bad/spare.img
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target \([0-9]*\): .*/\1/p' | sort -n | tail -1)
tid=$(( ${{tid:-0}} + 1 ))
tgtadm --lld iscsi --mode target --op new --tid $tid -T {used}
tgtadm --lld iscsi --mode logicalunit --op new --tid $tid --lun 1 -b /var/tmp/itest-bad/used.img
tgtadm --lld iscsi --mode target --op bind --tid $tid -I 127.0.0.1
iscsiadm -m node -T {used} -p 127.0.0.1:3260 -o new >/dev/null
iscsiadm -m node -T {used} -p 127.0.0.1:3260 --login >/dev/null
udevadm settle
for i in $(seq 50); do test -b {lun} && break; sleep 0.2; done
mkfs.ext4 -q -F {lun}
mkdir -p /mnt/itest-bad-iscsi && mount {lun} /mnt/itest-bad-iscsi
ln -sfn /dev/null /etc/systemd/system/itest-masked.service
(setsid sh -c 'echo $$ > /run/itest-bad-holder.pid; exec sleep 86400' < /dev/itest_bad/vol-open \
    3< /dev/itest_bad/thick-open 4< {lun} > /dev/null 2>&1 &)
sleep 1
'''.format(used=USED, lun=LUN)

# Everything a refused request must leave as it was.
STATE = r'''
vgs --units b -o vg_name,vg_size,vg_free,pv_count,lv_count
pvs --units b -o pv_name,vg_name,pv_size,pv_used
lvs -a --units b -o lv_name,vg_name,lv_attr,lv_size,pool_lv,origin,data_percent
wipefs --no-act {disks}
echo tgt; tgtadm --lld iscsi --mode target --op show; tgtadm --lld iscsi --mode account --op show
echo conf.d; ls -l /etc/tgt/conf.d
echo nodes; iscsiadm -m node 2>&1
echo units; ls -l /etc/systemd/system/itest-masked.service
echo sessions; iscsiadm -m session 2>&1
echo mounts; findmnt -rn -o TARGET,SOURCE,FSTYPE
echo mapper; ls /dev/mapper
'''.format(disks=DISKS)

RUNNER = '/var/tmp/itest-bad/runner'


def runner_tarball():
    """base64 of a tar.gz holding the runner, ansible's module_utils and the collection's plugins."""
    tree = {'vm_module_runner.py': Path(__file__).with_name('vm_module_runner.py'),
            'ansible/module_utils': Path(ansible.module_utils.__file__).parent,
            'ansible_collections/openblock/storage/plugins': REPO / 'plugins'}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        tar.addfile(tarfile.TarInfo('ansible/__init__.py'))
        for name, path in tree.items():
            tar.add(path, arcname=name, filter=lambda info: None if '__pycache__' in info.name else info)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope='module')
def run(lab):
    """Prepare the VM, run every lab row in one process; yield (results by id, output, state before, state after)."""
    lab.sh(CLEANUP, check=False)
    lab.sh(SETUP)
    try:
        lab.sh('mkdir -p %s && base64 -d | tar -xz -C %s' % (RUNNER, RUNNER), stdin=runner_tarball())
        rows = [{'id': row['id'], 'target': row['target'], 'args': row['args']} for row in ROWS]
        before = lab.out(STATE)
        started = time.monotonic()
        _rc, stdout, stderr = lab.sh('python3 %s/vm_module_runner.py %s' % (RUNNER, RUNNER),
                                     stdin=json.dumps(rows), timeout=1800)
        print('\n%d lab rows in one process on the VM: %.1f s' % (len(ROWS), time.monotonic() - started))
        results = json.loads(stdout)
        after = lab.out(STATE)
        yield results, stdout + stderr, before, after
    finally:
        lab.sh(CLEANUP, check=False)
        assert lab.out('wipefs --no-act --noheadings %s' % DISKS).strip() == ''
        assert 'itest_bad' not in lab.out('vgs --noheadings -o vg_name')


def test_the_table_covers_every_module():
    modules = {path.stem for path in (REPO / 'plugins' / 'modules').glob('*.py') if path.stem != '__init__'}
    table = yaml.safe_load(TABLE.read_text())['rows']
    # every module has rows, here or on the controller (`module` rows)
    assert {row['target'] for row in table if row['where'] in ('lab', 'module')} == modules
    assert ROWS and {row['target'] for row in ROWS} <= modules
    ids = [row['id'] for row in table]
    assert len(ids) == len(set(ids)), 'row ids must be unique'


def test_nothing_changed_on_the_vm(run):
    _results, _output, before, after = run
    assert after == before
    # The fixture's setup is what the rows rely on: a refusal of the wrong kind would not show here.
    assert 'itest_bad' in before and USED in before and '/mnt/itest-bad-iscsi' in before


def test_no_secret_appears_anywhere(run):
    _results, output, _before, _after = run
    assert any(row.get('secret') for row in ROWS), 'a lab row with a secret keeps this test meaningful'
    for row in ROWS:
        if row.get('secret'):
            assert row['secret'] not in output, row['id']


@pytest.mark.parametrize('row', ROWS, ids=[row['id'] for row in ROWS])
def test_row_is_refused_naming_option_and_value(run, row):
    results = run[0]
    result = results[row['id']]
    assert result.get('failed') is True, result
    assert result.get('changed', False) is False, result  # the controller reports an absent `changed` as false
    assert result['commands'] == [], result  # every refusal reports what it ran: nothing
    message = result.get('msg', '')
    assert row['option'] in message, message
    if 'value' in row:
        assert str(row['value']) in message, message
    assert row['expect'] in message, message
