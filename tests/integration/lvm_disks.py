"""The two spare disks the LVM test files own (virtio-spare1, virtio-spare2), their cleanup, and a holder that keeps an LV open."""

DISK1 = '/dev/disk/by-id/virtio-spare1'
DISK2 = '/dev/disk/by-id/virtio-spare2'


def lvm_state(lab):
    """What check mode and refusals must leave untouched: VGs, PVs, LVs and the disks' signatures."""
    return lab.out('vgs --units b -o vg_name,vg_size,vg_free,pv_count,lv_count; pvs --units b -o pv_name,vg_name,pv_size; '
                   'lvs -a --units b -o lv_name,vg_name,lv_attr,lv_size,pool_lv,origin; wipefs --no-act %s %s'
                   % (DISK1, DISK2))


def clean_disks(lab, also=''):
    """Remove every itest_lvm* VG and all signatures from both disks; ``also`` is run first."""
    lab.sh('%s; for vg in $(vgs --noheadings -o vg_name | grep -o "itest_lvm[^ ]*"); do vgremove -q -f $vg; done; '
           'dmsetup remove itest_lvm_grow 2>/dev/null; '
           'for d in %s %s; do pvremove -q -y $d 2>/dev/null; wipefs -q --all $d; done; true' % (also or ':', DISK1, DISK2))


def assert_wiped(lab):
    assert lab.out('wipefs --no-act --noheadings %s %s' % (DISK1, DISK2)).strip() == ''


def hold(lab, device, pidfile):
    """Keep ``device`` open (a process with it as stdin), so LVM reports it open; ``release`` ends it."""
    lab.sh('(setsid sh -c \'echo $$ > %s; exec sleep 4242\' < %s > /dev/null 2>&1 &); sleep 1' % (pidfile, device))


def release(lab, pidfile):
    lab.sh('test -f {0} && kill $(cat {0}) && rm -f {0} && sleep 1; true'.format(pidfile))
