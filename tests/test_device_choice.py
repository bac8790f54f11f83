"""`--device auto`: the cost model's choice (fed with figures measured on an H200 and on the
2-core CPU machine, docs/performance.md), the calibration's cache, auto without a GPU, and the
runner training each population where it was placed, recording it per trial."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from engine.presets import parse_preset
from engine.run import RunnerOptions
from engine.spec import TrialConfig
from engine.store import Store
from engine.train import (
    LANES,
    AutoDevice,
    DeviceSpeed,
    PopulationShape,
    Trial,
    auto_device,
    choose,
    population_shape,
    predict,
)
from engine.train import calibrate as calibration
from tui import services as actions

NOTEBOOK_STEPS = 4000  # 10 epochs of 4000 points in batches of 10
NOTEBOOK_LAYERS = (2, 10, 1)


def fitted(device: str, small: tuple[int, float], large: tuple[int, float]) -> DeviceSpeed:
    """Constants through two measured (trials, seconds) rows of the notebook's configuration,
    as the calibration fits them."""
    (n1, t1), (n2, t2) = small, large
    w1, w2 = (PopulationShape(-(-n // LANES) * LANES, 10, NOTEBOOK_LAYERS, 1).work
              for n in (n1, n2))
    s1, s2 = t1 / NOTEBOOK_STEPS, t2 / NOTEBOOK_STEPS
    work_s = (s2 - s1) / (w2 - w1)
    return DeviceSpeed(device, s1 - work_s * w1, work_s)


# docs/performance.md: "GPU figures (one NVIDIA H200)", notebook, eager: N = 512 in 2.92 s,
# 8192 in 6.78 s, 100,000 in 42.4 s; the 2-core CPU, eager: N = 8 in 0.49 s, 512 in 2.14 s
H200 = fitted("cuda:0", (512, 2.92), (100_000, 42.4))
CPU = fitted("cpu", (8, 0.49), (512, 2.14))


def notebook(n: int) -> PopulationShape:
    return PopulationShape(-(-n // LANES) * LANES, 10, NOTEBOOK_LAYERS, NOTEBOOK_STEPS)


def test_the_constants_reproduce_the_measured_rows() -> None:
    assert predict(H200, notebook(512)).seconds == pytest.approx(2.92)
    assert predict(H200, notebook(100_000)).seconds == pytest.approx(42.4)
    assert predict(H200, notebook(8192)).seconds == pytest.approx(6.78, rel=0.15)  # not fitted
    assert predict(CPU, notebook(512)).seconds == pytest.approx(2.14)
    assert H200.step_s > CPU.step_s > 0  # a launch costs more than a dispatch
    assert CPU.work_s > H200.work_s > 0  # and arithmetic less


def test_the_notebook_at_512_trials_trains_on_the_cpu() -> None:
    choice = choose([CPU, H200], notebook(512))
    assert choice.device == "cpu"
    by = {p.device: p.seconds for p in choice.predictions}
    assert by["cpu"] < by["cuda:0"]
    # with the worker pool's two shares, the CPU wins by more
    two = choose([CPU, H200], notebook(512), {"cpu": 2})
    assert two.device == "cpu"
    assert {p.device: p.seconds for p in two.predictions}["cpu"] < by["cpu"]


def test_a_hundred_thousand_trials_train_on_the_gpu() -> None:
    choice = choose([CPU, H200], notebook(100_000), {"cpu": 2})
    assert choice.device == "cuda:0"
    by = {p.device: p.seconds for p in choice.predictions}
    assert by["cuda:0"] < by["cpu"] / 3


def test_the_choice_is_the_lower_prediction_whatever_the_order() -> None:
    for n in (8, 512, 2048, 8192, 100_000):
        for order in ([CPU, H200], [H200, CPU]):
            choice = choose(order, notebook(n))
            best = min(choice.predictions, key=lambda p: p.seconds)
            assert choice.device == best.device
            assert [p.device for p in choice.predictions] == [s.device for s in order]


def test_the_set_up_is_paid_once_per_trial_and_shared_by_the_shares() -> None:
    speed = DeviceSpeed("cpu", 1e-4, 0.0, setup_s=2e-5)
    shape = notebook(512)
    assert predict(speed, shape).seconds == pytest.approx(4000 * 1e-4 + 512 * 2e-5)
    assert predict(speed, shape, 2).seconds == pytest.approx(4000 * 1e-4 + 256 * 2e-5)
    assert predict(speed, shape, 2).step_s == predict(speed, shape).step_s  # no work term


def test_a_tie_goes_to_the_first_device() -> None:
    same = DeviceSpeed("cuda:0", CPU.step_s, CPU.work_s)
    assert choose([CPU, same], notebook(512)).device == "cpu"
    with pytest.raises(ValueError):
        choose([], notebook(512))


def test_the_shape_of_a_population() -> None:
    configs = [TrialConfig(hidden=(10, 4), batch_size=25, epochs=3),
               TrialConfig(hidden=(6, 12), batch_size=25, epochs=5)]
    shape = population_shape(configs, 1010, 2, LANES)
    assert shape == PopulationShape(LANES, 25, (2, 10, 12, 1), 5 * 41)
    assert shape.work == LANES * 25 * (2 * 10 + 10 * 12 + 12)
    assert shape.depth_factor == 1.5


# --- placing a data group's trials ------------------------------------------------------------


def trials_of(hidden: tuple[int, ...], n: int, start: int = 0) -> list[Trial]:
    return [Trial(TrialConfig(hidden=hidden), start + i) for i in range(n)]


def test_auto_places_each_population_on_its_faster_device() -> None:
    auto = AutoDevice([torch.device("cpu"), torch.device("cuda", 0)], [CPU, H200])
    small, wide = trials_of((10,), 40), trials_of((64, 64), 4096, start=40)
    mixed = [*small[:20], *wide, *small[20:]]
    placements = auto.place(mixed, 4000, 2, ways=lambda n: 2 if n >= 64 else 1)
    assert [str(p.device) for p in placements] == ["cpu", "cuda:0"]
    cpu, gpu = placements
    assert cpu.indices == [*range(20), *range(20 + 4096, 40 + 4096)]
    assert gpu.indices == list(range(20, 20 + 4096))
    assert [n for n, _ in cpu.choices] == [40]
    assert "cpu" in cpu.choices[0][1].human() and "cuda:0" in cpu.choices[0][1].human()


def test_auto_without_a_gpu_is_the_cpu_and_measures_nothing(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    def never(*_: object) -> None:
        raise AssertionError("measured without a GPU")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(calibration, "measure", never)
    called: list[int] = []
    device = auto_device(tmp_path / "devices.json", before_cuda=lambda: called.append(1))
    assert device == torch.device("cpu")
    assert called == [] and not (tmp_path / "devices.json").exists()
    assert not torch.cuda.is_initialized()


def test_auto_with_a_gpu_forks_first_then_measures(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    import engine.train.auto as auto_module

    order: list[str] = []

    def fake_speeds(devices: list[torch.device], *_: object) -> list[DeviceSpeed]:
        order.append("measure " + ", ".join(str(d) for d in devices))
        return [CPU, H200]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(auto_module, "speeds", fake_speeds)
    device = auto_device(tmp_path / "devices.json", before_cuda=lambda: order.append("fork"))
    assert isinstance(device, AutoDevice) and device.speeds == [CPU, H200]
    assert order == ["fork", "measure cpu, cuda:0"]
    assert str(device) == "auto (cpu, cuda:0)"

    def broken(*_: object) -> list[DeviceSpeed]:
        raise RuntimeError("CUDA error: no kernel image is available")

    monkeypatch.setattr(auto_module, "speeds", broken)
    assert auto_device(tmp_path / "devices.json") == torch.device("cpu")


# --- the cache ----------------------------------------------------------------------------------


def test_speeds_are_measured_once_per_key_and_cached(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    measured: list[str] = []

    def fake(device: torch.device) -> DeviceSpeed:
        measured.append(str(device))
        return DeviceSpeed(str(device), 1e-4, 3e-9)

    monkeypatch.setattr(calibration, "measure", fake)
    path = tmp_path / "cache" / "devices.json"
    cpu = [torch.device("cpu")]
    first = calibration.speeds(cpu, path)
    assert first == [DeviceSpeed("cpu", 1e-4, 3e-9)] and measured == ["cpu"]
    assert calibration.speeds(cpu, path) == first and measured == ["cpu"]  # from the file
    (key,) = json.loads(path.read_text())["entries"]
    assert torch.__version__ in key and calibration.cpu_model() in key
    monkeypatch.setattr(calibration, "cpu_model", lambda: "another CPU")
    calibration.speeds(cpu, path)  # another key: measured again, both kept
    assert measured == ["cpu", "cpu"] and len(json.loads(path.read_text())["entries"]) == 2


def test_a_broken_or_unwritable_cache_costs_a_calibration_not_a_failure(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(calibration, "measure", lambda d: DeviceSpeed(str(d), 1e-4, 3e-9))
    path = tmp_path / "devices.json"
    path.write_text("{not json")
    assert calibration.speeds([torch.device("cpu")], path)[0].step_s == 1e-4
    assert json.loads(path.read_text())["entries"]
    blocked = tmp_path / "a-file" / "devices.json"
    (tmp_path / "a-file").write_text("")
    log = logging.getLogger("test-device-cache")
    with caplog.at_level(logging.WARNING, "test-device-cache"):
        assert calibration.speeds([torch.device("cpu")], blocked, log)[0].work_s == 3e-9
    assert "could not cache" in caplog.text


def test_the_cpu_calibration_measures_plausible_constants() -> None:
    speed = calibration.measure(torch.device("cpu"))
    assert speed.device == "cpu"
    assert 1e-6 < speed.step_s < 1e-2
    assert 1e-12 < speed.work_s < 1e-7


# --- through the runner -------------------------------------------------------------------------

TWO_DEPTHS = """\
name = "two-depths"
[data]
train_size = 200
val_size = 100
test_size = 100
[train]
epochs = 2
[study]
strategy = "grid"
seeds = 3
[study.vary]
hidden = [[4], [8, 8]]
"""


def test_the_runner_trains_each_population_where_auto_placed_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    import engine.train
    from engine.run.local import LocalExecutor
    from engine.run.runner import StopFlag, run_study

    # two CPU devices standing for a CPU and a GPU: 'cpu:0' has the dearer step and free
    # arithmetic, so the deeper population ([2, 8, 8, 1]: 88 multiply-adds, 1.5 x the ops)
    # goes there and the [2, 4, 1] one stays on 'cpu'
    auto = AutoDevice([torch.device("cpu"), torch.device("cpu", 0)],
                      [DeviceSpeed("cpu", 1e-4, 1e-8), DeviceSpeed("cpu:0", 2e-4, 0.0)])
    monkeypatch.setattr(engine.train, "auto_device", lambda **_: auto)
    with Store(tmp_path / "store.db") as store:
        study = actions.create_study(store, parse_preset(TWO_DEPTHS), device="auto")
        with caplog.at_level(logging.INFO, "hp-tui.runner"):
            code = run_study(store, study, RunnerOptions(), 1, StopFlag(),
                             executor=LocalExecutor(1))
        assert code == 0
        where = {(tuple(t.config["model"]["hidden"]), t.device) for t in store.trials(study)}
        assert all(t.status == "completed" for t in store.trials(study))
        assert store.runs()[0]["device"] == "auto (cpu, cpu:0)"
    assert where == {((4,), "cpu"), ((8, 8), "cpu:0")}
    notes = [r.getMessage() for r in caplog.records if "a population of 3 trials" in r.getMessage()]
    assert len(notes) == 2 and all("cpu:0 " in n and "us/step" in n for n in notes)


@pytest.mark.slow
def test_the_device_benchmark_runs() -> None:
    """benchmarks/bench_devices.py --quick calibrates, predicts and trains each row."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_devices.py"),
                          "--quick"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "calibrated cpu" in out.stdout and "<-" in out.stdout


