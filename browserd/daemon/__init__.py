"""The daemon process: everything from ``browserd start`` to its last exit.

- :mod:`.errors`: the exit codes (a documented contract) and the one tree of fatal
  errors, each carrying its exit status (``HaltServer(reason, exit_status)``)
- :mod:`.main`: the daemon's main: ``start`` (detach) and ``run`` (foreground)
- :mod:`.arbiter`: the :class:`~.arbiter.Arbiter`: prepare, serve, signals, the one
  shutdown path; :mod:`.signals` (the signal queue), :mod:`.status` (the status reply)
- :mod:`.launch`: what the daemon launches (chromedriver, Chromium, sandbox), from config
- :mod:`.statedir`, :mod:`.statefiles`, :mod:`.pidfile`: the state directory and its
  files; :mod:`.stale`: the sweep after a daemon that died
- :mod:`.daemonize`: DaemonContext and the readiness pipe; :mod:`.logs`: the log file;
  :mod:`.systemd`: sd_notify and the watchdog
"""
