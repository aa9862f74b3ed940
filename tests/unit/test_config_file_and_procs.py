"""The TOML config file: layering under variables and flags, per-camera settings, errors naming the key,
and the processes (Procfile, supervisord, systemd) generated from it.

What needs a process (a stage stopped by a bad file, systemd-analyze on the units) is in
tests/stages/test_config_file_with_stages_and_systemd.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import capture, detector, gateway, logger, procs, recorder
from pipeline.config import loading
from pipeline.config.options import Config, ConfigError
from pipeline.motion.camera import motion_settings
from tests.support.configs import TWO_CAMERAS, write
from tests.support.stages import REPO


def load(stage: str, names: tuple[str, ...], path: Path, *argv: str, **environ: str) -> Config:
    return loading.load(stage, names, "test", ["--config", str(path), *argv], environ)


def test_capture_takes_its_cameras_table_over_the_top_level(tmp_path: Path) -> None:
    cfg = load("capture", capture.OPTIONS, write(tmp_path, TWO_CAMERAS), "--camera", "porch")
    assert (cfg.camera, cfg.source.kind, cfg.seed, cfg.log_level) == ("porch", "demo", 3, "DEBUG")
    assert cfg.frames == ("tcp://127.0.0.1:5560",)  # the first local camera's default port
    yard = load("capture", capture.OPTIONS, write(tmp_path, TWO_CAMERAS), CAMSERVER_CAMERA="yard")
    assert yard.frames == ("tcp://127.0.0.1:6000",)


def test_variables_and_flags_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_CAMERAS)
    cfg = load("capture", capture.OPTIONS, path, "--camera", "porch", "--seed", "9", CAMSERVER_SEED="7",
               CAMSERVER_LOG_LEVEL="ERROR", CAMSERVER_FRAMES="tcp://127.0.0.1:7000")
    assert (cfg.seed, cfg.log_level, cfg.frames) == (9, "ERROR", ("tcp://127.0.0.1:7000",))


def test_the_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_CAMERAS)
    cfg = loading.load("capture", capture.OPTIONS, "test", ["--camera", "yard"], {"CAMSERVER_CONFIG": str(path)})
    assert cfg.camera == "yard" and cfg.threshold == 0.3  # capture does not declare threshold


def test_shared_stages_subscribe_to_every_local_camera_and_the_remote_ones(tmp_path: Path) -> None:
    path = write(tmp_path, 'remote_frames = ["tcp://pi.local:5555"]\n' + TWO_CAMERAS)
    for module, name in ((detector, "detector"), (recorder, "recorder"), (gateway, "gateway"), (logger, "logger")):
        cfg = load(name, module.OPTIONS, path)
        assert cfg.frames == ("tcp://127.0.0.1:5560", "tcp://127.0.0.1:6000", "tcp://pi.local:5555"), name


def test_the_detector_gets_each_cameras_own_settings(tmp_path: Path) -> None:
    cfg = load("detector", detector.OPTIONS, write(tmp_path, TWO_CAMERAS), CAMSERVER_MIN_AREA="50")
    assert cfg.pixel_threshold == 20 and cfg.threshold == 0.3  # for cameras the file does not name
    porch, yard, shed = cfg.cameras["porch"], cfg.cameras["yard"], cfg.cameras["shed"]
    assert porch.mask.rects == ((0, 0, 10, 10), (20, 20, 5, 5)) and porch.threshold == 0.3
    assert (yard.threshold, yard.pixel_threshold, yard.min_area) == (1.5, 20, 50)
    assert shed.threshold == 2
    settings = motion_settings(yard)
    assert settings.threshold == 1.5


def test_the_recorder_gets_each_cameras_own_settings(tmp_path: Path) -> None:
    cfg = load("recorder", recorder.OPTIONS, write(tmp_path, TWO_CAMERAS))
    assert (cfg.pre_seconds, cfg.cameras["porch"].pre_seconds, cfg.cameras["yard"].pre_seconds) == (3, 3, 0)


def test_without_cameras_the_file_configures_the_one_camera_of_today(tmp_path: Path) -> None:
    path = write(tmp_path, 'source = "demo"\nframes = "tcp://127.0.0.1:6001"\nfps = 5\n')
    cfg = load("capture", capture.OPTIONS, path)
    assert (cfg.camera, cfg.source.kind, cfg.fps, cfg.frames) == ("cam0", "demo", 5, ("tcp://127.0.0.1:6001",))
    assert load("detector", detector.OPTIONS, path).frames == ("tcp://127.0.0.1:6001",)


@pytest.mark.parametrize(("text", "argv", "message"), [
    ("fps = 500\n", (), "cameras.toml: fps '500': must be between 0.1 and 120"),
    ('[cameras.a]\nsource = "demo"\nfpss = 5\n', (), "cameras.a.fpss: unknown camera setting"),
    ("colour = 1\n", (), "colour: unknown setting"),
    ('[cameras.a]\nsource = "demo"\nfps = "fast"\n', (), "cameras.a.fps 'fast': expected a number"),
    ('[cameras."a b"]\nsource = "demo"\n', (), "[cameras.a b]: bad camera id"),
    ('[cameras.a]\nsource = "demo"\n[cameras.b]\nsource = "demo"\n', (), "choose one with --camera"),
    ('[cameras.a]\nsource = "demo"\n', ("--camera", "b"), "has no [cameras.b] table"),
    ('[cameras.a]\nremote = true\n', ("--camera", "a"), "camera a is captured on another host"),
    ('[cameras.a]\nremote = true\nsource = "demo"\n', (), "a remote camera's source is set on the host"),
    ('frames = "tcp://127.0.0.1:1"\n[cameras.a]\nsource = "demo"\n', (), "set frames per camera"),
    ('stages = ["capture", "printer"]\n', (), "unknown stage 'printer'"),
    ('remote_frames = ["udp://x"]\n', (), "remote_frames: 'udp://x' is not tcp://HOST:PORT"),
    ("fps = [1, 2\n", (), "not valid TOML"),
    ("mask = {a = 1}\n", (), "mask: expected a string, a number"),
    ('camera = "x"\n', (), "camera ids are the names of the [cameras.ID] tables"),
    ('password = "hunter2"\nport = 0\n', (), "port '0': must be between 1 and 65535"),
])
def test_a_bad_file_stops_start_up_naming_the_key(tmp_path: Path, text: str, argv: tuple[str, ...],
                                                  message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load("capture", capture.OPTIONS, write(tmp_path, text), *argv)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nowhere\.toml"):
        load("detector", detector.OPTIONS, tmp_path / "nowhere.toml")


def test_procs_makes_one_capture_per_local_camera_and_one_of_each_other_stage(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_CAMERAS)
    found = procs.processes(path)
    assert [p.name for p in found] == ["capture-porch", "capture-yard", "detector", "recorder", "gateway", "logger",
                                      "encoder"]
    text = procs.procfile(found, (REPO / "Procfile").read_text())
    assert f"capture-yard: exec python -m pipeline.capture --no-log-time --config {path} --camera yard\n" in text
    only_capture = write(tmp_path, 'stages = ["capture"]\n' + TWO_CAMERAS)
    assert [p.name for p in procs.processes(only_capture)] == ["capture-porch", "capture-yard"]


def test_the_supervisord_form_keeps_supervisor_confs_settings(tmp_path: Path) -> None:
    text = procs.supervisor(procs.processes(write(tmp_path, TWO_CAMERAS)), (REPO / "supervisor.conf").read_text(),
                            REPO)
    sections = procs._sections(text)
    shipped = procs._sections((REPO / "supervisor.conf").read_text())
    assert sections["supervisord"] == shipped["supervisord"]
    porch = sections["program:capture-porch"]
    assert porch["command"].endswith(f"-m pipeline.capture --config {tmp_path / 'cameras.toml'} --camera porch")
    assert {k: v for k, v in porch.items() if k not in ("command", "directory")} == {
        k: v for k, v in shipped["program:capture"].items() if k not in ("command", "directory")}
    assert "%(here)s" not in text


def test_the_example_file_is_valid() -> None:
    found = procs.processes(REPO / "cameras.example.toml")
    assert [p.name for p in found][:2] == ["capture-porch", "capture-garden"]


def test_the_optional_stages_run_when_the_file_configures_them(tmp_path: Path) -> None:
    path = write(tmp_path, 'on_recording_saved = "echo {path}"\nmqtt_host = "broker.local"\n' + TWO_CAMERAS)
    found = procs.processes(path)
    assert [p.name for p in found][-2:] == ["hooks", "mqtt"]
    text = procs.procfile(found, (REPO / "Procfile").read_text())
    assert f"hooks: exec python -m pipeline.hooks --no-log-time --config {path}\n" in text
    sections = procs._sections(procs.supervisor(found, (REPO / "supervisor.conf").read_text(), REPO))
    assert sections["program:mqtt"]["command"].endswith(f"-m pipeline.mqtt --config {path}")
    listed = write(tmp_path, 'stages = ["gateway", "mqtt"]\n' + TWO_CAMERAS)
    assert [p.name for p in procs.processes(listed)] == ["gateway", "mqtt"]


def test_a_file_without_cameras_runs_one_capture_with_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'source = "demo"\n')
    assert [(p.name, p.args) for p in procs.processes(path)] == [
        (stage, ("--config", str(path)))
        for stage in ("capture", "detector", "recorder", "gateway", "logger", "encoder")]
