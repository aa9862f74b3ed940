"""What the tests share, each helper defined once: test modules import from here, never from each other.

By concern:
  ports       free loopback ports (one slice per pytest-xdist worker), a test's endpoints
  stages      starting the pipeline's processes and reaping them
  waiting     polling until something outside the test is true
  web         HTTP and WebSocket clients of the gateway, its web app in the test process
  browser     headless Chromium, and the state of the page it shows
  media       pictures, JPEGs and video files as cameras make them
  bus         the ZeroMQ bus seen by one more subscriber
  recordings  recordings folders, and small disks to fill
  processes   what /proc says of a process; the process managers
  detection   the detector's per-camera logic, run in the test process
  configs     config files: a shared example of cameras, configs on free ports
  clips       synthetic clips with known truth (also used by bench/conditions.py)
  clock       a clock the test sets by hand

Nothing here imports pytest at the package level, so bench/ can import ``tests.support.clips``
without the test tools. tests/conftest.py makes the fixtures among these helpers available to
every test by name.
"""
