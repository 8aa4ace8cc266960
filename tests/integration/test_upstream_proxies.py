"""Per-job upstream proxies on real Chromium: each job's traffic goes through the proxy it
named (or its pool's pick, or none), and only that job's; a failing proxy is
``proxy_failed``; a proxy's password appears nowhere."""

from __future__ import annotations

import json

import pytest

from browserd_client import ProxyFailed
from tests.support.forward_proxies import HttpConnectProxy, Socks5Proxy

PASSWORD_A, PASSWORD_B = "s3cret-A-pw", "s3cret-B-pw"


@pytest.fixture
def proxies():
    with Socks5Proxy("alice", PASSWORD_A) as a, HttpConnectProxy("bob", PASSWORD_B) as b:
        yield a, b


def _config(tmp_path, a, b) -> str:
    path = tmp_path / "browserd.toml"
    path.write_text(f"""
[proxies.both]
urls = [{json.dumps(a.url())}, {json.dumps(b.url())}]
rotation = "round-robin"
""")
    return str(path)


def test_each_job_goes_through_its_own_proxy_or_none(start_daemon, pages, proxies, tmp_path):
    a, b = proxies
    daemon = start_daemon(1, "--config", _config(tmp_path, a, b))
    page_host = f"127.0.0.1:{pages.port}"
    plan = [None, a, b, None, b, a, None, "pool", None, "pool", None]  # every route change opens new tunnels
    seen = []
    with daemon.client() as client:
        for n, route in enumerate(plan):
            before = (len(a.tunnels), len(b.tunnels))
            if route == "pool":
                options = {"proxy_pool": "both"}
            else:
                options = {"proxy": route.url()} if route is not None else None
            page = client.fetch(pages.url("/static", m=f"job{n}"), options=options, timeout=30)
            assert f"job{n}" in page.source
            new_a, new_b = a.tunnels[before[0]:], b.tunnels[before[1]:]
            seen.append((route if route in (None, "pool") else route.scheme, len(new_a), len(new_b)))
            if route is None:
                assert not new_a and not new_b, (n, new_a, new_b)
            elif route is a:
                assert page_host in new_a and not new_b, (n, new_a, new_b)
            elif route is b:
                assert page_host in new_b and not new_a, (n, new_a, new_b)
    print("route, tunnels via socks5, via http:", seen)
    # The pool alternated: its two jobs went one through each proxy.
    pool_jobs = [s for s in seen if s[0] == "pool"]
    assert sorted((x > 0, y > 0) for _, x, y in pool_jobs) == [(False, True), (True, False)]


def test_wrong_password_is_proxy_failed_and_no_password_is_shown(start_daemon, pages, proxies):
    a, b = proxies
    daemon = start_daemon(1)
    wrong = "wrong-pw-123"
    with daemon.client() as client:
        for proxy in (a, b):
            with pytest.raises(ProxyFailed) as info:
                client.fetch(pages.url("/static"), options={"proxy": proxy.url(wrong)}, timeout=30)
            print(proxy.scheme, "->", info.value)
            assert f"127.0.0.1:{proxy.port}" in str(info.value) and wrong not in str(info.value)
            assert info.value.retryable
        page = client.fetch(pages.url("/static", m="after"), options={"proxy": a.url()}, timeout=30)
        assert "after" in page.source
        status = json.dumps(client.status())
    assert a.auth_failures >= 1 and b.auth_failures >= 1
    log = daemon.log
    for secret in (wrong, PASSWORD_A):
        assert secret not in log and secret not in status, f"{secret} leaked"


def test_bad_proxy_options_are_clear_bad_requests(shared_daemon, pages):
    from browserd_client import BadRequest

    with shared_daemon.client() as client:
        for options, fragment in [({"proxy": "ftp://h:1"}, "scheme"), ({"proxy": "socks5://h"}, "port"),
                                  ({"proxy": "https://u:pw@h:1"}, "https"), ({"proxy_pool": "nope"}, "nope"),
                                  ({"bogus": 1}, "bogus")]:
            with pytest.raises(BadRequest, match=fragment) as info:
                client.fetch(pages.url("/static"), options=options)
            assert "pw" not in str(info.value)
