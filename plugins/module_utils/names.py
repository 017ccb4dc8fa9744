# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of the iSCSI names and portals that users write, shared by every module and role.

Each check returns an error sentence naming the option and the value, or None when valid, so
a module can collect all errors of its input before it changes anything.
"""

from __future__ import annotations

import ipaddress
import re

# RFC 7143 section 4.2.7: iqn.YYYY-MM.reversed.domain[:unique], eui.<16 hex>, naa.<16|32 hex>.
_IQN_RE = re.compile(r'^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[^\s]+)?$')
_EUI_RE = re.compile(r'^eui\.[0-9A-Fa-f]{16}$')
_NAA_RE = re.compile(r'^naa\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$')
ISCSI_NAME_MAX = 223  # bytes, RFC 7143
DEFAULT_ISCSI_PORT = 3260


def iscsi_name_error(name, option):
    """Why ``name`` is not a valid iSCSI name (iqn., eui. or naa. form), or None."""
    if not isinstance(name, str) or not name:
        return '%s=%r is not an iSCSI name; expected iqn.YYYY-MM.domain:name, eui.<16 hex> or naa.<16|32 hex>' % (option, name)
    if len(name.encode('utf-8')) > ISCSI_NAME_MAX:
        return '%s=%r is longer than the %d bytes iSCSI allows' % (option, name, ISCSI_NAME_MAX)
    upper = name != name.lower() and name.startswith('iqn.')
    if upper and _IQN_RE.match(name.lower()):
        # suggest the lower-case form only when it is a valid name itself
        return '%s=%r has upper-case letters; iSCSI names are lower case (write %r)' % (option, name, name.lower())
    if not upper and (_IQN_RE.match(name) or _EUI_RE.match(name) or _NAA_RE.match(name)):
        return None
    return ('%s=%r is not an iSCSI name%s; expected iqn.YYYY-MM.reversed.domain[:unique] '
            '(for example iqn.2010-10.org.openstack:volume-1), eui.<16 hex> or naa.<16|32 hex>'
            % (option, name, ' (and iqn. names are lower case)' if upper else ''))


def parse_portal(text, option='portals'):
    """Split ``IP[:port]`` or ``[IPv6][:port]`` into ``(address, port)``; ValueError names the option."""
    text = str(text).strip()
    port = DEFAULT_ISCSI_PORT
    if text.startswith('['):
        end = text.find(']')
        if end < 0:
            raise ValueError('%s=%r: an IPv6 portal is written [address]:port' % (option, text))
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(':'):
                raise ValueError('%s=%r: expected [address]:port' % (option, text))
            port = rest[1:]
    elif text.count(':') == 1:
        host, port = text.split(':')
    elif ':' in text:
        raise ValueError('%s=%r: write an IPv6 portal in brackets, as [%s]:3260' % (option, text, text))
    else:
        host = text
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError('%s=%r: %r is not an IP address; portals are IP[:port] or [IPv6]:port' % (option, text, host))
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise ValueError('%s=%r: the port must be a number from 1 to 65535' % (option, text))
    return str(address), port


def format_portal(address, port):
    """The ``IP:port`` form iscsiadm prints and expects (IPv6 in brackets)."""
    if ':' in address:
        return '[%s]:%d' % (address, port)
    return '%s:%d' % (address, port)
