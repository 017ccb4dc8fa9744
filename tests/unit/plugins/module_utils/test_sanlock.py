# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sanlock_vg readers and planner, fed with output recorded on lab VMs (lvm2 2.03.16, sanlock 3.8.5,
Debian 12): VG `shared` on one disk, host_id 1, lv1 active exclusive, lv2 shared, lv3 inactive."""

import contextlib
import json
import re
from pathlib import Path

import pytest

from ansible_collections.openblock.storage.plugins.module_utils import sanlock, sanlock_vg
from ansible_collections.openblock.storage.plugins.module_utils.lvm import Refusal
from ansible_collections.openblock.storage.plugins.module_utils.plan import Action

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'sanlock'
LV1 = 'dLMtU0-248H-PNPc-YD0J-59aQ-Lyen-RlNdBN'
LV2 = 'ub8NqU-CHmp-B75f-3ICt-fccZ-c55w-Q5PAVo'
LV3 = 'ketfVm-BNg5-d5yT-dn7e-pVrN-uo2e-cv2j9e'


def out(name):
    return (FIXTURES / (name + '.stdout')).read_text()


def rec(name):
    return (int((FIXTURES / (name + '.rc')).read_text()), out(name), (FIXTURES / (name + '.stderr')).read_text())


def state(status='sanlock_status_locks'):
    """VG row, LV rows and this host's lockspace as the module reads them."""
    st = sanlock.parse_sanlock_status(out(status))
    vg = sanlock.parse_vg(out('vgs_shared'))
    lvs = sanlock.parse_lvs(out('lvs_modes'), st['resources'].get('lvm_shared', {}))
    return vg, lvs, sanlock.lockspace_facts('shared', st, 1)


def spec(**kw):
    params = dict(name='shared', state='started', pvs=None, lvs=[], lock_start_timeout=300, force=False)
    params.update(kw)
    result, errors = sanlock.spec_of(params)
    assert errors == []
    return result


def argvs(actions):
    return [' '.join(a.argv) for a in actions]


# ---------------------------------------------------------------- readers

def test_lvmconfig_before_and_after_setup():
    assert sanlock.parse_lvmconfig(out('lvmconfig_unset')) == {'use_lvmlockd': 0, 'host_id': 0}
    assert sanlock.parse_lvmconfig(out('lvmconfig_set')) == {'use_lvmlockd': 1, 'host_id': 1}


def test_is_active_maps_lines_to_units_in_order():
    rc, text = rec('is_active_wdmd_down')[:2]
    assert rc == 0  # systemctl is-active exits 0 when any unit is active: read the lines, not the rc
    assert sanlock.parse_is_active(text) == {'wdmd': 'inactive', 'sanlock': 'active', 'lvmlockd': 'active'}
    assert set(sanlock.parse_is_active(out('is_active_all')).values()) == {'active'}
    assert sanlock.parse_is_active('active\n') == {'wdmd': 'active', 'sanlock': 'unknown', 'lvmlockd': 'unknown'}


def test_sanlock_status_without_lockspace():
    assert sanlock.parse_sanlock_status(out('sanlock_status_empty')) == {'lockspaces': {}, 'resources': {}, 'daemon': {}}
    facts = sanlock.lockspace_facts('shared', sanlock.parse_sanlock_status(out('sanlock_status_empty')), 1)
    assert facts == {'name': 'lvm_shared', 'joined': False, 'joining': False, 'host_id': 1, 'locks': 0, 'lease': None}


def test_sanlock_status_joined_after_vgcreate():
    status = sanlock.parse_sanlock_status(out('sanlock_status_joined'))
    assert status['lockspaces'] == {'lvm_shared': {'host_id': 1, 'path': '/dev/mapper/shared-lvmlock',
                                                   'adding': False, 'removing': False, 'detail': {}}}
    assert sanlock.lockspace_facts('shared', status, 1)['joined'] is True
    assert sanlock.lockspace_facts('other', status, 1)['joined'] is False


def test_sanlock_status_while_lock_start_waits():
    facts = sanlock.lockspace_facts('shared', sanlock.parse_sanlock_status(out('sanlock_status_adding')), 1)
    assert facts['joined'] is False and facts['joining'] is True


def test_lease_modes_exclusive_shared_and_orphaned():
    leases = sanlock.parse_sanlock_status(out('sanlock_status_locks'))['resources']['lvm_shared']
    assert leases == {LV1: {'mode': 'ex', 'orphan': False}, LV2: {'mode': 'sh', 'orphan': False}}
    orphans = sanlock.parse_sanlock_status(out('sanlock_status_orphan'))['resources']['lvm_shared']
    assert orphans == {LV3: {'mode': 'ex', 'orphan': True}, LV2: {'mode': 'sh', 'orphan': True}}


def test_host_status():
    assert sanlock.parse_host_status(out('host_status')) == {1: 137}


def test_vgs_report_of_a_shared_vg_and_of_none():
    vg = sanlock.parse_vg(out('vgs_shared'))
    assert vg['vg_lock_type'] == 'sanlock' and vg['vg_attr'][5] == 's'
    assert vg['vg_extent_size'] == 4194304 and vg['lv_count'] == 0
    rc, text, err = rec('vgs_missing')
    assert rc == 0 and sanlock.parse_vg(text) is None
    assert 'Skipping global lock' in err  # lvmlockd warns before any lockspace exists; not an error


def test_lv_modes_come_from_the_leases_not_from_lvs():
    # lvs says lv_active_exclusively=1 for the shared lv2 as well: only the lease tells.
    lvs = state()[1]
    assert [(lv['lv_name'], lv['mode']) for lv in lvs] == [('lv1', 'exclusive'), ('lv2', 'shared'),
                                                           ('lv3', 'inactive')]
    assert lvs[0]['lv_size'] == 67108864


def test_active_lv_without_a_lease_reads_unlocked():
    lvs = sanlock.parse_lvs(out('lvs_modes'), {})
    assert [lv['mode'] for lv in lvs] == ['unlocked', 'unlocked', 'inactive']


# ---------------------------------------------------------------- preconditions and input

