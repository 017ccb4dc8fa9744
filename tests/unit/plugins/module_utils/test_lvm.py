"""LVM readers, input rules and planners, fed with reports recorded in the lab VM (lvm2 2.03.16).

The fixtures under tests/unit/fixtures/lvm/ were recorded with the commands the readers run, on
the lab's spare disks (/dev/vdb, /dev/vdc):
- vgs_itest_lvm_a.json, lvs_pool_volumes.json: VG on both disks, thin pool `pool` (95%VG), thin
  volumes v1 (100MiB, held open), s1 (thin snapshot of v1), v2 (1GiB, inactive), thick LV `thick`.
- vgs_two_pvs_one_lv.json, pvs_two_in_vg.json: VG itest_lvm_a on vdb + vdc, 3 extents used on vdc.
- pvs_orphan.json: itest_lvm_a on vdb, vdc a PV in no VG.
- pvs_grown_device.json, vgs_grown_device.json: a PV on a dm device grown from 128 to 256MiB.
- vgs_200_volumes.json, lvs_200_volumes.json: VG itest_lvm_thin after one lvm_thinvol task made
  200 inactive thin volumes.
- wipefs_*.json: `wipefs --no-act --json` of a clean disk, of an ext4 disk, of a PV.
- *.err / *.rc: what LVM says (exit 5) when removing an open LV, reusing another VG's PV, or
  reporting on a missing VG.
"""

from pathlib import Path

import pytest

from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    Refusal, name_error, parse_report, parse_signatures, plan_thin, plan_vg, thin_facts, thin_spec,
    thin_view, thin_warnings, vg_spec, vg_view)

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'lvm'
MiB = 1 << 20


def fixture(name):
    return (FIXTURES / name).read_text()


def report(name, kind):
    return parse_report(fixture(name), kind)


def argvs(actions):
    return [' '.join(a.argv) for a in actions]


# --------------------------------------------------------------------------- readers

def test_vg_report_gives_exact_integers():
    [vg] = report('vgs_itest_lvm_a.json', 'vg')
    assert vg['vg_name'] == 'itest_lvm_a'
    assert vg['vg_extent_size'] == 4 * MiB
    assert vg['vg_size'] == 510 * 4 * MiB
    assert vg['lv_count'] == 5
    assert vg['vg_attr'] == 'wz--n-'


def test_missing_vg_reads_as_no_rows():
    assert report('vgs_missing.json', 'vg') == []
    # lvs of a missing VG exits 5 but still prints an empty report on stdout
    assert fixture('lvs_missing_vg.rc').strip() == '5'
    assert report('lvs_missing_vg.out', 'lv') == []


def test_lv_report_not_applicable_values_are_none():
    rows = dict((lv['lv_name'], lv) for lv in report('lvs_pool_volumes.json', 'lv'))
    assert rows['pool']['lv_path'] is None
    assert rows['pool']['chunk_size'] == 64 * 1024
    assert rows['pool']['lv_metadata_size'] == 4 * MiB
    assert rows['v1']['origin'] is None and rows['s1']['origin'] == 'v1'
    assert rows['v2']['data_percent'] is None  # inactive: LVM reports no usage
    assert rows['thick']['pool_lv'] is None


def test_error_text_is_not_a_report():
    with pytest.raises(ValueError):
        parse_report(fixture('lvs_missing_vg.err'), 'lv')


def test_pv_report():
    rows = report('pvs_orphan.json', 'pv')
    assert [(pv['pv_name'], pv['vg_name']) for pv in rows] == [('/dev/vdb', 'itest_lvm_a'), ('/dev/vdc', None)]
    assert rows[0]['pe_start'] == MiB and rows[0]['pv_pe_count'] == 255


@pytest.mark.parametrize('name, expected', [
    ('wipefs_clean.json', []),
    ('wipefs_ext4.json', ['ext4']),
    ('wipefs_lvm2_member.json', ['LVM2_member']),
])
def test_signatures(name, expected):
    assert parse_signatures(fixture(name)) == expected


