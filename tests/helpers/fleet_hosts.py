"""The test fleet (roles/nslab_fleet, fleet.yml): three Debian system containers reached
by real SSH, built once per session by the ``fleet`` fixture (tests/integration/conftest.py)
and shared by tests/integration/test_fleet.py and test_fleet_lab.py. Building one takes
most of a minute and removing it more seconds; each test builds its own lab inside it,
under its own name."""

import subprocess

from helpers.ansible_runs import run_playbook

# A range only the fleet uses; nothing routes to or from it.
FLEET_SUBNET = "10.213.251"
FLEET_HOSTS = ["h1", "h2", "h3"]


def recap(results):
    """changed count of a json-callback playbook run; fails on a failed or unreachable task."""
    failed = [r for r in results if r["_status"] in ("failed", "unreachable")]
    assert not failed, failed
    return sum(1 for r in results if r.get("changed"))


class Fleet:
    """The fleet of the session: its lab name (that of its containers, bridge and cgroups),
    its hosts' addresses, its SSH directory, and the results of the runs that built it."""

    def __init__(self, lab, subnet=FLEET_SUBNET, hosts=FLEET_HOSTS):
        self.lab, self.subnet, self.hosts = lab, subnet, list(hosts)
        self.dir = "/var/lib/nslab/%s/ssh" % lab.name
        self.inventory = self.dir + "/inventory.yml"
        # what the fixture saw while building it, for test_fleet.py's assertions
        self.planned = self.left_after_check = self.built = None

    def address(self, host):
        return "%s.%d" % (self.subnet, 11 + self.hosts.index(host))

    def vars(self, state="present"):
        """fleet.yml's extra vars for this fleet."""
        return {"nslab_fleet_lab": self.lab.name, "state": state,
                "nslab_fleet_bridge_address": self.subnet + ".1/24",
                "nslab_fleet_hosts": [{"name": h, "address": self.address(h)}
                                      for h in self.hosts]}

    def playbook(self, state="present", check=False):
        """fleet.yml on this fleet; its task results."""
        return run_playbook("fleet.yml", self.vars(state), check=check, json_results=True)

    def ssh(self, host, command, timeout=60):
        """A command on a fleet host, over SSH with strict host key checking."""
        return subprocess.run(
            ["ssh", "-i", self.dir + "/id_ed25519", "-o",
             "UserKnownHostsFile=%s/known_hosts" % self.dir, "-o", "StrictHostKeyChecking=yes",
             "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "root@" + self.address(host),
             command], capture_output=True, text=True, timeout=timeout)
