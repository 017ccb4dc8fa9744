# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """CHAP credentials of an open-iscsi initiator: for the logins and for SendTargets discovery.

    Both options take the same four fields, written once (YAML anchor) and used twice.
    """

    DOCUMENTATION = r'''
options:
  node_auth:
    description:
      - CHAP credentials for the logins (C(node.session.auth.*) of the node records). One-way CHAP
        with O(node_auth.username) and O(node_auth.password); mutual CHAP adds
        O(node_auth.username_in) and O(node_auth.password_in).
      - Not set = the authentication settings of the records are left as they are.
      - New settings take effect at the next login; an existing session is not restarted.
    type: dict
    suboptions: &chap
      username:
        description: User name the initiator presents to the target.
        type: str
        required: true
      password:
        description: Secret the initiator presents to the target. Never logged.
        type: str
        required: true
      username_in:
        description: User name the target presents to the initiator (mutual CHAP).
        type: str
      password_in:
        description: Secret the target presents to the initiator (mutual CHAP). Never logged.
        type: str
  discovery_auth:
    description:
      - CHAP credentials for SendTargets discovery, kept in the discovery records of the portals
        (C(iscsiadm -m discoverydb)). Same fields as O(node_auth).
      - Only used with O(state=logged_in).
    type: dict
    suboptions: *chap
'''
