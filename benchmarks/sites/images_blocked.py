"""The benchmark's blocking section: ``generic`` with images blocked, to set against
``generic`` on the same many-image page."""

from browserd.sites.generic import Generic


class ImagesBlocked(Generic):
    name = "images_blocked"
    description = "generic, with images blocked through the DevTools protocol (benchmark)"
    block = ("images",)
