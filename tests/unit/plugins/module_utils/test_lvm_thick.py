"""lvm_thickvol's input rules and planner, fed with reports recorded in the lab VM (lvm2 2.03.16).

vgs_thick_mixed.json and lvs_thick_mixed.json were recorded with the commands read_vg and read_lvs run,
on VG itest_lvm_thick (one 1GiB spare disk, 4MiB extents, 166 of 255 free) holding: thick LVs
thick-a (100MiB, active), thick-off (64MiB, inactive) and thick-open (32MiB, held open by a process);
origin (16MiB) with its COW snapshot origin-cow (8MiB); thin pool `pool` (128MiB) with thin volume
thin-v (64MiB).
"""

from pathlib import Path

import pytest

from ansible_collections.openblock.storage.plugins.module_utils.lvm import (
    Refusal, _exported_only, name_holders, parse_report, plan_thick, thick_facts, thick_spec, thick_view)

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'lvm'
MiB = 1 << 20
VG = 'itest_lvm_thick'
DEV = '/dev/%s/' % VG


def recorded():
    [vg] = parse_report((FIXTURES / 'vgs_thick_mixed.json').read_text(), 'vg')
    lvs = parse_report((FIXTURES / 'lvs_thick_mixed.json').read_text(), 'lv')
    return vg, lvs


def spec(volumes, **params):
    params = dict(dict(vg=VG, volumes=volumes, clear='zero', clear_size=0, force=False), **params)
    result, errors = thick_spec(params)
    assert errors == []
    return result


def plan(volumes, **params):
    vg, lvs = recorded()
    actions, expected = plan_thick(spec(volumes, **params), vg, lvs)
    return [' '.join(a.argv) for a in actions], expected


def refusal(volumes, **params):
    vg, lvs = recorded()
    with pytest.raises(Refusal) as err:
        plan_thick(spec(volumes, **params), vg, lvs)
    return str(err.value)


def zero(name, count, seek=0):
    if seek:
        return ('dd if=/dev/zero of=%s%s bs=1M count=%d seek=%d iflag=count_bytes oflag=direct,seek_bytes conv=fsync '
                'status=none' % (DEV, name, count, seek))
    return 'dd if=/dev/zero of=%s%s bs=1M count=%d iflag=count_bytes oflag=direct conv=fsync status=none' % (DEV, name, count)


def test_facts_list_the_plain_lvs_only():
    vg, lvs = recorded()
    assert vg['vg_free'] == 166 * 4 * MiB and vg['lv_count'] == 7
    facts = thick_facts(VG, lvs)
    # origin (o), its COW snapshot (s), the thin pool (t) and the thin volume (V) are not this module's
    assert sorted(facts['volumes']) == ['thick-a', 'thick-off', 'thick-open']
    assert facts['volumes']['thick-a'] == dict(size=100 * MiB, path=DEV + 'thick-a', attr='-wi-a-----',
                                               active=True, open=False)
    assert facts['volumes']['thick-off']['active'] is False
    assert facts['volumes']['thick-open']['open'] is True
    assert thick_view(lvs) == dict(volumes={'thick-a': dict(size=100 * MiB, active=True),
                                            'thick-off': dict(size=64 * MiB, active=False),
                                            'thick-open': dict(size=32 * MiB, active=True)})


def test_recorded_state_is_a_no_op():
    # 99MiB rounds up to 25 extents = the recorded 100MiB; no size leaves a volume as it is
    actions, expected = plan([dict(name='thick-a', size='99M'), dict(name='thick-off'),
                              dict(name='thick-open', size='32M'), dict(name='gone', state='absent')])
    assert actions == []
    assert expected == thick_view(recorded()[1])


def test_create_rounds_up_to_extents_and_wipes_signatures():
    actions, expected = plan([dict(name='new', size='10M')])
    assert actions == ['lvcreate --yes --wipesignatures y --size 12582912b --name new ' + VG]
    assert expected['volumes']['new'] == dict(size=12 * MiB, active=True)


