# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Which volumes lvm_thinvol and lvm_thickvol return in RV(volumes)."""

    DOCUMENTATION = r'''
options:
  report:
    description:
      - Which volumes RV(volumes) describes. V(changed), those this run created or changed (in check mode,
        would); V(all), every volume the module manages in the VG or pool.
      - With V(changed) a run over hundreds of converged volumes returns a short result; ask for V(all) to
        read the size, path and state of every volume.
    type: str
    choices: [changed, all]
    default: changed
'''