def test_setup_errors_name_what_to_fix():
    errors = sanlock.setup_errors(sanlock.parse_lvmconfig(out('lvmconfig_unset')),
                                  sanlock.parse_is_active(out('is_active_wdmd_down')))
    assert len(errors) == 3
    assert 'use_lvmlockd = 1' in errors[0]
    assert 'host_id is not set' in errors[1] and 'lvmlocal.conf' in errors[1]
    assert 'wdmd not running' in errors[2] and 'softdog' in errors[2]
    assert sanlock.setup_errors(sanlock.parse_lvmconfig(out('lvmconfig_set')),
                                sanlock.parse_is_active(out('is_active_all'))) == []


def test_killed_lvmlockd_points_to_the_recovery_playbook_not_to_a_watchdog():
    """Recorded after `pkill -9 lvmlockd` with lv1 active exclusively: wdmd (and its watchdog) and
    sanlock still run, so the advice is the recovery playbook, not loading a watchdog."""
    services = sanlock.parse_is_active(out('is_active_lvmlockd_killed'))
    assert services == {'wdmd': 'active', 'sanlock': 'active', 'lvmlockd': 'failed'}
    [error] = sanlock.setup_errors(sanlock.parse_lvmconfig(out('lvmconfig_set')), services)
    assert error.startswith('lvmlockd not running (lvmlockd: failed); ')
    assert 'playbooks/recover_shared_lvm.yml' in error
    assert 'watchdog' not in error and 'softdog' not in error
    # a host whose wdmd is down still gets the watchdog advice, and no playbook
    [error] = sanlock.setup_errors(sanlock.parse_lvmconfig(out('lvmconfig_set')),
                                   sanlock.parse_is_active(out('is_active_wdmd_down')))
    assert 'softdog' in error and 'recover_shared_lvm' not in error


@pytest.mark.parametrize('host_id, ok', [(0, False), (1, True), (2000, True), (2001, False)])
def test_host_id_range(host_id, ok):
    errors = sanlock.setup_errors({'use_lvmlockd': 1, 'host_id': host_id},
                                  dict((u, 'active') for u in sanlock.SERVICES))
    assert (errors == []) is ok


def test_every_input_error_at_once():
    errors = sanlock.spec_of(dict(name='bad name', state='stopped', pvs=['sdb', '/dev/x', '/dev/x'],
                                  lock_start_timeout=0, force=False,
                                  lvs=[{'name': 'lvmlock', 'size': '1G'}, {'name': 'a', 'size': '10%VG'},
                                       {'name': 'a', 'size': '0'}, {'name': 'snapshot1', 'size': 'x'}]))[1]
    text = '\n'.join(errors)
    for needle in ("name='bad name'", "pvs[0]='sdb'", 'names a device twice', 'lock_start_timeout=0',
                   'lock LV', "lvs[1].size='10%VG'", "lvs[2].name='a' is listed twice", 'is zero',
                   "'snapshot'", 'lvs is only used with state=present, started or recovered'):
        assert needle in text, needle


# ---------------------------------------------------------------- planner

def test_create_on_the_first_host():
    actions, expected = sanlock.plan(spec(state='present', pvs=['/dev/mapper/shared-lun'],
                                          lvs=[{'name': 'img', 'size': '1G', 'activation': 'shared'}]),
                                     None, [], {'joined': False})
    assert argvs(actions) == [
        'vgcreate --shared --lock-type sanlock shared /dev/mapper/shared-lun',
        'lvcreate --yes --size 1073741824b --name img --activate ey shared',
        'lvchange --activate n shared/img',
        'lvchange --activate sy shared/img']
    assert expected == {'exists': True, 'lock_type': 'sanlock', 'lock_started': True,
                        'lvs': {'img': {'size': 1073741824, 'activation': 'shared'}}}


def test_vgcreate_joins_the_lockspace_so_it_is_bounded_like_a_lock_start():
    # the lab once needed over 120 s (the default bound) for vgcreate --shared under load
    for timeout, bound in ((None, sanlock.LOCK_START_TIMEOUT + 30), (600, 630)):
        actions = sanlock.plan(spec(state='present', pvs=['/dev/mapper/shared-lun'], lock_start_timeout=timeout),
                               None, [], {'joined': False})[0]
        assert actions[0].argv[0] == 'vgcreate' and actions[0].timeout == bound


def test_started_refuses_a_missing_vg_and_present_wants_pvs():
    with pytest.raises(Refusal, match='run_once'):
        sanlock.plan(spec(), None, [], {'joined': False})
    with pytest.raises(Refusal, match='give pvs'):
        sanlock.plan(spec(state='present'), None, [], {'joined': False})


def test_converged_state_plans_nothing():
    vg, lvs, lockspace = state()
    wanted = [{'name': 'lv1', 'size': '64M', 'activation': 'exclusive'},
              {'name': 'lv2', 'activation': 'shared'}, {'name': 'lv3', 'activation': 'inactive'}]
    for st in ('present', 'started'):
        actions, expected = sanlock.plan(spec(state=st, lvs=wanted), vg, lvs, lockspace)
        assert actions == []
        assert expected == sanlock.view(vg, lvs, lockspace)


def test_lock_start_when_not_joined_is_bounded():
    vg, lvs = state('sanlock_status_empty')[:2]
    actions, expected = sanlock.plan(spec(lock_start_timeout=90), vg, lvs, {'joined': False})
    assert argvs(actions) == ['udevadm settle --timeout=30', 'timeout 90 vgchange --lock-start shared'] * 2
    assert expected['lock_started'] is True


def test_mode_changes_go_through_inactive():
    vg, lvs, lockspace = state()
    actions, expected = sanlock.plan(spec(lvs=[{'name': 'lv1', 'activation': 'shared'},
                                               {'name': 'lv2', 'activation': 'inactive'},
                                               {'name': 'lv3', 'activation': 'exclusive'}]), vg, lvs, lockspace)
    assert argvs(actions) == ['lvchange --activate n shared/lv1', 'lvchange --activate sy shared/lv1',
                              'lvchange --activate n shared/lv2', 'lvchange --activate ey shared/lv3']
    assert dict((n, v['activation']) for n, v in expected['lvs'].items()) == {
        'lv1': 'shared', 'lv2': 'inactive', 'lv3': 'exclusive'}


