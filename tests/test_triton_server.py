"""``upscaler export triton --backend python`` served by a real Triton Inference Server (``.ci/triton``).

The server is the Triton 2.51.0 binary of the ``nvidia-pytriton`` wheel, installed
by ``.ci/triton`` into ``.triton/`` (its Python backend only, CPU only): these
tests (marker ``triton``) are skipped without it. A fixture exports x4-fast and
x4-temporal with the real command line, starts the server on a free loopback
port, and stops it at the end; the answers are compared with ONNX Runtime run
directly on the same graphs.

The tests without the marker check the export and its ``model.py`` without a
server (a stand-in for ``triton_python_backend_utils``), so they run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import types
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from export.triton import graph_io
from export.triton_python import MAX_CANDIDATE_SEQUENCES, write_python_repository
from tests.conftest import REPO, run_cli
from upscaler.cli import main
from upscaler.models import get_model

TRITON = REPO / ".triton"
SERVER = TRITON / "pytriton" / "tritonserver" / "bin" / "tritonserver"
MODELS = ("x4-fast", "x4-temporal")

triton = pytest.mark.triton
needs_server = pytest.mark.skipif(
    not SERVER.exists(), reason=f"no Triton server at {SERVER.relative_to(REPO)} (install it with .ci/triton)"
)


def _declared(text: str) -> list[tuple[str, str, list[int]]]:
    """(name, data type, dims) of every input and output a config.pbtxt declares, in order."""
    found = re.findall(r'\{ name: "(\w+)" data_type: (\w+) dims: \[ ([^\]]+) \] \}', text)
    return [(n, t, [int(d) for d in dims.split(",")]) for n, t, dims in found]


def _session(graph: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def _frames(seed: int, n: int, h: int = 24, w: int = 32) -> list[dict[str, np.ndarray]]:
    """``n`` temporal steps (client inputs): random frames, jitter, small motion, depth zeros."""
    rng = np.random.default_rng(seed)
    return [
        {
            "frame": rng.random((1, 3, h, w), dtype=np.float32),
            "jitter": rng.uniform(-0.5, 0.5, (1, 2)).astype(np.float32),
            "motion": (rng.uniform(-1, 1, (1, 2, h, w)) * (t > 0)).astype(np.float32),
            "depth": np.zeros((1, 1, h, w), np.float32),
        }
        for t in range(n)
    ]


def _reference(session: ort.InferenceSession, steps: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """ONNX Runtime on the step graph, the first step a reset, each output fed back as the next history."""
    channels = session.get_inputs()[[i.name for i in session.get_inputs()].index("history")].shape[1]
    outputs, history = [], np.zeros((1, channels, 1, 1), np.float32)
    for t, step in enumerate(steps):
        reset = np.array([[1.0 if t == 0 else 0.0]], np.float32)
        history = session.run(["output"], {**step, "history": history, "reset": reset})[0]
        outputs.append(history)
    return outputs


# ---- without a server -----------------------------------------------------------------------------------------


def test_python_export_declares_the_graphs_io_on_cpu_instances(tmp_path):
    models = [get_model(m) for m in MODELS]
    configs = write_python_repository(models, tmp_path, max_batch_size=4, threads=2)
    assert [c.parent.name for c in configs] == list(MODELS)
    for model, config in zip(models, configs):
        text = config.read_text()
        graph = config.parent / "1" / "model.onnx"
        assert graph.read_bytes() == model.onnx.path.read_bytes() and (config.parent / "1" / "model.py").is_file()
        assert 'backend: "python"' in text and "platform:" not in text and "kind: KIND_CPU" in text
        assert 'key: "intra_op_threads" value: { string_value: "2" }' in text
        assert text.count("{") == text.count("}") and text.count("[") == text.count("]")
        inputs, outputs = graph_io(graph)
        declared = _declared(text)
        if model.temporal:
            assert "max_batch_size: 1\n" in text and "dynamic_batching" not in text
            assert f"oldest {{ max_candidate_sequences: {MAX_CANDIDATE_SEQUENCES} }}" in text
            for name, kind in [("START", "START"), ("END", "END")]:
                assert f'{{ name: "{name}" control [ {{ kind: CONTROL_SEQUENCE_{kind} fp32_false_true' in text
            assert "kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64" in text and "state [" not in text
            client = [(n, t) for n, t in inputs if n not in ("history", "reset")]
            assert [(n, t) for n, t, _ in declared] == [*client, *outputs]
            assert declared[-1][2] == [model.state_channels, -1, -1]
        else:
            assert "max_batch_size: 4\n" in text and "preferred_batch_size: [ 1, 2, 4 ]" in text
            assert declared == [(n, t, [3, -1, -1]) for n, t in [*inputs, *outputs]]


def test_python_backend_refuses_tensorrt_options_in_one_line(tmp_path, capsys):
    for extra in (["--plan"], ["--tensorrt", "fp16"], ["--profile", "1x1x1:1x64x64:2x64x64"]):
        argv = ["export", "triton", "--dir", str(tmp_path / "r"), "-m", "x4-fast", "--backend", "python", *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"drop {extra[0]}" in err
    assert main(["export", "triton", "--dir", str(tmp_path / "r"), "-m", "x4-fast", "--threads", "2"]) == 2
    assert "use it with --backend python" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


class _Tensor:
    """A ``pb_utils.Tensor`` stand-in: model.py moves tensors by DLPack only."""

    def __init__(self, name, array):
        self._name, self._array = name, np.asarray(array)

    @classmethod
    def from_dlpack(cls, name, array):
        return cls(name, np.from_dlpack(array))

    def name(self):
        return self._name

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class _Response:
    def __init__(self, output_tensors=(), error=None):
        self.outputs = {t.name(): np.from_dlpack(t) for t in output_tensors}
        self.error = error


def _fake_backend_utils() -> types.ModuleType:
    """What model.py uses of ``triton_python_backend_utils``; a request is a dict of name -> array."""
    utils = types.ModuleType("triton_python_backend_utils")
    utils.Tensor = _Tensor
    utils.InferenceResponse = _Response
    utils.TritonError = str
    utils.get_input_tensor_by_name = lambda request, name: _Tensor(name, request[name]) if name in request else None
    return utils


def _load_model_py(folder: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_backend_utils())
    spec = importlib.util.spec_from_file_location("exported_model", folder / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = {"parameters": {"intra_op_threads": {"string_value": "1"}}}
    text = (folder / "config.pbtxt").read_text()
    if "sequence_batching" in text:
        channels = get_model(folder.name).state_channels  # what Triton passes from config.pbtxt's output dims
        config |= {"sequence_batching": {"max_sequence_idle_microseconds": "5000000"}, "output": [{"dims": [channels]}]}
    instance = module.TritonPythonModel()
    instance.initialize({"model_config": json.dumps(config), "model_repository": str(folder), "model_version": "1"})
    return instance


def _step(model, corrid: int, step: dict, *, start: bool = False, end: bool = False) -> _Response:
    controls = {"START": [[float(start)]], "END": [[float(end)]], "CORRID": np.array([[corrid]], np.uint64)}
    (response,) = model.execute([{**step, **controls}])
    return response


def test_model_py_keeps_each_sequences_history_by_correlation_id(tmp_path, monkeypatch):
    write_python_repository([get_model("x4-temporal"), get_model("x4-fast")], tmp_path)
    model = _load_model_py(tmp_path / "x4-temporal", monkeypatch)
    session = _session(tmp_path / "x4-temporal" / "1" / "model.onnx")
    a, b = _frames(1, 3, 8, 12), _frames(2, 3, 8, 12)
    want_a, want_b = _reference(session, a), _reference(session, b)
    for t in range(3):  # interleaved; a ends at its last step
        got_a = _step(model, 7, a[t], start=t == 0, end=t == 2)
        got_b = _step(model, 9, b[t], start=t == 0)
        np.testing.assert_array_equal(got_a.outputs["output"], want_a[t])
        np.testing.assert_array_equal(got_b.outputs["output"], want_b[t])
    assert set(model.histories) == {9}  # END freed sequence 7
    assert "has no history" in _step(model, 7, a[1]).error
    restarted = _step(model, 9, a[0], start=True)  # a used id starts afresh
    np.testing.assert_array_equal(restarted.outputs["output"], want_a[0])
    model.keep_s = -1.0  # every history is now older than Triton's idle limit
    assert "has no history" in _step(model, 9, a[1]).error and not model.histories

    frames = _load_model_py(tmp_path / "x4-fast", monkeypatch)
    rng = np.random.default_rng(3)
    x1, x2, x3 = (rng.random((n, 3, 6, 5), dtype=np.float32) for n in (1, 2, 1))
    y = _session(tmp_path / "x4-fast" / "1" / "model.onnx").run(["output"], {"input": np.concatenate([x1, x2])})[0]
    r1, r2, r3, bad = frames.execute([{"input": x1}, {"input": x2}, {"input": x3[:, :, :4]}, {"other": x1}])
    np.testing.assert_allclose(r1.outputs["output"], y[:1], atol=1e-6)  # run as one batch with r2
    np.testing.assert_allclose(r2.outputs["output"], y[1:], atol=1e-6)
    assert r3.outputs["output"].shape == (1, 3, 16, 20) and "missing input" in bad.error


# ---- a real server ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stub() -> None:
    """Put this interpreter's Python-backend stub beside the backend, as pytriton does (same RPATH depth)."""
    dist = TRITON / "pytriton" / "tritonserver"
    target = dist / "backends" / "python" / "triton_python_backend_stub"
    source = dist / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / target.name
    if not target.exists() or target.read_bytes() != source.read_bytes():
        target.write_bytes(source.read_bytes())
        target.chmod(0o755)


