"""The reset's origin bookkeeping: which origins' storage a job may have written."""

from browserd.browser.hygiene import origins_of


def test_urls_give_their_origins_without_credentials_or_default_ports():
    assert origins_of(["https://u:p@Example.org:443/a?b", "http://example.org:80/", "http://h:8080/x",
                       "about:blank", "data:text/html,x", "chrome-error://chromewebdata/", "not a url"]) == [
        "http://example.org", "http://h:8080", "https://example.org"]


def test_a_contacted_host_port_gives_both_schemes():
    assert origins_of(contacted=[("127.0.0.1", 8000)]) == ["http://127.0.0.1:8000", "https://127.0.0.1:8000"]
    assert origins_of(contacted=[("Example.org", 443)]) == ["http://example.org:443", "https://example.org"]
    assert origins_of(contacted=[("example.org", 80)]) == ["http://example.org", "https://example.org:80"]


def test_ipv6_hosts_are_bracketed_and_duplicates_merged():
    assert origins_of(["http://[::1]:81/"], [("::1", 81)]) == ["http://[::1]:81", "https://[::1]:81"]