def test_unlocked_lv_is_reactivated_in_its_mode():
    vg = sanlock.parse_vg(out('vgs_shared'))
    lvs = sanlock.parse_lvs(out('lvs_modes'), {})
    actions = sanlock.plan(spec(lvs=[{'name': 'lv2', 'activation': 'shared'}]), vg, lvs, {'joined': True})[0]
    assert argvs(actions) == ['lvchange --activate n shared/lv2', 'lvchange --activate sy shared/lv2']


def test_grow_remove_and_refusals():
    vg, lvs, lockspace = state()
    actions, expected = sanlock.plan(spec(lvs=[{'name': 'lv1', 'size': '100M'}, {'name': 'lv3', 'state': 'absent'}]),
                                     vg, lvs, lockspace)
    assert argvs(actions) == ['lvremove --yes shared/lv3', 'lvextend --size 104857600b shared/lv1']
    assert 'lv3' not in expected['lvs'] and expected['lvs']['lv1']['size'] == 104857600
    with pytest.raises(Refusal) as err:
        sanlock.plan(spec(lvs=[{'name': 'lv1', 'size': '32M'}, {'name': 'lv2', 'size': '1G'},
                               {'name': 'new'}]), vg, lvs, lockspace)
    reasons = '\n'.join(err.value.reasons)
    assert 'does not shrink' in reasons and 'active shared' in reasons and 'give its size' in reasons


def test_stopped_refuses_active_lvs_then_lock_stops():
    vg, lvs, lockspace = state()
    with pytest.raises(Refusal, match='lv1, lv2 of shared are active'):
        sanlock.plan(spec(state='stopped'), vg, lvs, lockspace)
    idle = [dict(lv, mode='inactive') for lv in lvs]
    actions, expected = sanlock.plan(spec(state='stopped'), vg, idle, lockspace)
    assert argvs(actions) == ['vgchange --lock-stop shared'] and expected['lock_started'] is False
    assert sanlock.plan(spec(state='stopped'), vg, idle, {'joined': False})[0] == []


def test_absent_refuses_active_lvs_other_hosts_and_lvs_without_force():
    vg, lvs, lockspace = state()
    with pytest.raises(Refusal) as err:
        sanlock.plan(spec(state='absent'), vg, lvs, lockspace, other_hosts=[2])
    reasons = err.value.reasons
    assert len(reasons) == 3
    assert 'lv1, lv2' in reasons[0] and 'host_id(s) 2' in reasons[1] and 'force=true' in reasons[2]
    idle = [dict(lv, mode='inactive') for lv in lvs]
    actions, expected = sanlock.plan(spec(state='absent', force=True), vg, idle, lockspace)
    # the lockspace is left before the lock type is dropped: either, done while it runs, can hang (lvm2 2.03.31)
    assert argvs(actions) == ['vgchange --lock-stop shared',
                              'vgchange --yes --lock-type none --lockopt force shared',
                              'vgremove --config global/use_lvmlockd=0 --force shared'] and expected == {'exists': False}
    actions = sanlock.plan(spec(state='absent'), vg, [], lockspace)[0]
    assert argvs(actions)[-1] == 'vgremove --config global/use_lvmlockd=0 shared'
    assert 'finish by hand with: vgremove --config global/use_lvmlockd=0 --force shared' in sanlock.explain_failure(
        actions[-1], 5, '')
    assert sanlock.plan(spec(state='absent'), None, [], {'joined': False})[0] == []


def test_absent_is_refused_where_the_vg_is_not_lock_started():
    # only a member of the lockspace can read which other hosts still use the VG: fail closed
    vg, lvs, lockspace = state()
    for unjoined in ({'joined': False}, {'joined': False, 'joining': True}):
        with pytest.raises(Refusal, match='shared is not lock-started on this host.*run state=started here first'):
            sanlock.plan(spec(state='absent', force=True), vg, [dict(lv, mode='inactive') for lv in lvs], unjoined)


def test_a_vg_of_another_lock_type_is_refused():
    vg = dict(sanlock.parse_vg(out('vgs_shared')), vg_lock_type=None)
    with pytest.raises(Refusal, match='not sanlock'):
        sanlock.plan(spec(), vg, [], {'joined': False})


def test_explain_names_the_lv_locked_elsewhere_and_the_timeout():
    act = Action(['lvchange', '--activate', 'ey', 'shared/lv1'], 'activate')
    advice = sanlock.explain_failure(act, 5, 'LV locked by other host: shared/lv1')
    assert 'shared/lv1 is locked by another host' in advice
    assert sanlock.explain_failure(act, 5, 'Volume group "x" not found') is None
    start = sanlock.lock_start_actions('shared', 30)[-1]
    assert 'lock_start_timeout' in sanlock.explain_failure(start, 124, '')
    assert sanlock.explain_failure(start, 5, 'boom') is None


def test_lock_start_is_bounded_by_its_own_timeout_first():
    """The Runner's bound of a lock-start outlasts the lock_start_timeout it runs under, so the
    inner timeout's own exit (124, explained by explain_failure) is what the user sees."""
    settle, first, again_settle, action = sanlock.lock_start_actions('shared', 300)
    assert first.argv == action.argv and first.changed_by(0) and not first.changed_by(5) and 5 not in action.ok_rcs
    assert action.argv[:2] == ['timeout', '300'] and action.timeout > 300
    assert settle.argv[:2] == ['udevadm', 'settle'] and not settle.changed_by(1)


def test_check_mode_on_a_host_not_ready_predicts_a_change_for_present_and_started_only():
    """A new host in check mode: lvm.conf not set yet and wdmd down (recorded), the LUN not logged in."""
    problems = sanlock.setup_errors(sanlock.parse_lvmconfig(out('lvmconfig_unset')),
                                    sanlock.parse_is_active(out('is_active_wdmd_down')))
    problems.append("pvs[0]='/dev/mapper/shared-lun' does not exist on this host")
    message = sanlock.check_mode_prediction(spec(state='present', pvs=['/dev/mapper/shared-lun']), problems)
    assert message.startswith('check mode: this host is not ready for volume group shared yet (use_lvmlockd')
    assert 'create or lock-start it' in message and '/dev/mapper/shared-lun' in message
    assert 'will lock-start it' in sanlock.check_mode_prediction(spec(state='started'), problems)
    # a ready host is read and planned as always; stopped, absent and query never predict blind
    assert sanlock.check_mode_prediction(spec(state='present', pvs=['/dev/mapper/shared-lun']), []) is None
    for other in ('stopped', 'absent', 'query'):
        assert sanlock.check_mode_prediction(spec(state=other), problems) is None