def test_facts_of_pool_and_volumes():
    [vg] = report('vgs_itest_lvm_a.json', 'vg')
    facts = thin_facts('itest_lvm_a', report('lvs_pool_volumes.json', 'lv'), 'pool')
    assert facts['pool']['size'] == 2030043136
    assert facts['pool']['data_percent'] == 0.0 and facts['pool']['metadata_percent'] == 11.13
    assert facts['pool']['zero'] is True and facts['pool']['discards'] == 'passdown'
    assert sorted(facts['volumes']) == ['s1', 'v1', 'v2']  # the thick LV is not the pool's
    assert facts['volumes']['v1']['open'] is True and facts['volumes']['v1']['path'] == '/dev/itest_lvm_a/v1'
    assert facts['volumes']['v2']['active'] is False
    assert facts['volumes']['s1']['origin'] == 'v1'
    assert vg['vg_name'] == facts['pool']['vg']


# --------------------------------------------------------------------------- input rules

@pytest.mark.parametrize('name', ['snapshot1', 'pvmove0', 'vol_tmeta', 'x_tdata_y', 'a_pmspare'])
def test_reserved_lv_names(name):
    error = name_error(name, 'volumes[0].name', lv=True)
    assert 'reserve' in error and repr(name) in error and 'volumes[0].name' in error


@pytest.mark.parametrize('name', ['-vol', 'a b', 'vol/1', '..', '', 'x' * 128, 'é'])
def test_invalid_names(name):
    assert repr(name) in name_error(name, 'pool', lv=True)


@pytest.mark.parametrize('name', ['volume-1', 'v.1+x_y', 'cinder-volumes', 'A' * 127])
def test_valid_names(name):
    assert name_error(name, 'name', lv=True) is None


def thin_params(**kwargs):
    params = dict(vg='itest_lvm_a', pool='pool', size=None, chunksize=None, metadata_size=None,
                  zero=None, discards=None, volumes=[], purge=False, force=False)
    params.update(kwargs)
    return params


def thin(**kwargs):
    spec, errors = thin_spec(thin_params(**kwargs))
    assert errors == []
    return spec


def test_thin_input_collects_every_error():
    spec, errors = thin_spec(thin_params(pool='pvmove9', size='ten', chunksize='100K', volumes=[
        dict(name='v1', size='50%FREE'), dict(name='snapshot-a', size='1G'),
        dict(name='v3', size='1.3B'), dict(name='v1', size='1G'), dict(name='v5', size='0')]))
    text = '\n'.join(errors)
    assert len(errors) == 8
    for piece in ("pool='pvmove9'", "size='ten'", "chunksize='100K'", "volumes[0].size='50%FREE'",
                  "volumes[1].name='snapshot-a'", "volumes[2].size='1.3B'", "volumes[3].name='v1' is listed twice",
                  "volumes[4].size='0'"):
        assert piece in text


def test_thin_input_sizes():
    spec = thin(size='95%VG', volumes=[dict(name='v', size='1G')])
    assert spec['size'] == (95.0, 'VG')
    assert spec['volumes'][0]['size'] == 1 << 30
    assert spec['volumes'][0]['state'] == 'present' and spec['volumes'][0]['active'] is True
    _spec, errors = thin_spec(thin_params(size='150%VG'))
    assert "size='150%VG'" in errors[0]


def test_vg_input_collects_every_error():
    _spec, errors = vg_spec(dict(name='bad name', state='present', pvs=['sdb', '/dev/vdb', '/dev/vdb'], pesize='3M'))
    assert len(errors) == 4
    text = '\n'.join(errors)
    for piece in ("name='bad name'", "pvs[0]='sdb'", 'names a device twice', "pesize='3M'"):
        assert piece in text
    _spec, errors = vg_spec(dict(name='vg', state='present', pvs=[]))
    assert errors == ['pvs=[]: state=present needs at least one device; list the devices of the VG']
    _spec, errors = vg_spec(dict(name='vg', state='absent', pvs=None))
    assert errors == []