def _server_env() -> dict[str, str]:
    """This interpreter's libpython first (the stub links libpython3.X), the venv's bin first (its packages)."""
    libs = [sysconfig.get_config_var("LIBDIR"), str(TRITON / "nvidia_pytriton.libs"), os.environ.get("LD_LIBRARY_PATH")]
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, "LD_LIBRARY_PATH": ":".join(p for p in libs if p), "OMP_NUM_THREADS": "1",
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}  # fmt: skip


def _stop(process: subprocess.Popen, shm_prefix: str) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for region in Path("/dev/shm").glob(f"{shm_prefix}*"):
        region.unlink(missing_ok=True)


def _wait_ready(client, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tritonserver exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.is_server_ready():
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.25)
    pytest.fail(f"tritonserver not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A running tritonserver on a repository written by the real ``upscaler export triton --backend python``."""
    http = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http] (installed by .ci/triton)")
    root = tmp_path_factory.mktemp("triton")
    repo = root / "models"
    result = run_cli("export", "triton", "--dir", str(repo), "--backend", "python", "-m", *MODELS)
    assert result.returncode == 0, result.stderr
    _stub()
    port, shm_prefix = _free_port(), f"upscaler-test-{uuid.uuid4().hex[:8]}-"
    log = root / "tritonserver.log"
    argv = [str(SERVER), f"--model-repository={repo}", f"--backend-directory={SERVER.parents[1] / 'backends'}",
            "--http-address=127.0.0.1", f"--http-port={port}", "--allow-grpc=false", "--allow-metrics=false",
            "--exit-timeout-secs=10", f"--backend-config=python,shm-region-prefix-name={shm_prefix}"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_server_env())
    client = None
    try:
        client = http.InferenceServerClient(f"127.0.0.1:{port}", concurrency=2, network_timeout=120)
        _wait_ready(client, process, log)
        yield types.SimpleNamespace(client=client, http=http, repo=repo, url=f"http://127.0.0.1:{port}", log=log)
    finally:
        if client is not None:
            client.close()
        _stop(process, shm_prefix)


