"""CURVE on the bus: real sockets on loopback TCP, real keys made by ``python -m pipeline.keys``.

Only a subscriber holding the bus's keys receives; one with another installation's keys or none
receives nothing, and neither does a correctly keyed subscriber from a stranger's publisher on
its endpoint. Every negative is checked while the same subscriber, or its correctly keyed twin,
demonstrably receives, so "nothing arrived" cannot mean "nothing was sent". Strangers hammering
a publisher cost one log line per interval. The checks that keep a plain bus on its host, the
key folder's errors and the key command's refusals are here too.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from pipeline.bus import curve
from pipeline.bus.keyfiles import Curve, load_curve
from pipeline.bus.sockets import publisher, subscriber
from pipeline.keys import PUBLIC_FILE, SECRET_FILE
from pipeline.stage.ratelog import INTERVAL_S
from tests.support.ports import free_port
from tests.support.stages import REPO, clean_env
from tests.support.waiting import wait_for

QUIET_S = 1.0  # how long a refused subscriber is watched while its keyed twin receives


def make_keys(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.keys", str(folder), *args], cwd=REPO, env=clean_env(),
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def key_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """This installation's keys and a second, unrelated installation's."""
    root = tmp_path_factory.mktemp("keys")
    for name in ("ours", "theirs"):
        assert make_keys(root / name).returncode == 0
    return root / "ours", root / "theirs"


@pytest.fixture
def ours(key_folders: tuple[Path, Path]) -> Curve:
    return load_curve(key_folders[0])


@pytest.fixture
def theirs(key_folders: tuple[Path, Path]) -> Curve:
    return load_curve(key_folders[1])


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    with zmq.Context() as context:
        yield context


def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def drain(sock: zmq.Socket) -> list[bytes]:
    got = []
    while sock.poll(0):
        got.append(sock.recv())
    return got


def publish_while(pub: zmq.Socket, tag: bytes, keep_going: Callable[[], bool], timeout: float = 10.0) -> None:
    """Send ``tag`` every 10 ms for as long as ``keep_going()`` is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while keep_going():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout} s")
        pub.send(tag)
        time.sleep(0.01)


def test_only_a_subscriber_with_the_bus_keys_receives(ctx: zmq.Context, ours: Curve, theirs: Curve) -> None:
    at = endpoint()
    with curve.authenticated(ctx, ours) as auth, publisher(ctx, [at], 1000, curve=ours) as pub, \
            subscriber(ctx, [at], [b""], 1000, curve=ours) as keyed, \
            subscriber(ctx, [at], [b""], 1000, curve=theirs) as other_keys, \
            subscriber(ctx, [at], [b""], 1000) as plain:
        received: dict[str, list[bytes]] = {"keyed": [], "other_keys": [], "plain": []}
        socks = {"keyed": keyed, "other_keys": other_keys, "plain": plain}

        def collect() -> bool:
            for name, sock in socks.items():
                received[name] += drain(sock)
            return len(received["keyed"]) < 20

        publish_while(pub, b"frame", collect)
        quiet_until = time.monotonic() + QUIET_S
        publish_while(pub, b"frame", lambda: collect() or time.monotonic() < quiet_until)
        assert len(received["keyed"]) >= 20 + QUIET_S * 50, "the keyed subscriber stopped receiving"
        assert received["other_keys"] == [] and received["plain"] == []
        assert auth.admitted >= 1


def test_a_stranger_publisher_on_a_subscribed_endpoint_delivers_nothing(
        ctx: zmq.Context, ours: Curve, theirs: Curve, caplog: pytest.LogCaptureFixture) -> None:
    """A publisher without the bus's secret key, keyed otherwise or plain, is not a publisher of the bus."""
    ours_at, keyed_stranger_at, plain_stranger_at = endpoint(), endpoint(), endpoint()
    with zmq.Context() as strangers, caplog.at_level(logging.WARNING, "camserver.bus"), \
            curve.authenticated(strangers, theirs), \
            publisher(strangers, [keyed_stranger_at], 1000, curve=theirs) as keyed_stranger, \
            publisher(strangers, [plain_stranger_at], 1000) as plain_stranger, \
            curve.authenticated(ctx, ours), publisher(ctx, [ours_at], 1000, curve=ours) as pub, \
            subscriber(ctx, [keyed_stranger_at, plain_stranger_at, ours_at], [b""], 1000, curve=ours) as sub:
        received: list[bytes] = []

        def collect() -> bool:
            keyed_stranger.send(b"keyed stranger")
            plain_stranger.send(b"plain stranger")
            received.extend(drain(sub))
            return received.count(b"ours") < 20

        publish_while(pub, b"ours", collect)
        quiet_until = time.monotonic() + QUIET_S
        publish_while(pub, b"ours", lambda: collect() or time.monotonic() < quiet_until)
        assert set(received) == {b"ours"}
    said = caplog.text
    # What the subscriber's log tells the person wondering where the frames are. A plain publisher
    # may hang up before the subscriber reads why, so the reason it gives may be the hedged one.
    for stranger in (keyed_stranger_at, plain_stranger_at):
        assert f"the CURVE handshake with {stranger} failed: the publisher there does not" in said
    assert ours_at not in said


