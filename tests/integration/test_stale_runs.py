"""A test run that was killed cannot clean up: the next session removes what its labs left
(tests/helpers/lab.py, sweep_stale_labs) and leaves the labs of runs still going alone."""

import os
import subprocess

from helpers.kernel import ip_links, sh
from ansible_collections.nslab.lab.plugins.module_utils.nslab_init import proc_start_time
from helpers.lab import OWNERS_DIR, Lab, sweep_stale_labs


def test_the_labs_of_a_killed_run_are_swept_and_a_running_runs_are_not(lab):
    # A lab of a run that is gone: marked with the pid and start time of a process that ended.
    gone = subprocess.Popen(["sleep", "60"])
    marker = "%d %d\n" % (gone.pid, proc_start_time(gone.pid))
    gone.kill()
    gone.wait()
    killed = Lab()
    try:
        with open(killed.owner_file, "w") as handle:
            handle.write(marker)
        for owner in (killed, lab):
            sh("ip", "link", "add", owner.n("d"), "type", "bridge")
            sh("ip", "netns", "add", owner.n("n"))

        swept = sweep_stale_labs()

        assert killed.name in swept and lab.name not in swept
        assert killed.leftovers() == []
        assert not os.path.exists(killed.owner_file)
        # This run's lab is still whole, and still marked as this run's.
        assert lab.n("d") in ip_links()
        assert lab.n("n") in os.listdir("/run/netns")
        with open(os.path.join(OWNERS_DIR, lab.name)) as handle:
            assert handle.read().split() == [str(os.getpid()),
                                             str(proc_start_time(os.getpid()))]
    finally:
        killed.cleanup()