def _inputs(http, arrays: dict[str, np.ndarray]) -> list:
    inputs = []
    for name, array in arrays.items():
        tensor = http.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    return inputs


def _infer_step(server, corrid: int, step: dict, *, start: bool = False, end: bool = False) -> np.ndarray:
    result = server.client.infer(
        "x4-temporal", _inputs(server.http, step), sequence_id=corrid, sequence_start=start, sequence_end=end
    )
    return result.as_numpy("output")


@triton
@needs_server
def test_server_is_ready_and_reports_the_exported_configs(server):
    import httpx

    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    for name in MODELS:
        assert server.client.is_model_ready(name)
        served = httpx.get(f"{server.url}/v2/models/{name}/config").json()
        written = _declared((server.repo / name / "config.pbtxt").read_text())
        tensors = served["input"] + served["output"]
        reported = [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in tensors]
        assert served["backend"] == "python" and reported == written
        assert {g["kind"] for g in served["instance_group"]} == {"KIND_CPU"}
        assert served["parameters"]["intra_op_threads"]["string_value"] == "1"
        inputs, outputs = graph_io(server.repo / name / "1" / "model.onnx")
        graph = [(n, t) for n, t in inputs + outputs if n not in ("history", "reset")]
        assert [(n, t) for n, t, _ in written] == graph
    sequence = httpx.get(f"{server.url}/v2/models/x4-temporal/config").json()["sequence_batching"]
    controls = {c["name"]: c["control"][0]["kind"] for c in sequence["control_input"]}
    assert controls == {"START": "CONTROL_SEQUENCE_START", "END": "CONTROL_SEQUENCE_END",
                        "CORRID": "CONTROL_SEQUENCE_CORRID"}  # fmt: skip
    assert int(sequence["oldest"]["max_candidate_sequences"]) == MAX_CANDIDATE_SEQUENCES
    assert int(sequence["max_sequence_idle_microseconds"]) == 5_000_000


