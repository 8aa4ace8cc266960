"""What a Browser drops before the daemon's fork (STYLE trap 3): every socket it opened,
since DaemonContext closes their descriptors and a later socket may reuse the numbers."""

from __future__ import annotations

from browserd.browser import Browser, LaunchSpec


class Closable:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class FakeDriver:
    def __init__(self):
        self.command_executor = Closable()


def test_drop_http_connections_closes_the_webdriver_and_devtools_sockets():
    spec = LaunchSpec(chromium="/usr/bin/chromium", chromedriver="/usr/bin/chromedriver", grid_url=None)
    browser = Browser("b1", spec, workdir=None)
    browser.driver, browser.hygiene = FakeDriver(), Closable()  # the start's reset opened DevTools
    browser.drop_http_connections()
    assert browser.driver.command_executor.closed and browser.hygiene.closed