# ---------------------------------------------------------------- a lockspace whose lease is lost
# sanlock_status_D_joined / _lease_lost: `sanlock client status -D` on compute1 of the cinder lab (VG
# shared on the multipath LUN of storage1, disk-compute1 exclusive, images shared), before storage1's
# power was cut and 100 s after (storage1 off 150 s): the plain listing is the same in both.

def test_the_detail_of_sanlock_status_tells_a_held_lease_from_a_lost_one():
    held = sanlock.parse_sanlock_status(out('sanlock_status_D_joined'))
    lost = sanlock.parse_sanlock_status(out('sanlock_status_D_lease_lost'))
    assert held['resources'] == lost['resources'] and len(lost['resources']['lvm_shared']) == 2
    assert sorted(r['mode'] for r in lost['resources']['lvm_shared'].values()) == ['ex', 'sh']
    facts = sanlock.lockspace_facts('shared', held, 1)
    assert (facts['joined'], facts['lease'], facts['renewal_last_result']) == (True, 'held', '1')
    facts = sanlock.lockspace_facts('shared', lost, 1)
    assert (facts['joined'], facts['lease'], facts['renewal_last_result']) == (True, 'lost', '-202')
    # the daemon's and clients' own detail lines are not a lockspace's
    assert set(lost['lockspaces']) == {'lvm_shared'}
    assert lost['lockspaces']['lvm_shared']['detail']['space_dead'] == '1'


def test_a_listing_without_detail_reads_as_held_and_a_failing_renewal_as_failing():
    assert state()[2]['lease'] == 'held'
    assert sanlock.lease_state({'renew_fail': '1', 'space_dead': '0'}) == 'failing'
    assert sanlock.lockspace_facts('other', sanlock.parse_sanlock_status(out('sanlock_status_D_joined')), 1)[
        'lease'] is None


def test_a_lost_lease_is_a_problem_that_names_the_active_lvs_and_the_recovery():
    lvs = sanlock.parse_lvs(out('lvs_modes'), {})
    lost = sanlock.lockspace_facts('shared', sanlock.parse_sanlock_status(out('sanlock_status_D_lease_lost')), 1)
    problem = sanlock.lease_problem(lost, lvs)
    active = sorted(lv['lv_name'] for lv in lvs if lv['mode'] != 'inactive')
    assert active and problem == (
        'the lease of lockspace lvm_shared is lost (sanlock cannot renew it on its storage, renewal_last_result=-202): '
        'the locks of this host protect nothing while %s stay active here; stop what uses the VG, then run '
        'playbooks/recover_shared_lvm.yml once its storage is back' % ', '.join(active))
    held = sanlock.lockspace_facts('shared', sanlock.parse_sanlock_status(out('sanlock_status_D_joined')), 1)
    assert sanlock.lease_problem(held, lvs) is None


def test_every_planned_state_is_refused_while_the_lease_is_lost():
    lvs = sanlock.parse_lvs(out('lvs_modes'), {})
    lost = sanlock.lockspace_facts('shared', sanlock.parse_sanlock_status(out('sanlock_status_D_lease_lost')), 1)
    vg = sanlock.parse_vg(out('vgs_shared'))
    for wanted in ('present', 'started', 'stopped', 'absent'):
        with pytest.raises(Refusal, match=r'^refused, nothing was changed: the lease of lockspace lvm_shared is lost'):
            sanlock.plan(spec(state=wanted), vg, lvs, lost)


# ---------------------------------------------------------------- state=recovered

def recovery_inputs(status='sanlock_status_orphan', services='is_active_lvmlockd_killed'):
    """lvs_modes with the leases a killed lvmlockd left (ORPHAN: lv2 shared, lv3 exclusive), so lv1 is
    active without a lease; lvmlockd failed while wdmd and sanlock run."""
    st = sanlock.parse_sanlock_status(out(status))
    lvs = sanlock.parse_lvs(out('lvs_modes'), st['resources'].get('lvm_shared', {}))
    return (sanlock.parse_vg(out('vgs_shared')), lvs, sanlock.lockspace_facts('shared', st, 1),
            sanlock.parse_is_active(out(services)))


DEFAULTS = (FIXTURES / 'default_sanlock.bookworm').read_text()  # Debian 12's /etc/default/sanlock: sanlock_opts="-w 0"
RECORD = '/var/lib/openblock-storage/sanlock_vg-shared.recovery.json'


def test_a_sound_host_is_left_alone():
    vg, lvs, lockspace = state()
    services = sanlock.parse_is_active(out('is_active_all'))
    actions, expected, reasons = sanlock.plan_recovery(spec(state='recovered'), vg, lvs, lockspace, services,
                                                       None, DEFAULTS, {})
    assert (actions, reasons) == ([], [])
    assert expected == sanlock.view(vg, lvs, lockspace)


def test_recovery_after_lvmlockd_was_killed_restores_every_mode_in_order():
    vg, lvs, lockspace, services = recovery_inputs()
    wanted = spec(state='recovered', consumers=['nova-compute', 'cinder-volume.service'],
                  lvs=[{'name': 'lv1', 'size': '64M', 'activation': 'shared'}])
    actions, expected, reasons = sanlock.plan_recovery(
        wanted, vg, lvs, lockspace, services, None, DEFAULTS,
        {'nova-compute.service': 'active', 'cinder-volume.service': 'inactive'})
    assert reasons == ['lvmlockd not running', 'ORPHAN lease(s) of a dead lvmlockd on lv2, lv3',
                       'lv1 active without a lease']
    assert argvs(actions) == [
        'write ' + RECORD,
        'systemctl stop nova-compute.service',
        'lvchange --activate n shared/lv1 shared/lv2',
        'systemctl stop lvmlockd.service',
        'systemctl kill --signal=SIGKILL sanlock.service',
        'systemctl restart wdmd.service', 'systemctl restart sanlock.service', 'systemctl restart lvmlockd.service',
        'udevadm settle --timeout=30',
        'timeout 300 vgchange --lock-start shared',
        'udevadm settle --timeout=30',
        'timeout 300 vgchange --lock-start shared',
        'lvchange --activate sy shared/lv1',  # no lease: the activation the input gives it
        'lvchange --activate sy shared/lv2',  # its orphaned lease was shared
        'systemctl start nova-compute.service',
        'remove ' + RECORD]
    record = json.loads(actions[0].text)
    assert record == {'lvs': {'lv1': 'shared', 'lv2': 'shared'}, 'consumers': ['nova-compute.service']}
    assert actions[0].mode == 0o600 and actions[-1].text is None
    assert expected['lock_started'] and {n: lv['activation'] for n, lv in expected['lvs'].items()} == {
        'lv1': 'shared', 'lv2': 'shared', 'lv3': 'inactive'}


