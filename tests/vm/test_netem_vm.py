"""Impairment measured: netem delay, loss and rate on a lab's link, in the Debian 12 VM.

The development machines' and CI's kernels have no netem (CONFIG_NET_SCH_NETEM is not set),
so tests/integration/test_link.py skips its netem cases there. The VM's stock Debian kernel
loads sch_netem, so here the impairment is not only configured but measured on the link
of the session's lab (``vm_lab`` in tests/vm/conftest.py: two busybox nodes joined by a
point-to-point link, built once with lab.yml over SSH). The
delay test writes the link's ``netem`` key into the topology and reruns lab.yml (which
changes the link's qdiscs and nothing else); the loss and rate tests change the running link
with the nslab_link module, the engine behind that key (a lab.yml rerun under TCG takes a
minute or more). Each then measures, from inside the nodes' net namespaces on the VM, what
the kernel delivers:

- ``delay: 50ms`` on both ends' egress adds 100 ms of round trip to the minimum of 20 pings;
- ``loss: 20%`` on one direction loses ~20 % of 200 pings; on both directions 1 - 0.8^2 = 36 %
  (an echo and its reply must both pass), each within 4 sigma of the binomial expectation;
- ``rate: 10mbit`` gives an iperf3 TCP throughput within +-15 % of 10 Mbit/s;
- removing the netem brings the round trip back to the baseline.

Every measured figure is printed (``pytest -s`` shows them). Run it with
``.venv/bin/pytest -m vm tests/vm/test_netem_vm.py -s`` (as root). See vm/README.md.
"""

import json
import math
import re

import pytest

from helpers.ansible_runs import changed
from helpers.vm_hosts import failed, run_module, run_playbook, ssh

pytestmark = pytest.mark.vm


class Impairable:
    """The session's lab (``vm_lab``, tests/vm/conftest.py) as these tests use it: its
    link's impairment changed through lab.yml or the nslab_link module, and measured."""

    def __init__(self, shared):
        self.shared, self.vm, self.name, self.addr = shared, shared.vm, shared.name, shared.addr
        self.run_in = shared.run_in

    def impair(self, netem):
        """Set the link's ``netem`` key in the topology (None: take it out) and rerun lab.yml;
        only the nodes' links part may change (a flat netem is the egress of both ends)."""
        if netem is None:
            self.shared.spec["links"][0].pop("netem", None)
        else:
            self.shared.spec["links"][0]["netem"] = netem
        self.shared.write()
        # Without the roles' apt tasks: the build and the convergence rerun
        # (test_cgroup_v2.py) run them; under TCG each costs several seconds.
        results = run_playbook(self.shared.inventory, "lab.yml", {
            "lab": str(self.shared.topology), "nslab_jail_install_packages": False,
            "nslab_node_install_packages": False})
        assert not failed(results), failed(results)
        done = changed(results)
        print("\nlab.yml with links[0].netem = %s: %s" % (json.dumps(netem), done))
        assert list(done) == ["links"], done
        return done

    def impair_at_runtime(self, netem):
        """The same impairment through the nslab_link module (the engine the key's task
        runs), as a user changes a running lab: a module run, not a lab.yml rerun, which
        under TCG costs a minute or more each."""
        result = run_module(self.shared.inventory, "nslab_link", {
            "lab": self.name, "links": [{"node": "a", "interface": "eth1", "netem": netem}]})
        assert result["_status"] != "failed" and result["changed"], result
        print("\nnslab_link a:eth1 netem = %s: %s" % (json.dumps(netem), result["actions"]))

    def root_qdiscs(self):
        """The root qdisc of eth1 in a's and in b's namespace, as the kernel reports them."""
        out = []
        for node in ("a", "b"):
            qdiscs = json.loads(self.run_in(node, "tc -j qdisc show dev eth1 root").stdout)
            out.append(qdiscs[0])
        return out

    def ping(self, count, interval, wait=2):
        """iputils ping from a to b: (transmitted, received, [rtt ms of each reply], min rtt).
        The minimum is the summary's (microseconds): a reply line rounds 100 ms and more
        to whole milliseconds."""
        out = self.run_in("a", "ping -n -c %d -i %s -W %d %s" % (
            count, interval, wait, self.addr["b"]), check=False, timeout=300).stdout
        sent, got = re.search(r"(\d+) packets transmitted, (\d+) received", out).groups()
        rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]
        summary = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/", out)
        return int(sent), int(got), rtts, float(summary.group(1)) if summary else None