# --------------------------------------------------------------------------- lvm_vg planner

def vg_plan(params, vg_file, pv_file, devices, signatures=None):
    spec, errors = vg_spec(dict(dict(state='present', pesize=None, pvresize=False, reduce=False,
                                     force=False, pvs=list(devices.values())), **params))
    assert errors == []
    vg = report(vg_file, 'vg')[0] if vg_file else None
    return plan_vg(spec, vg, report(pv_file, 'pv') if pv_file else [], devices, signatures or {})


BY_ID = {'/dev/vdb': '/dev/disk/by-id/virtio-spare1', '/dev/vdc': '/dev/disk/by-id/virtio-spare2'}


def test_create_vg_on_clean_devices_uses_given_paths():
    actions, expected = vg_plan(dict(name='itest_lvm_a', pesize='8M'), None, None, BY_ID,
                                {'/dev/vdb': parse_signatures(fixture('wipefs_clean.json')), '/dev/vdc': []})
    assert argvs(actions) == ['vgcreate --physicalextentsize 8388608b itest_lvm_a '
                              '/dev/disk/by-id/virtio-spare1 /dev/disk/by-id/virtio-spare2']
    assert expected['pvs'] == {'/dev/disk/by-id/virtio-spare1': None, '/dev/disk/by-id/virtio-spare2': None}


def test_signature_refused_without_force_and_wiped_with_it():
    signatures = {'/dev/vdb': parse_signatures(fixture('wipefs_ext4.json')), '/dev/vdc': []}
    with pytest.raises(Refusal) as refusal:
        vg_plan(dict(name='itest_lvm_a'), None, None, BY_ID, signatures)
    assert '/dev/disk/by-id/virtio-spare1 carries ext4' in str(refusal.value)
    assert 'force=true' in str(refusal.value)
    actions, _expected = vg_plan(dict(name='itest_lvm_a', force=True), None, None, BY_ID, signatures)
    assert argvs(actions) == ['wipefs --all /dev/disk/by-id/virtio-spare1',
                              'vgcreate itest_lvm_a /dev/disk/by-id/virtio-spare1 /dev/disk/by-id/virtio-spare2']


@pytest.mark.parametrize('force', [False, True])
def test_pv_of_another_vg_refused_always(force):
    with pytest.raises(Refusal) as refusal:
        vg_plan(dict(name='itest_lvm_b', force=force), None, 'pvs_two_in_vg.json', {'/dev/vdb': '/dev/vdb'})
    assert 'physical volume of volume group itest_lvm_a' in str(refusal.value)


@pytest.mark.parametrize('force', [False, True])
def test_device_in_use_refused_always(force):
    in_use = {'/dev/vdb': ['/dev/vdb is mounted on /mnt/data'], '/dev/vdc': []}
    spec, errors = vg_spec(dict(name='itest_lvm_a', state='present', pesize=None, pvresize=False, reduce=False,
                                force=force, pvs=list(BY_ID.values())))
    assert errors == []
    with pytest.raises(Refusal) as refusal:
        plan_vg(spec, None, [], BY_ID, {'/dev/vdb': ['ext4'], '/dev/vdc': []}, in_use)
    assert refusal.value.reasons == [
        'pvs: /dev/disk/by-id/virtio-spare1 is in use on this host (/dev/vdb is mounted on /mnt/data); unmount it '
        'or stop what holds it, or choose another device (force does not override this)']


def test_existing_vg_is_a_no_op():
    actions, expected = vg_plan(dict(name='itest_lvm_a', pvresize=True, reduce=True),
                                'vgs_two_pvs_one_lv.json', 'pvs_two_in_vg.json', BY_ID)
    assert actions == []
    [vg] = report('vgs_two_pvs_one_lv.json', 'vg')
    assert expected == vg_view(vg, report('pvs_two_in_vg.json', 'pv'), BY_ID)
    assert expected['pvs'] == {'/dev/disk/by-id/virtio-spare1': 255, '/dev/disk/by-id/virtio-spare2': 255}


