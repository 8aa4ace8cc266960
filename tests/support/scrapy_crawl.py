"""A real Scrapy crawl through browserd's downloader middleware, one reactor per process.

    python tests/support/scrapy_crawl.py STATE_DIR OUT.jsonl JS_URL PLAIN_URL FAILING_URL GATE_BASE

JS_URL is fetched through browserd (waiting for ``#built``) and by Scrapy's own
downloader, PLAIN_URL by Scrapy's own downloader, FAILING_URL through browserd and
expected to fail. GATE_BASE is a gate page server (tests/support/gate_pages.py): a
browserd fetch of its /gate page is held there until the spider, on the reactor, has
seen that fetch held (/held) and then asks for /release. A blocked reactor could never
ask, and the page would say "held-too-long" instead of "released".
Every outcome becomes an item in OUT.jsonl: {"kind", "url", "via", "text"} or
{"kind", "error_code"}.
"""

import sys

import scrapy
from scrapy.crawler import CrawlerProcess


class Probe(scrapy.Spider):
    name = "probe"

    def __init__(self, js_url, plain_url, failing_url, gate_base, **kwargs):
        super().__init__(**kwargs)
        self.urls = js_url, plain_url, failing_url
        self.gate_base = gate_base

    async def start(self):  # Scrapy >= 2.13
        for request in self.start_requests():
            yield request

    def start_requests(self):
        js_url, plain_url, failing_url = self.urls
        rendered = {"site": "generic", "params": {"wait_for": "#built"}}
        yield scrapy.Request(js_url, meta={"browserd": rendered, "kind": "rendered"}, dont_filter=True)
        yield scrapy.Request(js_url, meta={"kind": "plain"}, dont_filter=True)
        yield scrapy.Request(plain_url, meta={"kind": "static"}, dont_filter=True)
        yield scrapy.Request(failing_url, meta={"browserd": True, "kind": "failing"}, errback=self.failed,
                             dont_filter=True)
        yield scrapy.Request(self.gate_base + "/gate?m=SCRAPY-GATE", meta={"browserd": True, "kind": "gated"},
                             dont_filter=True)
        yield scrapy.Request(self.gate_base + "/held?n=1", callback=self.held, dont_filter=True)

    def held(self, response):
        yield response.follow(self.gate_base + "/release", meta={"kind": "release"}, dont_filter=True)

    def parse(self, response):
        yield {"kind": response.meta["kind"], "url": response.url, "via": "browserd" in response.flags,
               "text": response.css("#built::text").get() or response.css("#marker::text").get(),
               "title": response.css("title::text").get()}

    def failed(self, failure):
        error = failure.value
        yield {"kind": failure.request.meta["kind"], "exception": type(error).__name__,
               "error_code": getattr(error, "code", None), "meta_error": failure.request.meta.get("browserd_error")}


def main():
    state_dir, out, js_url, plain_url, failing_url, gate_base = sys.argv[1:7]
    process = CrawlerProcess(settings={
        "DOWNLOADER_MIDDLEWARES": {"browserd_client.scrapy_middleware.BrowserdMiddleware": 950},
        "BROWSERD_STATE_DIR": state_dir,
        "BROWSERD_TIMEOUT": 30,
        "BROWSERD_CONCURRENCY": 2,
        "FEEDS": {out: {"format": "jsonlines"}},
        "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "CLOSESPIDER_TIMEOUT": 120,
        "RETRY_ENABLED": False,
        "LOG_LEVEL": "INFO",
    })
    process.crawl(Probe, js_url=js_url, plain_url=plain_url, failing_url=failing_url, gate_base=gate_base)
    process.start()


if __name__ == "__main__":
    main()