@pytest.fixture
def lab(vm_lab):
    return Impairable(vm_lab)


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def rtt_figures(lab, label):
    """min and median RTT of 20 pings at 50 ms (all must come back), printed."""
    sent, got, rtts, lowest = lab.ping(20, "0.05")
    assert (sent, got) == (20, 20), (label, sent, got)
    figures = (lowest, median(rtts))
    print("%s RTT a->b over 20 pings: min %.3f ms, median %.3f ms, max %.3f ms" % (
        label, figures[0], figures[1], max(rtts)))
    return figures


# --- the measurements -------------------------------------------------------------------------

def test_delay_50ms_adds_100ms_of_round_trip_and_removal_restores_it(lab):
    base_min, base_median = rtt_figures(lab, "baseline")

    lab.impair({"delay": "50ms"})
    for qdisc in lab.root_qdiscs():
        assert (qdisc["kind"], qdisc["handle"]) == ("netem", "4e53:"), qdisc
        assert qdisc["options"]["delay"]["delay"] == pytest.approx(0.05), qdisc
    delayed_min, delayed_median = rtt_figures(lab, "delay 50ms")
    # 50 ms on the egress of each end: +100 ms of round trip. netem never sends a packet
    # before its time, so the minimum cannot come in under +100 ms (less 1 ms for the clock's
    # and ping's rounding); above it, only hrtimer slack and the TCG guest's scheduling
    # delay add up, which the baseline's spread bounds: +10 ms covers both here.
    added = delayed_min - base_min
    print("added RTT (min): %.3f ms; (median): %.3f ms; expected 100 ms, [99, 110]" % (
        added, delayed_median - base_median))
    assert 99 <= added <= 110, (base_min, delayed_min)

    # the key gone: nslab's qdisc is removed from both ends and the round trip is back
    lab.impair(None)
    assert [q["kind"] for q in lab.root_qdiscs()] == ["noqueue", "noqueue"]
    back_min, _ = rtt_figures(lab, "after removal")
    assert back_min < base_min + 10, (base_min, back_min)


def binomial_bounds(count, p, sigmas=4):
    mean = count * p
    sigma = math.sqrt(count * p * (1 - p))
    return mean - sigmas * sigma, mean + sigmas * sigma


@pytest.mark.parametrize("netem, p_lost, label", [
    # the egress of the first endpoint (a) only: the echo requests lose 20 %, the replies none
    ({"egress": {"loss": "20%"}}, 0.2, "loss 20% one direction"),
    # both ends: an echo and its reply each pass with 0.8, so 1 - 0.8^2 = 36 % are lost
    ({"loss": "20%"}, 1 - 0.8 ** 2, "loss 20% both directions"),
])
def test_loss_20pct_loses_pings_within_4_sigma(lab, netem, p_lost, label):
    lab.impair_at_runtime(netem)
    try:
        sent, got, _, _ = lab.ping(200, "0.01", wait=1)
    finally:
        lab.impair_at_runtime(None)
    lost = sent - got
    low, high = binomial_bounds(sent, p_lost)
    print("%s: %d of %d pings lost (%.1f %%); expected %.1f, 4 sigma [%.1f, %.1f]" % (
        label, lost, sent, 100.0 * lost / sent, sent * p_lost, low, high))
    assert sent == 200
    assert low <= lost <= high, (lost, low, high)


def test_rate_10mbit_gives_10mbit_of_tcp_throughput(lab):
    lab.impair_at_runtime({"rate": "10mbit"})
    pidfile = None
    try:
        rate = lab.root_qdiscs()[0]["options"]["rate"]["rate"]
        assert rate == 1250000, rate                         # bytes/s, as tc -j reports it
        # the server in b's namespace (one test, then it exits), the client in a's: a's egress
        # carries the data through the link's qdisc
        pidfile = "/run/iperf3-%s.pid" % lab.name
        lab.run_in("b", "iperf3 -s -1 -D -I %s -B %s" % (pidfile, lab.addr["b"]))
        report = None
        for _ in range(20):
            client = lab.run_in("a", "iperf3 -c %s -t 5 -J" % lab.addr["b"], check=False,
                                timeout=60)
            report = json.loads(client.stdout) if client.stdout.strip() else {}
            if "end" in report and not report.get("error"):
                break
            ssh(lab.vm, "sleep 0.2")                          # the daemon not listening yet
        received = report["end"]["sum_received"]["bits_per_second"]
        sent = report["end"]["sum_sent"]["bits_per_second"]
    finally:
        lab.impair_at_runtime(None)
        if pidfile:
            ssh(lab.vm, "test -e {f} && kill $(cat {f}); rm -f {f}".format(f=pidfile),
                check=False)
    print("rate 10mbit: iperf3 TCP a->b received %.3f Mbit/s, sent %.3f Mbit/s "
          "(expected 10 +-15 %%)" % (received / 1e6, sent / 1e6))
    assert 8.5e6 <= received <= 11.5e6, received