def test_an_unfinished_run_is_finished_from_its_record():
    """The first run failed after deactivating: the LVs read inactive now, the record keeps their modes."""
    vg, lvs, lockspace, services = recovery_inputs()
    for lv in lvs:
        lv.update(mode='inactive', orphan=False)
    record = sanlock.parse_recovery_record('{"lvs": {"lv1": "exclusive", "lv2": "shared"}, "consumers": '
                                           '["nova-compute.service"]}', RECORD)
    actions, _expected, reasons = sanlock.plan_recovery(spec(state='recovered'), vg, lvs, lockspace, services,
                                                        record, DEFAULTS, {})
    assert reasons[0] == 'an earlier recovery did not finish'
    assert argvs(actions)[:2] == ['systemctl stop nova-compute.service', 'lvchange --activate n shared/lv1 shared/lv2']
    assert 'lvchange --activate ey shared/lv1' in argvs(actions) and argvs(actions)[-1] == 'remove ' + RECORD


def test_a_sanlock_that_drives_the_watchdog_is_never_killed():
    vg, lvs, lockspace, services = recovery_inputs()
    # Debian 13's sanlock 3.9.5 ships sanlock_opts="": its sanlock drives the watchdog by default
    trixie = (FIXTURES / 'default_sanlock.trixie').read_text()
    for defaults in (None, trixie, DEFAULTS.replace('-w 0', '-w 1'), DEFAULTS.replace('sanlock_opts=', '#sanlock_opts=')):
        with pytest.raises(Refusal, match='drives the watchdog.*reboot the host instead'):
            sanlock.plan_recovery(spec(state='recovered'), vg, lvs, lockspace, services, None, defaults, {})
    assert not sanlock.defaults_watchdog('sanlock_opts="-U sanlock -w 0"\n')
    assert sanlock.defaults_watchdog('sanlock_opts="-w 01"\n')


def test_a_sanlock_still_running_with_the_watchdog_is_never_killed():
    """/etc/default/sanlock says -w 0 (written while sanlock held a lockspace), but the daemon that runs
    was started with the watchdog: its -D status says so, and that wins."""
    vg, lvs, lockspace, services = recovery_inputs()
    daemon = sanlock.parse_sanlock_status(out('sanlock_status_D_trixie_no_lockspace'))['daemon']
    with pytest.raises(Refusal, match='runs with the watchdog.*use_watchdog=1.*reboot the host instead'):
        sanlock.plan_recovery(spec(state='recovered'), vg, lvs, lockspace, services, None, DEFAULTS, {}, daemon=daemon)
    # Debian 12's sanlock, started with -w 0
    daemon = sanlock.parse_sanlock_status(out('sanlock_status_D_joined'))['daemon']
    actions = sanlock.plan_recovery(spec(state='recovered'), vg, lvs, lockspace, services, None, DEFAULTS, {},
                                    daemon=daemon)[0]
    assert 'systemctl kill --signal=SIGKILL sanlock.service' in argvs(actions)


TRIXIE_DEFAULTS = (FIXTURES / 'default_sanlock.trixie').read_text()  # Debian 13: sanlock_opts="" (the watchdog)


def test_the_daemon_settings_of_sanlock_status_D():
    """Recorded on a Debian 13 compute (sanlock 3.9.5, package defaults, no lockspace yet) and on a Debian 12 one."""
    trixie = sanlock.parse_sanlock_status(out('sanlock_status_D_trixie_no_lockspace'))
    assert trixie['lockspaces'] == {} and trixie['daemon']['use_watchdog'] == '1'
    assert trixie['daemon']['version_str'] == '3.9.5' and trixie['daemon']['watchdog_fire_timeout'] == '60'
    bookworm = sanlock.parse_sanlock_status(out('sanlock_status_D_joined'))
    assert bookworm['daemon']['use_watchdog'] == '0' and list(bookworm['lockspaces']) == ['lvm_shared']
    # the detail of the daemon does not leak into the lockspace's, nor the other way round
    assert 'use_watchdog' not in bookworm['lockspaces']['lvm_shared']['detail']
    assert 'renewal_last_result' not in bookworm['daemon']


def test_sanlock_opts_as_the_package_defaults_of_each_release_give_them():
    assert not sanlock.defaults_watchdog(DEFAULTS) and sanlock.defaults_watchdog(TRIXIE_DEFAULTS)
    assert sanlock.defaults_watchdog(None) and sanlock.defaults_watchdog('')  # sanlock's own default: -w 1
    # Debian 12 already says -w 0: left as it is; asked for the watchdog, only the -w goes
    assert sanlock.sanlock_defaults_with(DEFAULTS, False) == DEFAULTS
    assert sanlock.sanlock_defaults_with(DEFAULTS, True) == DEFAULTS.replace('sanlock_opts="-w 0"', 'sanlock_opts=""')
    # Debian 13: the one line changes, its comment stays
    assert sanlock.sanlock_defaults_with(TRIXIE_DEFAULTS, False) == TRIXIE_DEFAULTS.replace(
        'sanlock_opts=""', 'sanlock_opts="-w 0"')
    assert sanlock.sanlock_defaults_with(TRIXIE_DEFAULTS, True) == TRIXIE_DEFAULTS
    # other options are kept, every form of -w is replaced, the last assignment is the one that counts
    assert sanlock.sanlock_defaults_with('sanlock_opts="-U sanlock -w1 -g x"\n', False) == \
        'sanlock_opts="-U sanlock -g x -w 0"\n'
    assert sanlock.sanlock_defaults_with("sanlock_opts='-w 1'\n", False) == 'sanlock_opts="-w 0"\n'
    assert sanlock.defaults_watchdog('sanlock_opts="-w 0"\nsanlock_opts=""\n')
    assert sanlock.sanlock_defaults_with('sanlock_opts="-w 0"\nsanlock_opts=""\n', False) == \
        'sanlock_opts="-w 0"\nsanlock_opts="-w 0"\n'
    # no file, or no sanlock_opts in it: the line is added
    assert sanlock.sanlock_defaults_with(None, False) == 'sanlock_opts="-w 0"\n'
    assert sanlock.sanlock_defaults_with('enabled=1', False) == 'enabled=1\nsanlock_opts="-w 0"\n'
    assert not sanlock.defaults_watchdog(sanlock.sanlock_defaults_with(TRIXIE_DEFAULTS, False))


