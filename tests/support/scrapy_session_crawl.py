"""A real Scrapy crawl that logs in through browserd and keeps the session in Scrapy's
cookie jar (issue 14), one reactor per process.

    python tests/support/scrapy_session_crawl.py STATE_DIR OUT.jsonl BASE_URL

BASE_URL is a tests/support/session_pages.py server. The spider:
1. POSTs the login form with a ``FormRequest`` through browserd (USER_AGENT and an
   extra header set), and records what came back;
2. GETs /account through browserd, asking for a screenshot and the page's title
   (``evaluate``): the session cookie must come from Scrapy's jar;
3. GETs /account with Scrapy's own downloader: the jar must hold the session cookie and
   the cookie the account page's script set in the browser;
4. asks meta["browserd"] for something it cannot honour (headers): an error at the request.
Every outcome is an item in OUT.jsonl: {"step", "text", "via", ...}.
"""

import struct
import sys

import scrapy
from scrapy.crawler import CrawlerProcess

USER_AGENT = "EdgeBot/1.0 (scrapy; +http://127.0.0.1/, commas kept)"


def png_size(data: bytes):
    if not data or data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return list(struct.unpack(">II", data[16:24]))


class Login(scrapy.Spider):
    name = "login"

    def __init__(self, base, **kwargs):
        super().__init__(**kwargs)
        self.base = base

    async def start(self):  # Scrapy >= 2.13
        for request in self.start_requests():
            yield request

    def start_requests(self):
        yield scrapy.FormRequest(self.base + "/login", formdata={"user": "ann", "pw": "s3cret"},
                                 headers={"X-Crawl": "edge"}, meta={"browserd": True}, callback=self.logged_in)
        yield scrapy.Request(self.base + "/echo", meta={"browserd": {"headers": {"X": "1"}}},
                             callback=self.parse_never, errback=self.refused, dont_filter=True)

    def logged_in(self, response):
        yield {"step": "login", "text": response.css("#msg::text").get(), "via": "browserd" in response.flags,
               "status": response.status}
        yield scrapy.Request(self.base + "/account", callback=self.account, meta={"browserd": {
            "screenshot": True, "evaluate": "return {title: document.title, n: [1, 2]}",
            "viewport": {"width": 800, "height": 600}}})

    def account(self, response):
        yield {"step": "account", "text": response.css("#msg::text").get(), "via": "browserd" in response.flags,
               "png_size": png_size(response.meta.get("browserd_screenshot")),
               "value": response.meta.get("browserd_value"),
               "cookies": sorted(c["name"] for c in response.meta.get("browserd_cookies") or [])}
        yield scrapy.Request(self.base + "/account?plain=1", callback=self.plain, dont_filter=True)

    def plain(self, response):
        yield {"step": "plain", "text": response.css("#msg::text").get(), "via": "browserd" in response.flags}

    def parse_never(self, response):
        yield {"step": "refused", "text": "FETCHED", "via": True}

    def refused(self, failure):
        yield {"step": "refused", "exception": type(failure.value).__name__,
               "code": getattr(failure.value, "code", None), "message": getattr(failure.value, "message", None)}


def main():
    state_dir, out, base = sys.argv[1:4]
    process = CrawlerProcess(settings={
        "DOWNLOADER_MIDDLEWARES": {"browserd_client.scrapy_middleware.BrowserdMiddleware": 950},
        "BROWSERD_STATE_DIR": state_dir,
        "BROWSERD_TIMEOUT": 30,
        "BROWSERD_CONCURRENCY": 2,
        "USER_AGENT": USER_AGENT,
        "FEEDS": {out: {"format": "jsonlines"}},
        "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False,
        "CLOSESPIDER_TIMEOUT": 120,
        "RETRY_ENABLED": False,
        "LOG_LEVEL": "INFO",
    })
    process.crawl(Login, base=base)
    process.start()


if __name__ == "__main__":
    main()