def test_orphan_pv_is_added_without_probe_or_wipe():
    actions, _expected = vg_plan(dict(name='itest_lvm_a'), 'vgs_two_pvs_one_lv.json', 'pvs_orphan.json', BY_ID)
    assert argvs(actions) == ['vgextend itest_lvm_a /dev/disk/by-id/virtio-spare2']


def test_reduce_only_empty_pvs():
    with pytest.raises(Refusal) as refusal:
        vg_plan(dict(name='itest_lvm_a', reduce=True), 'vgs_two_pvs_one_lv.json', 'pvs_two_in_vg.json',
                {'/dev/vdb': '/dev/vdb'})
    assert '/dev/vdc still holds 3 used extent(s)' in str(refusal.value)
    actions, expected = vg_plan(dict(name='itest_lvm_a', reduce=True), 'vgs_two_pvs_one_lv.json',
                                'pvs_two_in_vg.json', {'/dev/vdc': '/dev/vdc'})
    assert argvs(actions) == ['vgreduce itest_lvm_a /dev/vdb', 'pvremove /dev/vdb']
    assert expected['pvs'] == {'/dev/vdc': 255}
    # without reduce, unlisted PVs stay
    actions, _expected = vg_plan(dict(name='itest_lvm_a'), 'vgs_two_pvs_one_lv.json', 'pvs_two_in_vg.json',
                                 {'/dev/vdc': '/dev/vdc'})
    assert actions == []


def test_remove_vg_with_lvs_needs_force():
    with pytest.raises(Refusal) as refusal:
        vg_plan(dict(name='itest_lvm_a', state='absent'), 'vgs_two_pvs_one_lv.json', 'pvs_two_in_vg.json', {})
    assert 'holds 1 logical volume' in str(refusal.value)
    actions, expected = vg_plan(dict(name='itest_lvm_a', state='absent', force=True),
                                'vgs_two_pvs_one_lv.json', 'pvs_two_in_vg.json', {})
    assert argvs(actions) == ['vgremove --force itest_lvm_a', 'pvremove /dev/vdb /dev/vdc']
    assert expected == {}
    assert vg_plan(dict(name='itest_lvm_a', state='absent'), None, 'pvs_orphan.json', {}) == ([], {})


def test_pesize_of_existing_vg_is_not_changed():
    with pytest.raises(Refusal) as refusal:
        vg_plan(dict(name='itest_lvm_a', pesize='8M'), 'vgs_two_pvs_one_lv.json', 'pvs_two_in_vg.json', BY_ID)
    assert 'pesize=8MiB but volume group itest_lvm_a has extents of 4MiB' in str(refusal.value)


