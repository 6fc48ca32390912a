"""A lab over several hosts, its fleet, and what each host reports once its share is built:
the inputs of the fleet and host-down tests of the topology compiler."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import compile_lab


LAB = {
    "lab": "wide",
    "networks": {"lan": {"subnet": "10.213.1.0/24"}, "dmz": {"subnet": "10.213.2.0/24"}},
    "nodes": {
        "a": {"networks": ["lan"]},
        "b": {"networks": ["lan", "dmz"]},
        "c": {"networks": ["lan"]},
        "d": {"networks": {"lan": "10.213.1.50"}},
        "e": {"networks": ["dmz"], "host": "h1"},
    },
    "links": [{"endpoints": ["a:eth1", "b:eth2"], "subnet": "10.213.9.0/30"},
              ["a:eth2", "d:eth1"]],
}


def fleet(names=("h1", "h2", "h3"), currents=None, mtu=1500, prefix="192.0.2."):
    currents = currents or {}
    return [{"name": n, "underlay": {"address": "%s%d" % (prefix, i + 11), "mtu": mtu},
             "current": currents.get(n, {})} for i, n in enumerate(names)]


def compile_all(topology, members):
    return dict((m["name"], compile_lab(topology, fleet=members, host=m["name"]))
                for m in members)


def as_current(share):
    """What nslab_info would report on a host once its share is built."""
    addresses = {}
    for veth in share["veths"]:
        for end in (veth, veth["peer"]):
            if end.get("netns"):
                addresses.setdefault(end["netns"], []).extend(end.get("addresses", []))
    for vxlan in share["vxlans"]:
        if vxlan.get("netns"):
            addresses.setdefault(vxlan["netns"], []).extend(vxlan["addresses"])
    return {"namespaces": share["namespaces"], "containers": share["containers"],
            "netns_addresses": addresses, "bridges": share["bridges"],
            "veths": [{"name": v["name"], "netns": v.get("netns")} for v in share["veths"]],
            "vxlans": [{"name": v["name"], "netns": v.get("netns")} for v in share["vxlans"]],
            "jails": share["jails"], "cgroups": share["cgroups"]}


def built(topology, members):
    shares = compile_all(topology, members)
    return dict((h, as_current(s)) for h, s in shares.items())