def test_a_client_with_a_pair_of_its_own_is_admitted_once_its_public_key_is_in_the_folder(
        ctx: zmq.Context, key_folders: tuple[Path, Path], tmp_path: Path) -> None:
    """What pipeline.keys promises: every *.key in the folder is admitted, not only the bus's own."""
    folder = tmp_path / "ours"
    shutil.copytree(key_folders[0], folder)
    host_pair = tmp_path / "host3"
    assert make_keys(host_pair).returncode == 0
    shutil.copy(host_pair / PUBLIC_FILE, folder / "host3.key")
    ours, host3 = load_curve(folder), load_curve(host_pair)
    at = endpoint()
    with curve.authenticated(ctx, ours) as auth, publisher(ctx, [at], 1000, curve=ours) as pub, \
            ctx.socket(zmq.SUB) as sub:
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.CURVE_SERVERKEY, ours.public)
        sub.setsockopt(zmq.CURVE_PUBLICKEY, host3.public)
        sub.setsockopt(zmq.CURVE_SECRETKEY, host3.secret)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(at)
        received: list[bytes] = []

        def collect() -> bool:
            received.extend(drain(sub))
            return len(received) < 5

        publish_while(pub, b"frame", collect)
        assert auth.admitted == 1 and auth.refused == 0


def test_a_curve_publisher_without_an_authenticator_is_a_programming_error(ctx: zmq.Context, ours: Curve) -> None:
    with pytest.raises(RuntimeError, match=r"curve\.authenticated"):
        publisher(ctx, [endpoint()], 10, curve=ours)
    with curve.authenticated(ctx, None):  # the plain bus needs no branch in a stage
        publisher(ctx, [endpoint()], 10).close()


def null_mechanism_greeting() -> bytes:
    """ZMTP 3.0's greeting of a peer without CURVE: signature, version, mechanism NULL, as-server 0, filler."""
    return b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + bytes(31)


def stranger_without_keys(port: int) -> None:
    """One connection of a stranger speaking plain ZMTP, held until the publisher hangs up on it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(null_mechanism_greeting())
        while conn.recv(4096):
            pass


def test_strangers_hammering_a_publisher_cost_one_log_line_per_kind_and_interval(
        ctx: zmq.Context, ours: Curve, theirs: Curve, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    at = f"tcp://127.0.0.1:{port}"
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), curve.authenticated(ctx, ours) as auth, \
            publisher(ctx, [at], 10, curve=ours):
        for _ in range(300):  # each is refused for speaking without CURVE, and the connection closed
            stranger_without_keys(port)
        # Strangers who know the bus's public key (it is the less secret half) but not its secret key
        # pass the handshake's cryptography and are refused by ZAP.
        strangers = []
        for _ in range(60):
            sock = ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.CURVE_SERVERKEY, ours.public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, theirs.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, theirs.secret)
            sock.connect(at)
            strangers.append(sock)
        wait_for(lambda: auth.refused >= 60, 10, "ZAP to refuse every stranger")
        for sock in strangers:
            sock.close()
    intervals = 1 + int((time.monotonic() - started) / INTERVAL_S)
    lines = [record.getMessage() for record in caplog.records]
    no_curve = [line for line in lines if "it does not use CURVE" in line]
    refused = [line for line in lines if line.startswith("refused a bus client at 127.0.0.1")]
    assert 1 <= len(no_curve) <= intervals and 1 <= len(refused) <= intervals
    assert theirs.public.decode() in refused[0] and str(ours.folder) in refused[0]
    assert len(lines) < 10, lines  # and pyzmq's authenticator says nothing per request, even at DEBUG


@pytest.mark.parametrize("endpoints", [
    ["tcp://127.0.0.1:5555"], ["tcp://127.5.6.7:5555"], ["tcp://[::1]:5555"], ["tcp://[::ffff:127.0.0.1]:5555"],
    ["tcp://localhost:5555"], ["ipc:///tmp/camserver-frames"], ["inproc://frames"],
])
def test_a_plain_bus_may_stay_on_this_host(endpoints: list[str]) -> None:
    curve.check_bind(endpoints, None, allow_insecure=False)
    curve.check_connect(endpoints, None, allow_insecure=False)


@pytest.mark.parametrize("leaving", [
    "tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://[::]:5555", "tcp://192.168.1.20:5555", "tcp://eth0:5555",
    "tcp://camera-pi.local:5555", "tcp://[fe80::1]:5555", "udp://127.0.0.1:5555",
])
def test_a_plain_bus_leaving_this_host_is_refused_naming_the_endpoint_and_the_fix(
        leaving: str, ours: Curve) -> None:
    for check, verb in ((curve.check_bind, "bind"), (curve.check_connect, "connect to")):
        with pytest.raises(ValueError) as refused:
            check(["tcp://127.0.0.1:5555", leaving], None, allow_insecure=False)
        message = str(refused.value)
        assert f"refusing to {verb} {leaving}" in message
        assert "python -m pipeline.keys DIR" in message and "--curve-keys DIR (CAMSERVER_CURVE_KEYS)" in message
        assert "--insecure-bus" in message
        check([leaving], ours, allow_insecure=False)
        check([leaving], None, allow_insecure=True)


def test_a_loopback_interface_may_be_bound_by_name_but_not_connected_to() -> None:
    """ZeroMQ binds interface names; ``lo`` is this host. A connect resolves names by DNS instead."""
    if not Path("/sys/class/net/lo").exists():
        pytest.skip("no Linux interface named lo here")
    curve.check_bind(["tcp://lo:5555"], None, allow_insecure=False)
    with pytest.raises(ValueError, match="tcp://lo:5555"):
        curve.check_connect(["tcp://lo:5555"], None, allow_insecure=False)


@pytest.fixture
def folder(key_folders: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of our keys to spoil, modes kept."""
    copy = tmp_path / "keys"
    shutil.copytree(key_folders[0], copy)
    return copy


