"""The published JSON Schema of the topology (docs/topology.schema.json): the project's
topologies pass it, and the table of bad inputs the validator refuses is refused by the
schema too, except the checks only the validator can make (across keys, or of a value's
meaning), which are listed here by name."""

import json

import jsonschema
import pytest
import yaml

from ansible_collections.nslab.lab.plugins.module_utils.nslab_compile import validate
from helpers.paths import ROOT
from helpers.topology_cases import BAD, GOOD, with_change

SCHEMA = json.loads((ROOT / "docs" / "topology.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
TOPOLOGIES = sorted(ROOT.glob("labs/*.yml")) + sorted(ROOT.glob("molecule/*/topology.yml"))

# The validator's alone: the schema sees each value by itself.
VALIDATOR_ONLY = {
    ("nodes/web1/limits/cpuset", "'1-0'"),                          # a range's order
    ("nodes/web1/jail", "{'source': 'directory', 'path': '/'}"),      # the host's root
    ("nodes/web1/jail", "{'source': 'directory', 'path': '/srv/../'}"),   # normal form
    ("nodes/web1/jail", "{'source': 'tarball'}"),       # path may come from defaults.jail
    ("defaults/jail", "{'source': 'host'}"),            # binaries may come from a node
    ("links/0/subnet", "'10.213.192.0/30'"),            # overlaps another segment
    ("links/0/endpoints", "['web1:lo', 'web2:eth1']"),  # an interface the node has
    ("nodes/web1/limits/cpus", "nan"),                  # YAML's .nan; JSON has none
}


def test_the_schema_is_a_valid_draft_2020_12_schema():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_there_are_topologies_to_check():
    assert len(TOPOLOGIES) >= 4


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_topology_of_the_project_passes_the_schema_and_the_validator(path):
    topology = yaml.safe_load(path.read_text())
    assert [e.message for e in VALIDATOR.iter_errors(topology)] == []
    assert validate(topology) == []


def test_the_good_example_passes_the_schema():
    assert [e.message for e in VALIDATOR.iter_errors(GOOD)] == []


@pytest.mark.parametrize("path,value,start,fragment", BAD,
                         ids=[("%s=%r" % (b[0], b[1]))[:60] for b in BAD])
def test_a_bad_input_is_refused_by_the_schema_and_the_validator(path, value, start, fragment):
    topology = with_change(path, value)
    assert validate(topology)
    refused = list(VALIDATOR.iter_errors(topology))
    if (path, repr(value)) in VALIDATOR_ONLY:
        assert not refused, "the schema refuses it now: take it off VALIDATOR_ONLY"
    else:
        assert refused
