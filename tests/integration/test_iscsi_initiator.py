"""iscsi_initiator on the lab VM: the image's cloned initiator name is replaced when another host
holds it, iscsid is restarted only then, and a re-run and a check run change nothing.

Resources of this file only: /etc/iscsi/initiatorname.iscsi and /etc/iscsi/iscsid.conf, saved
under /run and restored at the end (with an iscsid restart, so the other files see the image's name).
"""

import pytest

SAVED = '/run/itest-initiator'
SETTINGS = {'node.session.timeo.replacement_timeout': '5', 'node.startup': 'automatic'}


@pytest.fixture(scope='module')
def saved(lab):
    lab.sh('mkdir -p {0} && cp -a /etc/iscsi/initiatorname.iscsi /etc/iscsi/iscsid.conf {0}/'.format(SAVED))
    try:
        yield lab
    finally:
        lab.sh('cp -a {0}/initiatorname.iscsi {0}/iscsid.conf /etc/iscsi/ && rm -rf {0} '
               '&& systemctl try-restart iscsid.service'.format(SAVED), check=False)


def test_a_cloned_name_is_replaced_once_and_then_left_alone(saved):
    lab = saved
    cloned = lab.out("sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi").strip()
    lab.sh('systemctl start iscsid.service')
    started = lab.out('systemctl show -p ActiveEnterTimestampMonotonic --value iscsid.service')

    # check mode predicts the new name and changes nothing
    result = lab.module('iscsi_initiator', dict(avoid={'compute0': cloned}, settings=SETTINGS), check=True, diff=True)
    assert result['changed'] and result['renamed'] and 'also held by compute0' in result['reason'], result
    assert result['diff']['before']['name'] == cloned and result['diff']['after']['name'] != cloned
    assert result['diff']['after']['settings'] == SETTINGS
    assert lab.out("sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi").strip() == cloned

    result = lab.module('iscsi_initiator', dict(avoid={'compute0': cloned}, settings=SETTINGS))
    new = result['name']
    assert result['changed'] and result['previous_name'] == cloned and new.startswith('iqn.1993-08.org.debian:01:')
    assert result['commands'] == ['write /etc/iscsi/initiatorname.iscsi', 'write /etc/iscsi/iscsid.conf',
                                  'systemctl try-restart iscsid.service']
    assert lab.out("sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi").strip() == new
    assert lab.out('stat -c %a /etc/iscsi/initiatorname.iscsi /etc/iscsi/iscsid.conf').split() == ['600', '600']
    assert 'node.session.timeo.replacement_timeout = 5' in lab.out('cat /etc/iscsi/iscsid.conf')
    restarted = lab.out('systemctl show -p ActiveEnterTimestampMonotonic --value iscsid.service')
    assert restarted != started

    # the same task again: nothing to do, iscsid left running as it is
    result = lab.module('iscsi_initiator', dict(avoid={'compute0': cloned}, settings=SETTINGS))
    assert not result['changed'] and result['commands'] == [] and result['name'] == new, result
    assert lab.out('systemctl show -p ActiveEnterTimestampMonotonic --value iscsid.service') == restarted