def test_load_curve_reads_the_pair_and_keeps_the_secret_out_of_its_repr(folder: Path) -> None:
    keys = load_curve(folder)
    assert zmq.curve_public(keys.secret) == keys.public and len(keys.public) == 40
    assert keys.folder == folder and keys.secret.decode() not in repr(keys)


def test_load_curve_names_the_missing_folder_and_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=f"no CURVE keys folder at {tmp_path / 'nope'}: make one with python -m "
                                      f"pipeline.keys"):
        load_curve(tmp_path / "nope")


def test_load_curve_names_a_missing_secret_key(folder: Path) -> None:
    (folder / SECRET_FILE).unlink()
    with pytest.raises(OSError, match=f"no secret key {folder / SECRET_FILE}"):
        load_curve(folder)


def test_load_curve_refuses_a_secret_key_others_may_read(folder: Path) -> None:
    for mode in (0o644, 0o640, 0o604):
        (folder / SECRET_FILE).chmod(mode)
        with pytest.raises(OSError) as refused:
            load_curve(folder)
        assert str(refused.value) == (f"{folder / SECRET_FILE} is accessible by group or others (mode {mode:04o}): "
                                      f"run chmod 600 {folder / SECRET_FILE}")


@pytest.mark.parametrize(("file", "spoil", "complaint"), [
    (SECRET_FILE, lambda text: text.replace("public-key", "publik-key"), "holds no public-key"),
    (SECRET_FILE, lambda text: "\n".join(line for line in text.splitlines() if "secret-key" not in line),
     "holds no secret-key"),
    (SECRET_FILE, lambda text: text.replace('secret-key = "', 'secret-key = "~'), "secret-key is not a 40-character"),
    (PUBLIC_FILE, lambda text: "garbage\n", "holds no public-key"),
    ("host3.key", lambda text: text.replace('public-key = "', 'public-key = "x'), "public-key is not a 40-character"),
])
def test_load_curve_names_a_malformed_key_file(folder: Path, file: str, spoil: Callable[[str], str],
                                               complaint: str) -> None:
    source = folder / (PUBLIC_FILE if file == "host3.key" else file)
    (folder / file).write_text(spoil(source.read_text()))
    (folder / SECRET_FILE).chmod(0o600)
    with pytest.raises(OSError) as refused:
        load_curve(folder)
    assert str(refused.value).startswith(str(folder / file)) and complaint in str(refused.value)


def test_load_curve_refuses_halves_of_two_pairs(folder: Path, key_folders: tuple[Path, Path]) -> None:
    shutil.copy(key_folders[1] / PUBLIC_FILE, folder / PUBLIC_FILE)
    with pytest.raises(OSError, match="hold different keys: copy the keys folder again"):
        load_curve(folder)


def test_the_key_command_makes_a_private_folder_and_never_overwrites_without_force(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "keys"
    made = make_keys(folder)
    assert made.returncode == 0, made.stderr
    assert folder.stat().st_mode & 0o777 == 0o700 and (folder / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert f"--curve-keys {folder}" in made.stdout and f"CAMSERVER_CURVE_KEYS={folder}" in made.stdout
    assert "scp" in made.stdout
    assert sorted(path.name for path in folder.iterdir()) == [PUBLIC_FILE, SECRET_FILE]
    first = load_curve(folder)

    again = make_keys(folder)
    assert again.returncode == 1 and "--force" in again.stderr and again.stdout == ""
    assert load_curve(folder) == first

    forced = make_keys(folder, "--force")
    assert forced.returncode == 0, forced.stderr
    replaced = load_curve(folder)
    assert replaced.public != first.public and replaced.secret != first.secret
    assert sorted(path.name for path in folder.iterdir()) == [PUBLIC_FILE, SECRET_FILE]
