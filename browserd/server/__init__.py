"""The daemon's server: the listening socket, connections, request dispatch.

- :mod:`.listen`: the listening socket from the configuration (:func:`bind`)
- :mod:`.connections`: :class:`Server`, the accept loop, handshake, admission, framing
- :mod:`.admission`: the pending-handshake budget and the rate-limited failure log
- :mod:`.requests`: :class:`Requests`, one request frame in, one reply frame out
- :mod:`.client_watch`: aborts the job of a client that left
"""

from .connections import Server
from .listen import BindError, bind, secure_socket
from .requests import Requests

__all__ = ["BindError", "Requests", "Server", "bind", "secure_socket"]
