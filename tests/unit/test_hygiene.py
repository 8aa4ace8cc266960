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


class _SlowCommit:
    """A browser-level DevTools connection whose tab commits about:blank only after
    ``reads`` reads of its history (a loaded machine, a large page to unload)."""

    def __init__(self, reads: int):
        self.reads, self.sent = reads, []
        self.events = []

    def batch(self, calls, timeout=None):
        out = []
        for method, params, session in calls:
            self.sent.append(method)
            if method == "Target.getTargets":
                out.append({"targetInfos": [{"targetId": "tab", "type": "page"}]})
            elif method == "Page.getNavigationHistory":
                self.reads -= 1
                url = "about:blank" if self.reads <= 0 else "http://127.0.0.1/big"
                out.append({"currentIndex": 0, "entries": [{"url": url}]})
            elif method == "Page.handleJavaScriptDialog":
                from browserd.browser.devtools import DevToolsError

                out.append(DevToolsError("No dialog is showing"))
            else:
                out.append({})
        return out

    def send(self, calls):
        self.sent += [method for method, _, _ in calls]


def _hygiene(devtools):
    from browserd.browser.hygiene import Hygiene

    h = Hygiene(browser=None)
    h.devtools, h.tab, h.session = devtools, "tab", "s1"
    return h


def test_a_slow_commit_is_waited_for_not_counted_as_close_rounds():
    """A tab that needs more reads than CLOSE_ROUNDS to commit about:blank (no window to
    close) is still stopped: waiting for the commit is bounded by SETTLE, not by rounds
    (a 1 MB page on a loaded machine was replaced as 'did not commit about:blank')."""
    from browserd.browser.hygiene import CLOSE_ROUNDS

    devtools = _SlowCommit(reads=CLOSE_ROUNDS + 10)
    rounds = _hygiene(devtools)._stop()
    assert rounds > CLOSE_ROUNDS and devtools.sent.count("Page.navigate") == 1


def test_an_early_blank_navigation_is_not_sent_twice_when_it_commits():
    devtools = _SlowCommit(reads=3)
    h = _hygiene(devtools)
    h.blanking = True  # begin_stop sent it
    h._stop(deny_downloads=True)
    assert "Page.navigate" not in devtools.sent and devtools.sent[0] == "Browser.setDownloadBehavior"
    assert h.blanking is False


def test_the_name_and_history_are_forgotten_once_after_the_commit_not_again_by_the_clear():
    """Forgetting the tab's name and history before about:blank commits would be undone by
    the commit; sent by the stop once it has, the clear's batch does not send them again."""
    devtools = _SlowCommit(reads=3)
    h = _hygiene(devtools)
    h._stop()
    last_read = max(i for i, m in enumerate(devtools.sent) if m == "Page.getNavigationHistory")
    assert devtools.sent.index("Page.resetNavigationHistory") > last_read
    assert devtools.sent.count("Runtime.evaluate") == 1 and h.forgotten
    devtools.sent.clear()
    h._unclean = lambda proof: None
    assert h._clear_and_prove(["http://127.0.0.1:1"], clear_storage=True, clear_cache=True) is None
    assert "Page.resetNavigationHistory" not in devtools.sent and not h.forgotten


def test_a_contacted_scheme_gives_that_origin_only():
    assert origins_of(contacted=[("127.0.0.1", 8000, "http")]) == ["http://127.0.0.1:8000"]
    assert origins_of(contacted=[("example.org", 443, "https"), ("example.org", 443, None)]) == [
        "http://example.org:443", "https://example.org"]
    assert origins_of(contacted=[("h", 80, "https")]) == ["https://h:80"]


def test_third_party_storage_keys_pair_each_origin_with_the_other_top_level_sites():
    from browserd.browser.hygiene import partition_keys

    assert partition_keys(["http://127.0.0.2:81", "http://127.0.0.1:80"], ["http://127.0.0.1/page"]) == [
        "http://127.0.0.2:81/^0http://127.0.0.1"]
    keys = partition_keys(["https://cdn.other.org", "https://www.shop.example.co.uk"],
                          ["https://www.shop.example.co.uk/x"])
    # the registrable domain is not known without the public suffix list: every suffix is tried
    assert keys == ["https://cdn.other.org/^0https://co.uk", "https://cdn.other.org/^0https://example.co.uk",
                    "https://cdn.other.org/^0https://shop.example.co.uk",
                    "https://cdn.other.org/^0https://www.shop.example.co.uk"]
    assert partition_keys(["http://[::1]:8080"], ["http://localhost/"]) == ["http://[::1]:8080/^0http://localhost"]
    assert partition_keys(["http://a.test"], ["data:text/html,x", "not a url"]) == []


def test_past_the_bound_of_third_party_keys_the_reset_is_not_proven():
    """A page whose popups reached thousands of hosts must not make the reset build and
    send millions of keys: past the bound the browser is replaced instead."""
    import pytest

    from browserd.browser.devtools import ResetUnproven
    from browserd.browser.hygiene import MAX_PARTITION_KEYS, partition_keys

    hosts = [f"http://h{k}.test" for k in range(100)]
    assert len(hosts) * len(hosts) > MAX_PARTITION_KEYS
    with pytest.raises(ResetUnproven, match="third-party"):
        partition_keys(hosts, hosts)
    assert len(partition_keys(hosts[:40], hosts[:40])) == 40 * 39  # each under every other site
