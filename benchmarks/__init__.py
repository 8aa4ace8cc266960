"""Benchmarks: browserd against an in-process Selenium driver, pool and naive launches.

Run ``python -m benchmarks.run [--quick] [--out DIR] [--only SECTION]`` from the repo root.
"""