def test_the_watchdog_setting_restarts_only_a_sanlock_without_lockspace():
    fresh = sanlock.parse_sanlock_status(out('sanlock_status_D_trixie_no_lockspace'))
    # a new Debian 13 host: the file and the daemon change, before any lock-start
    actions, warning = sanlock.watchdog_plan(False, TRIXIE_DEFAULTS, fresh)
    assert argvs(actions) == ['write /etc/default/sanlock', 'systemctl restart sanlock.service'] and warning is None
    assert actions[0].text == TRIXIE_DEFAULTS.replace('sanlock_opts=""', 'sanlock_opts="-w 0"')
    # the file was written by an earlier run, the daemon still runs with the watchdog
    assert argvs(sanlock.watchdog_plan(False, actions[0].text, fresh)[0]) == ['systemctl restart sanlock.service']
    # a Debian 12 host converged (-w 0 in the file and in the daemon, lockspace joined): nothing to do
    joined = sanlock.parse_sanlock_status(out('sanlock_status_D_joined'))
    assert sanlock.watchdog_plan(False, DEFAULTS, joined) == ([], None)
    # unset: the file and the daemon are left alone
    assert sanlock.watchdog_plan(None, TRIXIE_DEFAULTS, fresh) == ([], None)
    # a Debian 13 host converged before this setting: the daemon holds a lockspace with the watchdog on,
    # so only the file changes and the warning says when it applies
    joined_watchdog = dict(joined, daemon=fresh['daemon'])
    actions, warning = sanlock.watchdog_plan(False, TRIXIE_DEFAULTS, joined_watchdog)
    assert argvs(actions) == ['write /etc/default/sanlock']
    assert 'holds lockspace(s) lvm_shared, so it is not restarted' in warning and 'next boot' in warning
    # the watchdog asked for on Debian 12, where the lockspace is joined: the file only, with the warning
    actions, warning = sanlock.watchdog_plan(True, DEFAULTS, joined)
    assert argvs(actions) == ['write /etc/default/sanlock'] and 'runs without the watchdog' in warning
    # a sanlock that does not report use_watchdog restarts when the file changes
    bare = dict(lockspaces={}, resources={}, daemon={})
    assert argvs(sanlock.watchdog_plan(False, TRIXIE_DEFAULTS, bare)[0]) == [
        'write /etc/default/sanlock', 'systemctl restart sanlock.service']
    assert sanlock.watchdog_plan(False, DEFAULTS, bare) == ([], None)


def test_watchdog_is_an_option_of_present_and_started_only():
    assert spec(watchdog=False)['watchdog'] is False and spec()['watchdog'] is None
    params = dict(name='shared', state='query', pvs=None, lvs=[], lock_start_timeout=300, force=False, watchdog=True)
    assert sanlock.spec_of(params)[1] == ['watchdog is only used with state=present or started; with state=query drop it']


def test_recovery_refuses_a_missing_vg_and_a_record_it_did_not_write():
    _vg, lvs, lockspace, services = recovery_inputs()
    with pytest.raises(Refusal, match='volume group shared does not exist'):
        sanlock.plan_recovery(spec(state='recovered'), None, lvs, lockspace, services, None, DEFAULTS, {})
    for text in ('not json', '{"lvs": {"lv1": "sideways"}, "consumers": []}', '[]'):
        with pytest.raises(Refusal, match='is not one this module wrote'):
            sanlock.parse_recovery_record(text, RECORD)
    assert sanlock.parse_recovery_record(None, RECORD) is None


def test_consumers_are_unit_names_and_only_for_recovered():
    params = dict(name='shared', state='recovered', pvs=None, lvs=[], lock_start_timeout=300, force=False,
                  consumers=['nova-compute', '--now', 'a b'])
    result, errors = sanlock.spec_of(params)
    assert result['consumers'] == ['nova-compute.service']
    assert errors == ["consumers[1]='--now' is not a systemd unit name; give one like nova-compute.service",
                      "consumers[2]='a b' is not a systemd unit name; give one like nova-compute.service"]
    errors = sanlock.spec_of(dict(params, state='started', consumers=['nova-compute']))[1]
    assert errors == ['consumers is only used with state=recovered; with state=started drop it']


class Failed(Exception):
    pass


class NoLvmHost(object):
    """A module on a host without lvm2: no lvmconfig, and no command may run."""
    check_mode = False
    _diff = False

    def __init__(self, **params):
        self.params = dict(name='shared', state='present', pvs=None, lvs=[], lock_start_timeout=300, force=False,
                           consumers=[])
        self.params.update(params)

    def get_bin_path(self, name):
        return None

    def run_command(self, *args, **kwargs):
        raise AssertionError('no command may run: %r' % (args,))

    def fail_json(self, **result):
        raise Failed(result)


@pytest.mark.parametrize('state', ['present', 'recovered'])
def test_a_host_without_lvm2_is_refused_with_what_to_install(monkeypatch, state):
    # outside check mode every state fails on the missing tools before anything runs
    monkeypatch.setattr(sanlock_vg, 'host_lock', lambda module: contextlib.nullcontext())
    with pytest.raises(Failed) as failed:
        sanlock_vg.run(NoLvmHost(state=state))
    result = failed.value.args[0]
    assert result['commands'] == []
    assert result['msg'] == (
        'lvmconfig (package lvm2), lvmlockd (package lvm2-lockd), sanlock (package sanlock) are not installed on this '
        'host, nothing was changed; install lvm2, lvm2-lockd, sanlock first (for example with '
        'openblock.storage.system_units packages: [lvm2, lvm2-lockd, sanlock], as the roles do) and re-run')


