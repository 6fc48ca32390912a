"""check_mirror against a real HTTP server on 127.0.0.1 (a thread of this test): a mirror
that serves the suite passes; one that does not, or is not there, fails naming the mirror,
the suite and the URL it asked for."""

import http.server
import socket
import threading

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_errors import SourceError
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sources import check_mirror


class Mirror(http.server.BaseHTTPRequestHandler):
    """Serves dists/bookworm/Release and nothing else; records each request's method."""
    requests = []

    def do_HEAD(self):
        self.requests.append(("HEAD", self.path))
        self.send_response(200 if self.path == "/debian/dists/bookworm/Release" else 404)
        self.end_headers()

    def do_GET(self):
        self.requests.append(("GET", self.path))
        self.send_response(405)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror():
    Mirror.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Mirror)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/debian" % server.server_port, Mirror.requests
    server.shutdown()
    server.server_close()


def test_a_mirror_that_serves_the_suite_passes_with_one_head_request(mirror):
    url, requests = mirror
    check_mirror(url + "/", "bookworm", timeout=5)
    assert requests == [("HEAD", "/debian/dists/bookworm/Release")]


def test_a_mirror_without_the_suite_fails_naming_mirror_suite_and_url(mirror):
    url, requests = mirror
    with pytest.raises(SourceError) as caught:
        check_mirror(url, "nosuchsuite", timeout=5)
    assert str(caught.value) == (
        "mirror: '%s' is unreachable or does not serve suite 'nosuchsuite' (HTTPError: Not "
        "Found); expected a Debian/Ubuntu mirror that serves %s/dists/nosuchsuite/Release"
        % (url, url))
    assert requests == [("HEAD", "/debian/dists/nosuchsuite/Release")]


def test_a_mirror_that_is_not_there_fails_clearly():
    with socket.socket() as probe:          # a port nothing listens on: bound, never listened
        probe.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d/debian" % probe.getsockname()[1]
        with pytest.raises(SourceError) as caught:
            check_mirror(url, "bookworm", timeout=5)
    assert str(caught.value).startswith(
        "mirror: '%s' is unreachable or does not serve suite 'bookworm' (URLError: " % url)
    assert "Connection refused" in str(caught.value)


def test_a_mirror_that_is_not_a_url_fails_clearly():
    with pytest.raises(SourceError) as caught:
        check_mirror("not a url", "bookworm", timeout=5)
    assert "mirror: 'not a url' is unreachable or does not serve suite 'bookworm'" in str(
        caught.value)