def test_the_local_executor_places_with_its_workers_shares() -> None:
    from engine.run.local import LocalExecutor
    from engine.train import Split, Splits

    auto = AutoDevice([torch.device("cpu"), torch.device("cuda", 0)], [CPU, H200])
    splits = Splits(Split(torch.zeros(4000, 2), torch.zeros(4000)),
                    Split(torch.zeros(10, 2), torch.zeros(10)))
    trials = [*trials_of((10,), 100), *trials_of((4,), 8, start=100)]
    trials += trials_of((10, 10), 8, start=108)
    for workers, whole in ((1, False), (2, False), (2, True)):
        placed = LocalExecutor(workers).place(trials, splits, auto, whole=whole)
        assert [str(d) for d, _, _ in placed] == ["cpu"]
        assert placed[0][1] == list(range(len(trials)))
        notes = placed[0][2]
        assert len(notes) == 3 and notes[0].startswith("a population of 100 trials on cpu")
        ways = 2 if workers == 2 and not whole else 1
        expected = predict(CPU, population_shape([t.config for t in trials[:100]], 4000, 2,
                                                 LANES), ways)
        assert f"cpu {expected.seconds:.3g} s" in notes[0]
    # a device that is not auto trains everything where it is
    assert LocalExecutor(2).place(trials, splits, torch.device("cpu")) == [
        (torch.device("cpu"), list(range(len(trials))), [])]


