"""moto_server, with the test bed's corrections of where moto departs from AWS's documents.

Runs exactly as the `moto_server` entry point does (same arguments, `moto.server:main`),
after patching what moto gets wrong in a way no proxy in front of it can repair, because
the cost or the state lives inside moto:

- SendCommand by `InstanceIds` (API_SendCommand: "the IDs of the managed nodes where the
  command should run") also targets every other instance of the region in moto 5.2.1:
  with no `Targets`, moto's `Command._get_instance_ids_from_targets` filters the region's
  reservations by an empty filter set, which matches them all. Each command then holds an
  invocation for every instance, so a command cost moto O(fleet) CPU and memory (about
  40 ms and 3 MB per command with 5,000 instances; the bench's 5,000 burst grew moto to
  16 GB) and `ListCommands` listed the whole region under every command. With the patch
  a command without `Targets` targets exactly its `InstanceIds`, as on AWS; a command by
  `Targets` is unchanged.

test/testbed/moto.ts starts moto through this file; `MOTO_SERVER` overrides it with a
command of your choice (then uncorrected). test/testbed/testbed.test.ts holds the patch.
"""

import sys

from moto.server import main
from moto.ssm import models as ssm_models

_targets_to_instance_ids = ssm_models.Command._get_instance_ids_from_targets


def _instance_ids_from_targets(self):  # type: ignore[no-untyped-def]
    # Only a command sent by Targets resolves them; by InstanceIds there is nothing to add.
    if not self.targets:
        return []
    return _targets_to_instance_ids(self)


ssm_models.Command._get_instance_ids_from_targets = _instance_ids_from_targets

if __name__ == "__main__":
    sys.exit(main())