# ---------------------------------------------------------------- state=recovered by adoption (Debian 13)
# Recorded on a trixie lab VM (lvm2 2.03.31, sanlock 3.9.5 driving the watchdog): VG adoptvg on one disk,
# host_id 1, lvx active exclusive, lvs active shared, lvi inactive; see the fixtures' README.

TRIXIE = (2, 3, 31)
TRIXIE_DEFAULTS = (FIXTURES / 'default_sanlock.trixie').read_text()  # sanlock_opts="": it drives the watchdog


def trixie(status, services, lvs='trixie_lvs_lvmlockd_killed'):
    st = sanlock.parse_sanlock_status(out(status))
    rows = sanlock.parse_lvs(out(lvs), st['resources'].get('lvm_adoptvg', {}))
    return (sanlock.parse_vg(out('trixie_vgs_adoptvg')), rows, sanlock.lockspace_facts('adoptvg', st, 1),
            sanlock.parse_is_active(out(services)))


def test_lvm_version_of_debian_13():
    assert rec('trixie_lvm_version')[0] == 0
    assert sanlock.parse_lvm_version(out('trixie_lvm_version')) == TRIXIE
    assert sanlock.parse_lvm_version('') is None


def test_a_killed_lvmlockd_on_a_watchdog_host_is_recovered_by_adoption_only():
    """After `pkill -9 -x lvmlockd`: sanlock (driving the watchdog) keeps the lockspace and both leases
    ORPHAN. The plan starts lvmlockd and adopts them in their modes: no consumer stops, no LV is
    deactivated, sanlock is never touched, nothing is recorded on disk."""
    vg, lvs, lockspace, services = trixie('trixie_sanlock_status_D_lvmlockd_killed', 'trixie_is_active_lvmlockd_killed')
    assert services == {'wdmd': 'active', 'sanlock': 'active', 'lvmlockd': 'failed'}
    assert {lv['lv_name']: (lv['mode'], lv['orphan']) for lv in lvs} == {
        'lvi': ('inactive', False), 'lvs': ('shared', True), 'lvx': ('exclusive', True)}
    wanted = spec(name='adoptvg', state='recovered', consumers=['nova-compute'])
    actions, expected, reasons = sanlock.plan_recovery(
        wanted, vg, lvs, lockspace, services, None, TRIXIE_DEFAULTS, {'nova-compute.service': 'active'}, TRIXIE)
    assert reasons == ['lvmlockd not running', 'ORPHAN lease(s) of a dead lvmlockd on lvs, lvx']
    assert argvs(actions) == [
        'systemctl start lvmlockd.service',
        'timeout 300 vgchange --lock-start --lockopt adoptls adoptvg',
        'lvchange --activate sy --lockopt adoptlv adoptvg/lvs',
        'lvchange --activate ey --lockopt adoptlv adoptvg/lvx']
    assert actions[1].timeout == 330
    assert expected == dict(sanlock.view(vg, lvs, lockspace), lock_started=True)
    # read back before the adoption, the leases are still orphaned: the run fails closed on that
    assert sanlock.recovery_problems(expected, lvs) == ['the lease(s) of lvs, lvx are still ORPHAN']


def test_an_lvmlockd_restarted_without_adoption_only_adopts():
    """lvmlockd was started again by hand (no adoption): it runs, the leases are still ORPHAN."""
    vg, lvs, lockspace, services = trixie('trixie_sanlock_status_D_lvmlockd_restarted', 'trixie_is_active_all')
    actions, _expected, reasons = sanlock.plan_recovery(
        spec(name='adoptvg', state='recovered'), vg, lvs, lockspace, services, None, TRIXIE_DEFAULTS, {}, TRIXIE)
    assert reasons == ['ORPHAN lease(s) of a dead lvmlockd on lvs, lvx']
    assert argvs(actions) == ['timeout 300 vgchange --lock-start --lockopt adoptls adoptvg',
                              'lvchange --activate sy --lockopt adoptlv adoptvg/lvs',
                              'lvchange --activate ey --lockopt adoptlv adoptvg/lvx']


def test_after_the_adoption_the_host_is_sound_and_every_lv_kept_its_mode():
    before = trixie('trixie_sanlock_status_D_lvmlockd_killed', 'trixie_is_active_lvmlockd_killed')
    _actions, expected, _reasons = sanlock.plan_recovery(
        spec(name='adoptvg', state='recovered'), before[0], before[1], before[2], before[3], None, TRIXIE_DEFAULTS,
        {}, TRIXIE)
    vg, lvs, lockspace, services = trixie('trixie_sanlock_status_D_adopted', 'trixie_is_active_all',
                                          lvs='trixie_lvs_adopted')
    assert not any(lv['orphan'] for lv in lvs)
    assert sanlock.recovery_problems(expected, lvs) == []
    # the next run finds nothing to do
    actions, again, reasons = sanlock.plan_recovery(
        spec(name='adoptvg', state='recovered'), vg, lvs, lockspace, services, None, TRIXIE_DEFAULTS, {}, TRIXIE)
    assert (actions, reasons) == ([], [])
    assert again == expected


def test_a_mode_that_changed_is_a_recovery_problem():
    vg, lvs, lockspace, _services = trixie('trixie_sanlock_status_D_adopted', 'trixie_is_active_all',
                                           lvs='trixie_lvs_adopted')
    expected = sanlock.view(vg, lvs, lockspace)
    expected['lvs']['lvx']['activation'] = 'shared'
    assert sanlock.recovery_problems(expected, lvs) == ['lvx is exclusive, not shared']