@triton
@needs_server
def test_single_frame_model_answers_as_onnxruntime_does(server):
    session = _session(server.repo / "x4-fast" / "1" / "model.onnx")
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 24, 32), (2, 3, 24, 32), (1, 3, 17, 9)]:
        x = rng.random(shape, dtype=np.float32)
        got = server.client.infer("x4-fast", _inputs(server.http, {"input": x})).as_numpy("output")
        want = session.run(["output"], {"input": x})[0]
        assert got.shape == want.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
        assert np.abs(got - want).max() <= 1e-6
    # concurrent requests, which the dynamic batcher may run as one batch
    xs = [rng.random((1, 3, 24, 32), dtype=np.float32) for _ in range(4)]
    pending = [server.client.async_infer("x4-fast", _inputs(server.http, {"input": x})) for x in xs]
    for x, request in zip(xs, pending):
        got = request.get_result().as_numpy("output")
        assert np.abs(got - session.run(["output"], {"input": x})[0]).max() <= 1e-6


@triton
@needs_server
def test_a_temporal_sequence_answers_as_onnxruntime_with_its_history_fed_back(server):
    session = _session(server.repo / "x4-temporal" / "1" / "model.onnx")
    steps = _frames(10, 4)
    want = _reference(session, steps)
    for t, step in enumerate(steps):
        got = _infer_step(server, 11, step, start=t == 0, end=t == len(steps) - 1)
        assert got.shape == (1, get_model("x4-temporal").state_channels, 96, 128)
        assert np.abs(got - want[t]).max() <= 1e-6, t
    # not the same as answering every frame as a fresh start: the history was used
    assert np.abs(_reference(session, steps[-1:])[0] - want[-1]).max() > 1e-3


@triton
@needs_server
def test_interleaved_sequences_keep_their_own_histories_and_a_new_start_resets(server):
    session = _session(server.repo / "x4-temporal" / "1" / "model.onnx")
    a, b = _frames(20, 3), _frames(21, 3)
    want_a, want_b = _reference(session, a), _reference(session, b)
    for t in range(3):
        got_a = _infer_step(server, 21, a[t], start=t == 0, end=t == 2)
        got_b = _infer_step(server, 22, b[t], start=t == 0)
        assert np.abs(got_a - want_a[t]).max() <= 1e-6 and np.abs(got_b - want_b[t]).max() <= 1e-6, t
    # sequence 22 is still open: a START on it begins again from that frame alone
    fresh = _reference(session, a[1:])
    for t, step in enumerate(a[1:]):
        got = _infer_step(server, 22, step, start=t == 0, end=t == 1)
        assert np.abs(got - fresh[t]).max() <= 1e-6, t
    with pytest.raises(Exception, match="START flag"):  # sequence 21 ended: Triton wants a new start
        _infer_step(server, 21, a[0])