def test_pvresize_grows_a_grown_device():
    dev = {'/dev/mapper/itest_lvm_grow': '/dev/mapper/itest_lvm_grow'}
    actions, _expected = vg_plan(dict(name='itest_lvm_g'), 'vgs_grown_device.json', 'pvs_grown_device.json', dev)
    assert actions == []
    actions, expected = vg_plan(dict(name='itest_lvm_g', pvresize=True), 'vgs_grown_device.json',
                                'pvs_grown_device.json', dev)
    assert argvs(actions) == ['pvresize /dev/mapper/itest_lvm_grow']
    assert expected['pvs'] == {'/dev/mapper/itest_lvm_grow': (256 - 1) // 4}


# --------------------------------------------------------------------------- lvm_thinvol planner

VG = report('vgs_itest_lvm_a.json', 'vg')[0]
LVS = report('lvs_pool_volumes.json', 'lv')
CURRENT = [dict(name='v1', size='100M'), dict(name='v2', size='1G', active=False),
           dict(name='s1', snapshot_of='v1')]


def thin_plan(lvs=None, **kwargs):
    return plan_thin(thin(**kwargs), VG, LVS if lvs is None else lvs)


def refusal_of(**kwargs):
    with pytest.raises(Refusal) as refusal:
        thin_plan(**kwargs)
    return str(refusal.value)


def test_recorded_state_is_a_no_op():
    actions, expected = thin_plan(size='95%VG', volumes=CURRENT)
    assert actions == []
    assert expected == thin_view(LVS, 'pool')


def test_sizes_compare_after_rounding_to_extents():
    # 101000000 B rounds up to 25 extents of 4MiB = 104857600 B, the recorded size of v1
    actions, _expected = thin_plan(volumes=[dict(name='v1', size='101000000')])
    assert actions == []
    actions, _expected = thin_plan(volumes=[dict(name='v1', size='104857601')])
    assert argvs(actions) == ['lvextend --size 109051904b itest_lvm_a/v1']


def test_grow_volume_and_pool():
    actions, expected = thin_plan(size='2G', volumes=[dict(name='v1', size='200M')])
    assert argvs(actions) == ['lvextend --size 2147483648b itest_lvm_a/pool',
                              'lvextend --size 209715200b itest_lvm_a/v1']
    assert expected['volumes']['v1']['size'] == 200 * MiB
    assert expected['pool']['size'] == 2 << 30


def test_shrink_needs_force():
    assert "volumes[0].size=512MiB is smaller than itest_lvm_a/v2 (1GiB)" in refusal_of(
        volumes=[dict(name='v2', size='512M', active=False)])
    actions, _expected = thin_plan(volumes=[dict(name='v2', size='512M', active=False)], force=True)
    assert argvs(actions) == ['lvreduce --force --size 536870912b itest_lvm_a/v2']


@pytest.mark.parametrize('force', [False, True])
def test_pool_never_shrinks(force):
    assert 'LVM cannot shrink a thin pool' in refusal_of(size='1G', force=force)


@pytest.mark.parametrize('force', [False, True])
def test_open_volume_is_never_removed(force):
    # LVM refuses to remove an open LV (lvremove_open.err): force must not be offered for it
    message = refusal_of(volumes=[dict(name='v1', state='absent')], force=force)
    assert ('volumes[0]: itest_lvm_a/v1 is open (mounted, exported or held); stop what holds it (unexport, '
            'unmount or stop the process) and re-run; force does not remove an open volume') in message
    assert 'set force=true' not in message
    assert 'purge: itest_lvm_a/v1 is open' in refusal_of(volumes=[dict(name='v2')], purge=True, force=True)
    actions, expected = thin_plan(volumes=[dict(name='s1', state='absent')])
    assert argvs(actions) == ['lvremove --force itest_lvm_a/s1']
    assert sorted(expected['volumes']) == ['v1', 'v2']


def test_absent_volume_that_does_not_exist_is_a_no_op():
    assert thin_plan(volumes=[dict(name='gone', state='absent')])[0] == []


def test_purge_needs_force_and_spares_other_lvs():
    message = refusal_of(volumes=[dict(name='v1')], purge=True)
    assert 'purge would remove 2 thin volume(s) not listed in volumes (s1, v2)' in message
    actions, _expected = thin_plan(volumes=[dict(name='v1')], purge=True, force=True)
    assert argvs(actions) == ['lvremove --force itest_lvm_a/s1 itest_lvm_a/v2']
    assert thin_plan(volumes=CURRENT, purge=True)[0] == []


def test_non_thin_lv_is_not_taken_over():
    assert "volumes[0].name='thick': itest_lvm_a/thick exists and is not a thin volume of pool pool" in refusal_of(
        volumes=[dict(name='thick', size='8M')])
    assert 'exists and is not a thin pool' in refusal_of(pool='thick')


def test_activation():
    actions, expected = thin_plan(volumes=[dict(name='v2'), dict(name='s1', active=False)])
    assert argvs(actions) == ['lvchange --activate y --ignoreactivationskip itest_lvm_a/v2',
                              'lvchange --activate n itest_lvm_a/s1']
    assert expected['volumes']['v2']['active'] is True and expected['volumes']['s1']['active'] is False
    assert 'is open (mounted, exported or held) and cannot be deactivated' in refusal_of(
        volumes=[dict(name='v1', active=False)])


def test_create_volume_then_its_snapshot():
    actions, expected = thin_plan(volumes=[dict(name='v9', size='1G'), dict(name='v9-snap', snapshot_of='v9', size='2G'),
                                           dict(name='v1-snap', snapshot_of='v1', active=False)])
    assert argvs(actions) == [
        'lvcreate --type thin --virtualsize 1073741824b --thinpool pool --name v9 --activate y itest_lvm_a',
        'lvcreate --snapshot --setactivationskip n --activate y --name v9-snap itest_lvm_a/v9',
        'lvextend --size 2147483648b itest_lvm_a/v9-snap',
        'lvcreate --snapshot --setactivationskip n --activate n --name v1-snap itest_lvm_a/v1',
    ]
    assert expected['volumes']['v1-snap'] == dict(size=100 * MiB, active=False, origin='v1')
    assert expected['volumes']['v9-snap'] == dict(size=2 << 30, active=True, origin='v9')


def test_snapshot_needs_an_origin_listed_first():
    late_origin = [dict(name='s9', snapshot_of='v9'), dict(name='v9', size='1G')]
    assert "volumes[0].snapshot_of='v9'" in refusal_of(volumes=late_origin)
    removed_origin = [dict(name='v1', state='absent'), dict(name='s9', snapshot_of='v1')]
    assert "volumes[1].snapshot_of='v1'" in refusal_of(volumes=removed_origin, force=True)


def test_new_volume_needs_a_size():
    assert 'volumes[0]: thin volume itest_lvm_a/v9 does not exist; give its size' in refusal_of(
        volumes=[dict(name='v9')])


def test_pool_settings():
    assert 'chunksize=128KiB but thin pool itest_lvm_a/pool has chunks of 64KiB' in refusal_of(chunksize='128K')
    actions, expected = thin_plan(zero=False, discards='ignore', metadata_size='8M')
    assert argvs(actions) == ['lvextend --poolmetadatasize 8388608b itest_lvm_a/pool',
                              'lvchange --zero n itest_lvm_a/pool',
                              'lvchange --discards ignore itest_lvm_a/pool']
    assert expected['pool'] == dict(size=2030043136, chunk_size=65536, metadata_size=8 * MiB, zero=False,
                                    discards='ignore')
    assert thin_plan(zero=True, discards='passdown', metadata_size='4M', chunksize='64K')[0] == []


def test_create_pool():
    assert 'give size' in refusal_of(lvs=[])
    actions, expected = thin_plan(lvs=[], size='95%VG', volumes=[dict(name='v1', size='1G')])
    assert argvs(actions) == [
        'lvcreate --type thin-pool --extents 95%VG --name pool itest_lvm_a',
        'lvcreate --type thin --virtualsize 1073741824b --thinpool pool --name v1 --activate y itest_lvm_a']
    assert expected['pool'] == {'size': '95%VG'}
    actions, _expected = thin_plan(lvs=[], size='1000M', chunksize='8M', metadata_size='5M', zero=False,
                                   discards='nopassdown')
    # rounded up to whole 4MiB extents and whole 8MiB chunks: 1000MiB -> 1000MiB, 5MiB -> 8MiB
    assert argvs(actions) == ['lvcreate --type thin-pool --size 1048576000b --chunksize 8388608b '
                              '--poolmetadatasize 8388608b --zero n --discards nopassdown --name pool itest_lvm_a']
    actions, _expected = thin_plan(lvs=[], size='1004M', chunksize='8M')
    assert '--size 1056964608b' in argvs(actions)[0]  # 1004MiB -> 1008MiB, a multiple of 8MiB


def test_recorded_lvm_errors_are_what_the_refusals_prevent():
    # What LVM itself says when asked to remove an open LV or reuse another VG's PV (exit 5):
    assert fixture('lvremove_open.rc').strip() == '5'
    assert 'in use' in fixture('lvremove_open.err')
    assert fixture('vgcreate_taken.rc').strip() == '5'
    assert "already in volume group 'itest_lvm_a'" in fixture('vgcreate_taken.err')


def test_two_hundred_volumes_unchanged_plan_nothing():
    # recorded after one lvm_thinvol task created many-000..many-199 (1GiB each, inactive) in a 90%VG pool
    [vg] = report('vgs_200_volumes.json', 'vg')
    lvs = report('lvs_200_volumes.json', 'lv')
    volumes = [dict(name='many-%03d' % i, size='1G', active=False) for i in range(200)]
    actions, expected = plan_thin(thin(vg='itest_lvm_thin', size='90%VG', volumes=volumes), vg, lvs)
    assert actions == []
    assert len(expected['volumes']) == 200
    volumes[7]['size'] = '2G'
    volumes[150]['active'] = True
    # 200GiB of thin volumes in a 1836MiB pool is 111.55x: growing one is past the default 20x
    actions, _expected = plan_thin(thin(vg='itest_lvm_thin', volumes=volumes, max_over_subscription_ratio=120.0),
                                   vg, lvs)
    assert argvs(actions) == ['lvextend --size 2147483648b itest_lvm_thin/many-007',
                              'lvchange --activate y --ignoreactivationskip itest_lvm_thin/many-150']


# --------------------------------------------------------------------------- over-subscription

def test_growing_an_over_subscribed_pool_is_refused_past_the_ratio():
    # The recorded 200-volume pool (1836MiB, 200GiB of volumes): before the option existed, growing
    # many-007 to 2GiB was planned; now it is refused at the default ratio, naming what to do.
    [vg] = report('vgs_200_volumes.json', 'vg')
    lvs = report('lvs_200_volumes.json', 'lv')
    volumes = [dict(name='many-%03d' % i, size='1G', active=False) for i in range(200)]
    volumes[7]['size'] = '2G'
    with pytest.raises(Refusal) as refusal:
        plan_thin(thin(vg='itest_lvm_thin', volumes=volumes), vg, lvs)
    assert str(refusal.value) == (
        'max_over_subscription_ratio=20.0: after this run thin pool itest_lvm_thin/pool (1836MiB) would hold '
        '201GiB of thin volumes, an over-subscription of 112.1x (the virtual sizes of its thin volumes over the '
        'pool size, as in Cinder); grow the pool (size), raise max_over_subscription_ratio, or set force=true')
    actions, _expected = plan_thin(thin(vg='itest_lvm_thin', volumes=volumes, force=True), vg, lvs)
    assert argvs(actions) == ['lvextend --size 2147483648b itest_lvm_thin/many-007']
    # what adds no virtual size is never refused there: shrinking, removing, activating
    volumes[7] = dict(name='many-007', state='absent')
    volumes[8]['active'] = True
    actions, _expected = plan_thin(thin(vg='itest_lvm_thin', volumes=volumes), vg, lvs)
    assert argvs(actions) == ['lvremove --force itest_lvm_thin/many-007',
                              'lvchange --activate y --ignoreactivationskip itest_lvm_thin/many-008']


def test_new_volume_past_the_ratio_is_refused_unless_force():
    # pool 1936MiB holding v1, s1 (100MiB each) and v2 (1GiB): 1224MiB
    actions, _expected = thin_plan(volumes=[dict(name='v9', size='36G')])  # 38088MiB: 19.67x
    assert argvs(actions) == [
        'lvcreate --type thin --virtualsize 38654705664b --thinpool pool --name v9 --activate y itest_lvm_a']
    message = refusal_of(volumes=[dict(name='v9', size='38G')])  # 40136MiB: 20.73x
    assert message.startswith('max_over_subscription_ratio=20.0: after this run thin pool itest_lvm_a/pool '
                              '(1936MiB) would hold 40136MiB of thin volumes, an over-subscription of 20.73x')
    assert 'grow the pool (size), raise max_over_subscription_ratio, or set force=true' in message
    assert thin_plan(volumes=[dict(name='v9', size='38G')], force=True)[0]
    assert thin_plan(volumes=[dict(name='v9', size='38G')], max_over_subscription_ratio=21.0)[0]
    assert 'over-subscription of 1.16x' in refusal_of(volumes=[dict(name='v9', size='1G')],
                                                      max_over_subscription_ratio=1.0)
    # a snapshot adds its origin's virtual size (Cinder counts snapshots too)
    assert 'over-subscription of 20.2x' in refusal_of(volumes=[dict(name='v9', size='36G'),
                                                               dict(name='v9-snap', snapshot_of='v2')])


def test_ratio_counts_the_pool_size_after_growth_in_the_same_plan():
    # 38GiB past 20x of today's 1936MiB, under it once the pool grows to 2GiB: 19.6x
    actions, _expected = thin_plan(size='2G', volumes=[dict(name='v9', size='38G')])
    assert argvs(actions)[0] == 'lvextend --size 2147483648b itest_lvm_a/pool'
    # a pool created at 95%VG gets 484 of the VG's 510 extents (1936MiB), as the recorded one did
    assert '(1936MiB) would hold 40GiB' in refusal_of(lvs=[], size='95%VG', volumes=[dict(name='v9', size='40G')])
    assert thin_plan(lvs=[], size='95%VG', volumes=[dict(name='v9', size='37G')])[0]
    assert '(1GiB) would hold 21GiB' in refusal_of(lvs=[], size='1G', volumes=[dict(name='v9', size='21G')])


@pytest.mark.parametrize('ratio', [0.5, 0, -1, float('nan'), float('inf'), True, 'x'])
def test_ratio_must_be_at_least_one(ratio):
    _spec, errors = thin_spec(thin_params(max_over_subscription_ratio=ratio))
    assert errors == ['max_over_subscription_ratio=%r is not a ratio of at least 1.0 (as Cinder requires); give the '
                      'most virtual size the pool may hold per byte of its own size, for example 20.0' % (ratio,)]


@pytest.mark.parametrize('percent', [0, 101, 50.5, True])
def test_usage_warning_threshold_is_a_percent(percent):
    _spec, errors = thin_spec(thin_params(usage_warning_threshold=percent))
    assert errors == ['usage_warning_threshold=%r is not a percent from 1 to 100; give the pool usage to warn at, '
                      'for example 80' % (percent,)]


def test_pool_facts_give_usage_and_over_subscription():
    pool = thin_facts('itest_lvm_a', LVS, 'pool')['pool']
    assert pool['provisioned_size'] == 1224 * MiB
    assert pool['over_subscription_ratio'] == 0.63  # 1224MiB / 1936MiB
    assert thin_warnings(pool, 80, 20.0) == []
    # recorded: data 0.00%, metadata 11.13%
    assert thin_warnings(pool, 11, 20.0) == [
        'thin pool itest_lvm_a/pool: metadata usage 11.13% is at or above 11% (usage_warning_threshold); when it '
        'reaches 100% every volume of the pool fails its writes: grow its metadata (metadata_size), or check that '
        'LVM autoextend (monitoring, free extents in the VG) works']
    many = thin_facts('itest_lvm_thin', report('lvs_200_volumes.json', 'lv'), 'pool')['pool']
    assert many['metadata_percent'] == 30.66 and many['over_subscription_ratio'] == 111.55
    assert thin_warnings(many, 80, 20.0) == [
        'thin pool itest_lvm_thin/pool holds 200GiB of thin volumes in 1836MiB, over-subscribed 111.55x, above '
        'max_over_subscription_ratio=20.0']
    assert thin_warnings(many, 80, 120.0) == []
    data_full = dict(pool, data_percent=80.0)
    assert 'data usage 80.00% is at or above 80%' in thin_warnings(data_full, 80, 20.0)[0]