@pytest.mark.parametrize('change, blocker', [
    (dict(version=(2, 3, 16)), 'lvm2 2.03.16 cannot adopt orphaned leases (--lockopt adoptls/adoptlv came with 2.03.25)'),
    (dict(version=None), 'lvm2 (version unknown) cannot adopt'),
    (dict(unlocked='lvi'), 'lvi active without a lease'),
    (dict(inactive_orphan='lvx'), 'an ORPHAN lease of inactive lvx'),
    (dict(record=True), 'an earlier recovery did not finish'),
])
def test_without_adoption_a_watchdog_host_is_still_refused(change, blocker):
    """Where adoption cannot work the old path stays, and on a host whose sanlock drives the watchdog
    it is refused as before, now saying why the leases cannot be adopted."""
    vg, lvs, lockspace, services = trixie('trixie_sanlock_status_D_lvmlockd_killed', 'trixie_is_active_lvmlockd_killed')
    for lv in lvs:
        if lv['lv_name'] == change.get('unlocked'):
            lv['mode'] = 'unlocked'
        if lv['lv_name'] == change.get('inactive_orphan'):
            lv['mode'] = 'inactive'
    record = {'lvs': {}, 'consumers': []} if change.get('record') else None
    with pytest.raises(Refusal, match='drives the watchdog.*cannot be adopted in place.*%s.*reboot the host instead'
                       % re.escape(blocker)):
        sanlock.plan_recovery(spec(name='adoptvg', state='recovered'), vg, lvs, lockspace, services, record,
                              TRIXIE_DEFAULTS, {}, change.get('version', TRIXIE))


def test_without_adoption_a_host_whose_sanlock_can_be_killed_takes_the_old_path():
    vg, lvs, lockspace, services = trixie('trixie_sanlock_status_D_lvmlockd_killed', 'trixie_is_active_lvmlockd_killed')
    actions = sanlock.plan_recovery(spec(name='adoptvg', state='recovered'), vg, lvs, lockspace, services, None,
                                    DEFAULTS, {}, (2, 3, 16))[0]
    assert 'systemctl kill --signal=SIGKILL sanlock.service' in argvs(actions)
    assert not any('--lockopt' in a for a in argvs(actions))


class Ended(Exception):
    pass


class FakeModule(object):
    check_mode = False
    _diff = False

    def fail_json(self, **result):
        raise Failed(result)

    def exit_json(self, **result):
        raise Ended(result)


class AppliedRunner(object):
    commands = ['systemctl start lvmlockd.service']

    def apply(self, actions, explain=None):
        return True


def test_a_recovery_that_leaves_a_lease_orphan_fails_naming_it(monkeypatch):
    """Fail closed: the state read back after the adoption still shows the ORPHAN leases (here: the
    state recorded right after the kill), so the run fails, naming them and what to do."""
    vg, lvs, lockspace, services = trixie('trixie_sanlock_status_D_lvmlockd_killed', 'trixie_is_active_lvmlockd_killed')
    actions, expected, reasons = sanlock.plan_recovery(
        spec(name='adoptvg', state='recovered'), vg, lvs, lockspace, services, None, TRIXIE_DEFAULTS, {}, TRIXIE)
    status = sanlock.parse_sanlock_status(out('trixie_sanlock_status_D_lvmlockd_killed'))
    monkeypatch.setattr(sanlock_vg, 'read_state', lambda runner, name: (vg, lvs, status))
    with pytest.raises(Failed) as failed:
        sanlock_vg.apply_and_report(FakeModule(), AppliedRunner(), 'adoptvg', 1, (vg, lvs, lockspace), actions,
                                    expected, verify=sanlock.recovery_problems, problems=reasons)
    result = failed.value.args[0]
    assert result['reasons'] == ['the lease(s) of lvs, lvx are still ORPHAN']
    assert result['msg'].startswith('the recovery of adoptvg ran, but the lease(s) of lvs, lvx are still ORPHAN; ')
    assert 'reboot this host' in result['msg'] and result['problems'] == reasons
    # read back adopted, the same run reports its change
    st = sanlock.parse_sanlock_status(out('trixie_sanlock_status_D_adopted'))
    after = sanlock.parse_lvs(out('trixie_lvs_adopted'), st['resources']['lvm_adoptvg'])
    monkeypatch.setattr(sanlock_vg, 'read_state', lambda runner, name: (vg, after, st))
    with pytest.raises(Ended) as ended:
        sanlock_vg.apply_and_report(FakeModule(), AppliedRunner(), 'adoptvg', 1, (vg, lvs, lockspace), actions,
                                    expected, verify=sanlock.recovery_problems, problems=reasons)
    assert ended.value.args[0]['changed'] and ended.value.args[0]['lvs']['lvx']['activation'] == 'exclusive'


def test_debian_12_takes_the_old_path_from_what_it_recorded():
    """Recorded on a bookworm VM (lvm2 2.03.16, sanlock 3.8.5 with -w 0) after pkill -9 -x lvmlockd,
    with lvx exclusive and lvs shared: lvm2 2.03.16 has no --lockopt adoptls/adoptlv, so the plan is
    the old one (its sanlock may be killed); the same state where sanlock drives the watchdog is refused."""
    assert sanlock.parse_lvm_version(out('bookworm_lvm_version')) == (2, 3, 16)
    st = sanlock.parse_sanlock_status(out('bookworm_sanlock_status_D_lvmlockd_killed'))
    lvs = sanlock.parse_lvs(out('bookworm_lvs_lvmlockd_killed'), st['resources']['lvm_bvg'])
    assert {lv['lv_name']: (lv['mode'], lv['orphan']) for lv in lvs} == {
        'lvs': ('shared', True), 'lvx': ('exclusive', True)}
    vg, lockspace = sanlock.parse_vg(out('bookworm_vgs_bvg')), sanlock.lockspace_facts('bvg', st, 1)
    services = sanlock.parse_is_active(out('bookworm_is_active_lvmlockd_killed'))
    version = sanlock.parse_lvm_version(out('bookworm_lvm_version'))
    actions = sanlock.plan_recovery(spec(name='bvg', state='recovered'), vg, lvs, lockspace, services, None,
                                    DEFAULTS, {}, version)[0]
    assert 'systemctl kill --signal=SIGKILL sanlock.service' in argvs(actions)
    assert 'lvchange --activate n bvg/lvs bvg/lvx' in argvs(actions)
    with pytest.raises(Refusal, match='lvm2 2.03.16 cannot adopt orphaned leases \\(--lockopt adoptls/adoptlv came with 2.03.25\\)'):
        sanlock.plan_recovery(spec(name='bvg', state='recovered'), vg, lvs, lockspace, services, None,
                              TRIXIE_DEFAULTS, {}, version)