# --- compiled steps: auto predicts what the trainer will run --------------------------------------


def test_a_compiled_step_saves_per_step_costs_once_and_keeps_a_floor() -> None:
    eager = predict(CPU, notebook(512))
    compiled = predict(CPU, notebook(512), compiled=(100e-6, 10.0))
    assert compiled.step_s == pytest.approx(eager.step_s - 100e-6)
    assert compiled.seconds == pytest.approx(compiled.step_s * NOTEBOOK_STEPS + 10.0)
    floored = predict(CPU, notebook(512), compiled=(1.0, 0.0))  # a saving beyond the step
    assert floored.step_s == pytest.approx(eager.step_s * 0.2)


def test_a_long_population_the_cpu_compiles_stays_on_the_cpu() -> None:
    """2048 notebook trials for 300 epochs: eagerly the GPU is faster (882 us a step against
    1855 us), compiled the CPU is (741 us, after a 10 s compile)."""
    shape = PopulationShape(2048, 10, NOTEBOOK_LAYERS, 120_000)
    assert choose([CPU, H200], shape).device == "cuda:0"
    choice = choose([CPU, H200], shape, compiled={"cpu": (90e-6 + 0.5e-6 * 2048, 10.0)})
    assert choice.device == "cpu"
    assert choice.predictions[0].seconds < choice.predictions[1].seconds


def test_auto_predicts_with_the_trainers_compile_decision(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from engine.train.population import compiled

    auto = AutoDevice([torch.device("cpu"), torch.device("cuda", 0)], [CPU, H200])
    trials = [Trial(TrialConfig(hidden=(10,), epochs=300), i) for i in range(2048)]
    shape = population_shape([t.config for t in trials], 4000, 2, LANES)
    monkeypatch.setenv("HP_TUI_NO_COMPILE", "1")  # no compiler: eager predictions
    placed = auto.place(trials, 4000, 2)
    assert [str(p.device) for p in placed] == ["cuda:0"]
    assert placed[0].choices[0][1].predictions[0] == predict(CPU, shape)
    monkeypatch.delenv("HP_TUI_NO_COMPILE")
    monkeypatch.setattr(compiled, "compile_available", lambda device: True)
    placed = auto.place(trials, 4000, 2)
    assert [str(p.device) for p in placed] == ["cpu"]
    saving = compiled.compile_saving(2048, torch.device("cpu"), 41, shape.steps)
    assert saving is not None
    assert placed[0].choices[0][1].predictions[0] == predict(CPU, shape, 1, saving)
