"""A real Scrapy crawl whose statuses come from browserd: Scrapy's own RetryMiddleware
retries a 503, and a 404 reaches a callback that lists it in ``handle_httpstatus_list``.

    python tests/support/scrapy_status_crawl.py STATE_DIR OUT.jsonl FLAKY_URL MISSING_URL
"""

import sys

import scrapy
from scrapy.crawler import CrawlerProcess


class StatusProbe(scrapy.Spider):
    name = "status-probe"

    def __init__(self, flaky_url, missing_url, **kwargs):
        super().__init__(**kwargs)
        self.flaky_url, self.missing_url = flaky_url, missing_url

    async def start(self):  # Scrapy >= 2.13
        for request in self.start_requests():
            yield request

    def start_requests(self):
        yield scrapy.Request(self.flaky_url, meta={"browserd": True, "kind": "flaky"}, dont_filter=True)
        yield scrapy.Request(self.missing_url, meta={"browserd": True, "kind": "missing",
                                                     "handle_httpstatus_list": [404]}, dont_filter=True)

    def parse(self, response):
        yield {"kind": response.meta["kind"], "status": response.status,
               "header": (response.headers.get("X-Honest") or b"").decode(),
               "text": response.css("#marker::text").get()}


def main():
    state_dir, out, flaky_url, missing_url = sys.argv[1:5]
    process = CrawlerProcess(settings={
        "DOWNLOADER_MIDDLEWARES": {"browserd_client.scrapy_middleware.BrowserdMiddleware": 950},
        "BROWSERD_STATE_DIR": state_dir, "BROWSERD_TIMEOUT": 30, "BROWSERD_CONCURRENCY": 2,
        "FEEDS": {out: {"format": "jsonlines"}}, "ROBOTSTXT_OBEY": False, "TELNETCONSOLE_ENABLED": False,
        "CLOSESPIDER_TIMEOUT": 120, "RETRY_ENABLED": True, "RETRY_TIMES": 2, "LOG_LEVEL": "INFO",
    })
    process.crawl(StatusProbe, flaky_url=flaky_url, missing_url=missing_url)
    process.start()


if __name__ == "__main__":
    main()