def test_grow():
    actions, expected = plan([dict(name='thick-a', size='200M')])
    assert actions == ['lvextend --size 209715200b %s/thick-a' % VG]
    assert expected['volumes']['thick-a']['size'] == 200 * MiB


def test_shrink_is_refused_without_force():
    message = refusal([dict(name='thick-a', size='40M')])
    assert "volumes[0].size=40MiB is smaller than %s/thick-a (100MiB)" % VG in message
    assert 'set force=true to shrink it' in message


def test_shrink_with_force_zeroes_the_cut_off_part_first():
    actions, expected = plan([dict(name='thick-a', size='40M')], force=True)
    assert actions == [zero('thick-a', 60 * MiB, seek=40 * MiB), 'lvreduce --force --size 41943040b %s/thick-a' % VG]
    assert expected['volumes']['thick-a']['size'] == 40 * MiB
    actions, _expected = plan([dict(name='thick-a', size='40M')], force=True, clear='none')
    assert actions == ['lvreduce --force --size 41943040b %s/thick-a' % VG]


def test_remove_zeroes_the_whole_volume_then_removes_it():
    actions, expected = plan([dict(name='thick-a', state='absent')])
    assert actions == [zero('thick-a', 100 * MiB), 'lvremove --force %s/thick-a' % VG]
    assert 'thick-a' not in expected['volumes']


def test_clear_size_bounds_the_zeroing_and_none_skips_it():
    actions, _expected = plan([dict(name='thick-a', state='absent')], clear_size=10)
    assert actions[0] == zero('thick-a', 10 * MiB)
    # larger than the volume: the whole volume, never past its end (dd would fail there)
    actions, _expected = plan([dict(name='thick-a', state='absent')], clear_size=4096)
    assert actions[0] == zero('thick-a', 100 * MiB)
    actions, _expected = plan([dict(name='thick-a', state='absent')], clear='none')
    assert actions == ['lvremove --force %s/thick-a' % VG]


def test_inactive_volume_is_activated_to_be_cleared_and_removals_share_one_lvremove():
    actions, _expected = plan([dict(name='thick-off', state='absent'), dict(name='thick-a', state='absent')])
    assert actions == ['lvchange --activate y %s/thick-off' % VG, zero('thick-off', 64 * MiB),
                       zero('thick-a', 100 * MiB), 'lvremove --force %s/thick-off %s/thick-a' % (VG, VG)]


# What devices.devices_usage gave in lab1 for a thick volume held by `sleep 4242 < /dev/itest_lvm_thick/vol-b`
# (tests/integration/test_lvm_thickvol.py, test_open_volume_refused_even_with_force).
HELD = ['/dev/dm-1 (itest_lvm_thick-vol--b) is open by sleep (pid 609)']


@pytest.mark.parametrize('force', [False, True])
def test_open_volume_is_refused_naming_its_holder_even_with_force(force):
    """With force the plan used to write zeros over all of thick-open and then run lvremove, which LVM
    refuses for an open LV (fixtures/lvm/lvremove_open.err): the data gone, the volume still there."""
    vg, lvs = recorded()
    asked = []
    name_holders(lvs, usage=lambda names: asked.extend(names) or dict((n, HELD) for n in names))
    assert asked == ['thick-open']  # only the open LV is looked at (its /dev/dm-N on a real host)
    with pytest.raises(Refusal) as err:
        plan_thick(spec([dict(name='thick-open', state='absent')], force=force), vg, lvs)
    assert str(err.value) == ('volumes[0]: %s/thick-open is open (%s); stop what holds it (unexport, unmount or stop '
                              'the process) and re-run; force does not remove an open volume' % (VG, HELD[0]))
    assert 'set force=true' not in str(err.value)


