"""Runs the seed guide's example-app.py unchanged.

The example calls connect_to_db, which the guide leaves undefined; this
wrapper provides it (printing the password it is given, so a test can see
which value the application loaded) and reports when the watchdog observer
is running, then executes the script as __main__.
"""
import runpy
import sys

import watchdog.observers


def connect_to_db(password):
    print("connect_to_db password=" + password, flush=True)
    return object()


_start = watchdog.observers.Observer.start


def _started(self):
    _start(self)
    print("wrapper: observer started", flush=True)


watchdog.observers.Observer.start = _started

runpy.run_path(sys.argv[1], init_globals={"connect_to_db": connect_to_db}, run_name="__main__")