def test_only_a_volume_tgtd_alone_holds_counts_as_exported():
    """Check mode predicts the removal of such a volume as after the role's tgt_target drops its target."""
    vg, lvs = recorded()
    held = dict((lv['lv_name'], lv) for lv in name_holders(lvs, usage=lambda names: dict(
        (n, ['/dev/dm-1 (itest_lvm_thick-vol--b) is open by tgtd (pid 812)']) for n in names)))
    assert _exported_only(held['thick-open'])
    held['thick-open']['held_by'] = HELD + held['thick-open']['held_by']
    assert not _exported_only(held['thick-open'])
    held['thick-open']['held_by'] = []
    assert not _exported_only(held['thick-open'])


def test_open_volume_whose_holder_is_not_found_is_still_refused():
    vg, lvs = recorded()
    name_holders(lvs, usage=lambda names: dict((n, []) for n in names))
    with pytest.raises(Refusal) as err:
        plan_thick(spec([dict(name='thick-open', state='absent')], force=True), vg, lvs)
    assert 'is open (held by something this host does not show: no process, holder or mount)' in str(err.value)


@pytest.mark.parametrize('name, what', [
    ('thin-v', 'is a thin volume; thin volumes and pools belong to openblock.storage.lvm_thinvol'),
    ('pool', 'is a thin pool; thin volumes and pools belong to openblock.storage.lvm_thinvol'),
    ('origin', 'is the origin of snapshots; remove its snapshots first'),
    ('origin-cow', 'is a snapshot'),
])
@pytest.mark.parametrize('state', ['present', 'absent'])
def test_lvs_that_are_not_plain_are_refused_even_with_force(name, what, state):
    message = refusal([dict(name=name, size='1G', state=state)], force=True)
    assert message.startswith("volumes[0].name=%r: %s/%s %s" % (name, VG, name, what))
    assert message.endswith('not a plain thick volume; choose another name')


def test_refusals_are_all_reported_at_once():
    message = refusal([dict(name='thin-v', state='absent'), dict(name='thick-open', state='absent'),
                       dict(name='thick-a', size='4M'), dict(name='missing')])
    assert message.count('; ') >= 3
    assert 'volumes[3]: volume %s/missing does not exist; give its size to create it' % VG in message


def test_no_room_is_refused_before_any_change_and_removals_make_room():
    message = refusal([dict(name='big', size='1G')])
    assert message == ('volumes need 1GiB more than volume group %s has free (664MiB); give smaller sizes, remove '
                       'volumes, or add a device to the VG (openblock.storage.lvm_vg)' % VG)
    # 664MiB free + 100MiB freed by thick-a = 764MiB
    actions, _expected = plan([dict(name='thick-a', state='absent'), dict(name='big', size='764M')])
    assert actions[-1] == 'lvcreate --yes --wipesignatures y --size 801112064b --name big ' + VG
    assert 'more than volume group' in refusal([dict(name='thick-a', state='absent'), dict(name='big', size='765M')])


def test_bad_input_names_option_and_value():
    _spec, errors = thick_spec(dict(vg='bad vg', clear='zero', clear_size=-1, force=False, volumes=[
        dict(name='snapshot-1', size='1G'), dict(name='v1', size='10%VG'), dict(name='v2', size='0'),
        dict(name='v3', size='12Q'), dict(name='v3', size='1G'), dict(name='v_tmeta', size='1G')]))
    assert errors == [
        "vg='bad vg' is not a valid LVM name; use letters, digits and + _ . - (not starting with -)",
        'clear_size=-1 is not a number of MiB; give 0 (clear the whole volume) or the MiB to clear from its start, '
        'for example 100',
        "volumes[0].name='snapshot-1' starts with 'snapshot', which LVM reserves; choose another name",
        "volumes[1].size='10%VG': percent sizes do not apply to thick volumes in this module (a percentage of the "
        "VG moves as it fills); give bytes with a unit, for example 10G",
        "volumes[2].size='0' is zero; give the volume a size",
        "volumes[3].size='12Q' is not a size; write a number of bytes or a number with a unit B, K, M, G, T or P "
        "(powers of 1024), for example 10G or 512MiB",
        "volumes[4].name='v3' is listed twice; list each volume once",
        "volumes[5].name='v_tmeta' contains '_tmeta', which LVM reserves for hidden LVs; choose another name",
    ]
