"""One call on a lent GPU: every GPU path run for the first time, measured, and a quality model trained.

    PYTHONPATH=. python benchmarks/gpu_session.py --out "$OUT" --data .gpudata --budget-s 540

Stages, each in its own ``try`` (a failure is recorded and the next goes on),
all inside ``--budget-s`` from the start:

1. ``env``: the device, driver, library versions and the host CPU.
2. ``parity``: ``torch-cuda`` (FP32, FP16) against ``onnxruntime-cpu`` on Set5,
   CUDA-graph replays against eager, the temporal step on ``torch-cuda``
   against ``onnxruntime-cpu`` over a jittered sequence: max abs error (levels)
   and PSNR.
3. ``pytest``: ``pytest -m gpu``.
4. ``speed``: the networks with input and output on the device (CUDA events,
   median), eager and CUDA-graph replays, FP32 and FP16 channels-last,
   480x270 / 960x540 / 1920x1080, batch 1 and 4; the temporal step with its
   history on the device; this machine's CPU engine at 480x270 for the ratio.
5. ``train``: a quality model on the GPU (bf16, crops cut on the device): a
   throughput probe, then the steps that fit the time left, validated on Set5.
6. ``candidate``: the trained network's speed as in 4.
7. ``bench``: ``upscaler bench`` end to end (PNG in, PNG out, host in and out),
   ``torch-cuda`` against ``onnxruntime-cpu`` in one run.

Everything lands in ``--out``: ``gpu-session.json`` (every figure), the
bench's JSON and markdown, the trained weights and a tar of the run's logs and
last checkpoint (a later call resumes from it). ``--smoke`` rehearses the
script on a machine without CUDA (tiny sizes, the CPU in the GPU's place).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STARTED = time.monotonic()


def left(budget: float) -> float:
    return budget - (time.monotonic() - STARTED)


def log(*parts) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s]", *parts, flush=True)


# -- 1. environment ---------------------------------------------------------------------------------------
def environment() -> dict:
    import onnxruntime
    import torch

    from upscaler.sysinfo import cpu_name

    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile"}),
    }
    quick = {**os.environ, "UPSCALER_CPU_PRECISION": "fp32"}  # no INT8 probe of the CPU: the GPU's lines matter
    info = subprocess.run([sys.executable, "-m", "upscaler", "info"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=quick)  # fmt: skip
    env["upscaler_info"] = (info.stdout + info.stderr)[-4000:]
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env |= {"device": p.name, "sm": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count,
                "device_memory_gib": round(p.total_memory / 2**30, 1)}  # fmt: skip
        try:
            q = "--query-gpu=driver_version,clocks.sm,clocks.max.sm,power.limit"
            env["nvidia_smi"] = subprocess.run(["nvidia-smi", q, "--format=csv,noheader"], capture_output=True,
                                               text=True, timeout=20).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            env["nvidia_smi"] = f"unavailable: {exc}"
    return env


# -- timing -------------------------------------------------------------------------------------------------
def device_ms(fn, runs: int, warmup: int = 3) -> list[float]:
    """Milliseconds per call of ``fn`` (device work bracketed by CUDA events; the host clock on the CPU)."""
    import torch

    cuda = torch.cuda.is_available()
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
    return times


def stats(times: list[float]) -> dict:
    a = np.asarray(times)
    return {"p50_ms": round(float(np.median(a)), 4), "p10_ms": round(float(np.percentile(a, 10)), 4),
            "p90_ms": round(float(np.percentile(a, 90)), 4), "runs": len(a)}  # fmt: skip


def runs_for(pixels: int, smoke: bool) -> int:
    return 3 if smoke else (50 if pixels <= 960 * 540 else 20)


# -- 2. parity ----------------------------------------------------------------------------------------------
def parity(smoke: bool) -> dict:
    import torch

    from upscaler import TemporalUpscaler, Upscaler
    from upscaler.io import read_image
    from upscaler.metrics import psnr
    from upscaler.models import get_model
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.temporal_torch import TorchTemporalEngine
    from upscaler.sequences import Camera, SequenceSpec, make_sequence

    set5 = [read_image(p) for p in sorted((REPO / "tests/fixtures/set5").glob("*.webp"))]
    if smoke:
        set5 = [im[:48, :64] for im in set5[:2]]
    gpu = "torch-cuda" if torch.cuda.is_available() else "torch-cpu"
    out = {"engine": gpu, "single_frame": [], "temporal": []}
    # what backend="auto" picks on this machine (TensorRT and onnxruntime-gpu are not installed there)
    out["auto"] = {"x4-fast": Upscaler("x4-fast").engine.name}
    out["auto"]["x4-temporal"] = TemporalUpscaler("x4-temporal").engine.name
    for model in ("x4-fast", "x4-quality"):
        cpu = Upscaler(model, "onnxruntime-cpu", tile=0, precision="fp32")
        ref = [cpu.upscale(im) for im in set5]
        for precision in ("fp32", "fp16") if gpu == "torch-cuda" else ("fp32",):
            up = Upscaler(model, gpu, tile=0, precision=precision)
            got = [up.upscale(im) for im in set5]
            diffs = [int(np.abs(a.astype(int) - b).max()) for a, b in zip(ref, got)]
            worst = round(min(psnr(a, b) for a, b in zip(ref, got)), 2)
            out["single_frame"].append({"model": model, "precision": precision, "max_abs_levels": max(diffs),
                                        "min_psnr_db": worst})  # fmt: skip
            log("parity", model, precision, out["single_frame"][-1])
    if gpu == "torch-cuda":
        from upscaler.runtime.torch_engine import TorchCudaEngine

        batch = (set5[0].transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
        for precision in ("fp32", "fp16"):
            eager = TorchCudaEngine(get_model("x4-quality"), EngineOptions(precision=precision), graph_after=0)
            graphed = TorchCudaEngine(get_model("x4-quality"), EngineOptions(precision=precision), graph_after=1)
            want = eager.run(batch)
            worst = max(float(np.abs(graphed.run(batch) - want).max()) for _ in range(3))
            out["single_frame"].append({"model": "x4-quality", "precision": precision, "check": "graph vs eager",
                                        "max_abs": worst})  # fmt: skip
    scene = set5[1]
    size = (32, 24) if smoke else (96, 64)
    camera = Camera(center=(scene.shape[1] / 2, scene.shape[0] / 2), velocity=(1.7, 0.6))
    for model in ("x4-temporal", "x4-temporal-quality", "x2-temporal"):
        descriptor = get_model(model)
        frames = make_sequence(scene, SequenceSpec(descriptor.scale, size, 4 if smoke else 12, camera))
        for precision in ("fp32", "fp16") if gpu == "torch-cuda" else ("fp32",):
            a = TemporalUpscaler(model, backend="onnxruntime-cpu")
            engine = TorchTemporalEngine(descriptor, EngineOptions(precision=precision), cuda=gpu == "torch-cuda")
            b = TemporalUpscaler(descriptor, engine=engine)
            diffs, scores = [], []
            for f in frames:
                x, y = a.upscale(f.lr, f.jitter, f.motion), b.upscale(f.lr, f.jitter, f.motion)
                diffs.append(int(np.abs(x.astype(int) - y).max()))
                scores.append(psnr(x, y))
            out["temporal"].append({"model": model, "engine": engine.name, "precision": precision,
                                    "frames": len(frames), "max_abs_levels": max(diffs),
                                    "last_frame_levels": diffs[-1], "min_psnr_db": round(min(scores), 2)})  # fmt: skip
            log("parity", out["temporal"][-1])
    return out


# -- 3. pytest -m gpu -------------------------------------------------------------------------------------
def run_pytest(out: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu.py", "-p", "no:cacheprovider", "-q",
           "-o", "addopts=", "--junitxml", str(out / "pytest-gpu.xml")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    text = proc.stdout + proc.stderr
    (out / "pytest-gpu.txt").write_text(text)
    return {"command": "pytest -m gpu tests/test_gpu.py", "rc": proc.returncode, "tail": text[-600:]}


# -- 4. speed -------------------------------------------------------------------------------------------
SIZES = ((480, 270), (960, 540), (1920, 1080))


def single_frame_speed(model_name, sizes, batches, smoke: bool, precisions=("fp16", "fp32")) -> list[dict]:
    import torch

    from upscaler.models import get_model
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.torch_engine import TorchCudaEngine, TorchEngine

    model = get_model(model_name)
    rows = []
    cuda = torch.cuda.is_available()
    for precision in precisions if cuda else ("fp32",):
        for graphs in (False, True) if cuda else (False,):
            if cuda:
                engine = TorchCudaEngine(model, EngineOptions(precision=precision), graph_after=1 if graphs else 0,
                                         max_graphs=16)  # fmt: skip
                dtype = engine._dtype
            else:
                engine, dtype = TorchEngine(model), torch.float32
            for w, h in sizes:
                for n in batches:
                    x = torch.rand(n, 3, h, w, device="cuda" if cuda else "cpu", dtype=dtype)
                    if cuda:
                        x = x.contiguous(memory_format=torch.channels_last)
                        fn = lambda x=x, e=engine: e.run_on_device(x)  # noqa: E731
                    else:
                        fn = lambda x=x, e=engine: e._net(x)  # noqa: E731
                    with torch.inference_mode():
                        times = device_ms(fn, runs_for(w * h * n, smoke))
                    row = {"model": model.name, "engine": engine.name, "precision": precision if cuda else "fp32",
                           "cuda_graph": graphs, "input": f"{w}x{h}", "batch": n,
                           "output": f"{w * model.scale}x{h * model.scale}", **stats(times)}  # fmt: skip
                    row["ms_per_frame"] = round(row["p50_ms"] / n, 4)
                    rows.append(row)
                    log(
                        "speed", row["model"], precision, "graph" if graphs else "eager", row["input"], n, row["p50_ms"]
                    )
            del engine
            if cuda:
                torch.cuda.empty_cache()
    return rows


def temporal_speed(model_name, sizes, smoke: bool) -> list[dict]:
    """The whole temporal step (warp, network, blend) with the history on the device, FP32 and FP16."""
    import torch

    from upscaler.models import get_model
    from upscaler.runtime.torch_engine import load_network

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model = get_model(model_name)
    rows = []
    for precision in ("fp16", "fp32") if cuda else ("fp32",):
        dtype = torch.float16 if precision == "fp16" else torch.float32
        net = load_network(model).to(device, dtype=dtype)
        for w, h in sizes:
            s = model.scale
            x = torch.rand(1, 3, h, w, device=device, dtype=dtype)
            jitter = torch.tensor([[0.25, -0.125]], device=device, dtype=dtype)
            motion = (torch.rand(1, 2, h, w, device=device, dtype=dtype) - 0.5) * 4
            history = torch.rand(1, model.state_channels, h * s, w * s, device=device, dtype=dtype)
            reset = torch.zeros(1, 1, device=device, dtype=dtype)

            def step(net=net, x=x, jitter=jitter, motion=motion, history=history, reset=reset):
                out = net(x, jitter, motion, history, reset)
                history.copy_(out)  # the output is the next step's history, on the device
                return out

            for graphs in (False, True) if cuda else (False,):
                with torch.inference_mode():
                    fn = step
                    if graphs:
                        side = torch.cuda.Stream()
                        side.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(side):
                            step()
                        torch.cuda.current_stream().wait_stream(side)
                        graph = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(graph):
                            step()
                        fn = graph.replay
                    times = device_ms(fn, runs_for(w * h, smoke))
                row = {"model": model.name, "engine": "torch-cuda" if cuda else "torch-cpu", "precision": precision,
                       "cuda_graph": graphs, "input": f"{w}x{h}", "batch": 1,
                       "output": f"{w * s}x{h * s}", **stats(times)}  # fmt: skip
                rows.append(row)
                log("temporal", model.name, precision, "graph" if graphs else "eager", row["input"], row["p50_ms"])
        del net
        if cuda:
            torch.cuda.empty_cache()
    return rows


def cpu_peer(models, size, smoke: bool) -> list[dict]:
    """This machine's CPU engine (ONNX Runtime, all cores) on the same input, host-timed: the ratio's peer."""
    from upscaler.models import get_model
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.ort_cpu import OrtCpuEngine

    rows = []
    w, h = size
    for name in models:
        engine = OrtCpuEngine(get_model(name), EngineOptions(precision="fp32"))
        x = np.random.default_rng(0).random((1, 3, h, w), np.float32)
        engine.run(x)
        times = []
        for _ in range(3 if smoke else 7):
            t = time.perf_counter()
            engine.run(x)
            times.append((time.perf_counter() - t) * 1000)
        rows.append({"model": name, "engine": "onnxruntime-cpu", "precision": "fp32", "input": f"{w}x{h}",
                     "batch": 1, **stats(times)})  # fmt: skip
        log("cpu peer", name, rows[-1]["p50_ms"])
    return rows


def cudnn_autotune(models, size, smoke: bool) -> list[dict]:
    """The single-frame networks with cuDNN's autotuner off (PyTorch's default) and on, one size, FP16."""
    import torch

    rows = []
    for flag in (False, True):
        torch.backends.cudnn.benchmark = flag
        for name in models:
            for row in single_frame_speed(name, (size,), (1,), smoke, ("fp16",)):
                rows.append({**row, "weights": name, "cudnn_benchmark": flag})
        for row in temporal_speed("x4-temporal", (size,), smoke):
            rows.append({**row, "cudnn_benchmark": flag})
    torch.backends.cudnn.benchmark = False
    return rows


# -- 5. training ------------------------------------------------------------------------------------------
def train(config_path: Path, data: Path, out: Path, seconds: float, smoke: bool, init: str | None = None) -> dict:
    """Probe the step rate, fit the steps to ``seconds``, train, validate; returns what happened."""
    import csv

    import torch

    from training.config import load_config
    from training.trainer import Trainer

    def configured(steps: int, run_out: Path):
        c = load_config(config_path)
        c.run.out, c.optim.steps = str(run_out), steps
        c.run.tensorboard = False
        c.model.init = init or c.model.init
        if smoke:
            if not c.model.init:  # a network the starting weights fit
                c.model.params = {**c.model.params, "channels": 8, "blocks": 2}
            c.data.batch, c.data.patch, c.run.device = 4, 16, "cpu"
        c.optim.warmup_steps = min(c.optim.warmup_steps, steps - 1)
        return c

    t0 = time.monotonic()
    probe_steps = 20 if smoke else 300
    probe = configured(10**7, out / "probe")
    probe.run.log_every = probe_steps // 4
    trainer = Trainer(probe, data_root=str(data), restart=True, progress=False)
    trainer.run(stop_at=probe_steps)
    rows = list(csv.DictReader((out / "probe" / "train.csv").open()))
    rate = float(rows[-1]["samples_per_s"]) / probe.data.batch  # steps/s over the last quarter
    setup_s = time.monotonic() - t0 - probe_steps / rate
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    usable = seconds - (time.monotonic() - t0) - setup_s - 10  # the real run's set-up, its validations
    steps = max(probe_steps, int(usable * rate * 0.9))
    log(f"train: {rate:.1f} steps/s, set-up {setup_s:.1f} s: {steps} steps in {usable:.0f} s")
    config = configured(steps, out / "run")
    config.run.val_every = max(1, steps // 4)
    config.run.ckpt_every = max(1, steps // 8)
    config.run.log_every = max(1, steps // 100)
    started = time.monotonic()
    trainer = Trainer(config, data_root=str(data), restart=True, progress=False)
    weights = trainer.run()
    val = list(csv.DictReader((out / "run" / "val.csv").open()))
    return {"config": str(config_path.relative_to(REPO)), "params": config.model.params,
            "batch": config.data.batch, "patch": config.data.patch, "probe_steps_per_s": round(rate, 2),
            "steps": steps, "train_wall_s": round(time.monotonic() - started, 1), "weights": str(weights),
            "device": trainer.training_info()["device"], "val": val[-4:]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=".gpudata", help="folder with train/ and val/Set5 (the config's data root)")
    ap.add_argument("--config", default="training/configs/experiments/x4-quality-gpu.toml")
    ap.add_argument("--budget-s", type=float, default=540)
    ap.add_argument("--smoke", action="store_true", help="rehearse without CUDA: tiny sizes, the CPU")
    ap.add_argument("--only", nargs="+", help="run only these stages (default: all but cudnn)")
    ap.add_argument("--init", help="start training from these weights (overrides model.init)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    smoke, budget = args.smoke, args.budget_s
    note = "PyTorch CUDA is what ran: TensorRT and onnxruntime-gpu cannot be installed there"
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "budget_s": budget, "note": note}
    path = out / "gpu-session.json"

    def stage(name, fn, *a, **kw):
        if args.only and name not in args.only:
            return
        t = time.monotonic()
        try:
            report[name] = fn(*a, **kw)
        except Exception as exc:  # one stage's failure must not lose the others
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
        report.setdefault("stage_seconds", {})[name] = round(time.monotonic() - t, 1)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")

    sizes = ((32, 24), (64, 48)) if smoke else SIZES
    stage("env", environment)
    log("env", report.get("env"))
    stage("parity", parity, smoke)
    stage("pytest", run_pytest, out, 30 if smoke else 150)
    stage("speed", lambda: [row for m in ("x4-fast", "x4-quality", "x2-fast") for row in
                            single_frame_speed(m, sizes, (1, 4), smoke)])  # fmt: skip
    temporal = ("x4-temporal", "x4-temporal-quality", "x2-temporal")
    stage("temporal_speed", lambda: [r for m in temporal for r in temporal_speed(m, sizes, smoke)])
    stage("cpu_peer", cpu_peer, ("x4-fast", "x4-quality"), sizes[0], smoke)
    if args.only and "cudnn" in args.only:
        stage("cudnn", cudnn_autotune, ["x4-fast", "x4-quality", *([args.init] if args.init else [])], sizes[1], smoke)
    reserve = 25 if smoke else (75 if not args.only or "bench" in args.only else 30)  # candidate speed, bench, packing
    stage("train", train, REPO / args.config, Path(args.data).resolve(), out, left(budget) - reserve, smoke, args.init)
    weights = Path(report["train"].get("weights", "")) if isinstance(report.get("train"), dict) else None
    if weights and weights.is_file():
        shutil.copy(weights, out / "x4-quality-gpu.safetensors")
        stage("candidate_speed", single_frame_speed, str(weights), sizes, (1,), smoke, ("fp16",))
        with tarfile.open(out / "train-run.tar", "w") as tar:
            for name in ("train.csv", "val.csv", "config.toml", "last.pt"):
                if (out / "run" / name).exists():
                    tar.add(out / "run" / name, arcname=name)
    shutil.rmtree(out / "run", ignore_errors=True)
    shutil.rmtree(out / "probe", ignore_errors=True)
    if left(budget) > (5 if smoke else 30):
        cmd = [sys.executable, "-m", "upscaler", "bench", "-e", "torch-cuda", "onnxruntime-cpu", "-m", "x4-fast",
               "x4-quality", "--precision", "fp16", "fp32", "-s", "270p", "540p", "--batch-size", "1",
               "--rounds", "2", "--runs", "3", "--warmup", "1", "--no-memory", "--no-progress",
               "--json", str(out / "bench-e2e.json"), "--markdown", str(out / "bench-e2e.md")]  # fmt: skip
        if smoke:
            cmd[cmd.index("torch-cuda")] = "torch-cpu"
            cmd[cmd.index("270p")] = "64x48"
            cmd[cmd.index("540p")] = "96x64"
        stage("bench", lambda: subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                              timeout=max(10, left(budget) - 5)).returncode)  # fmt: skip
    report["wall_s"] = round(time.monotonic() - STARTED, 1)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    summary = [f"{r['model']:<12} {r['precision']} {'graph' if r['cuda_graph'] else 'eager'} {r['input']} b{r['batch']}"
               f" p50 {r['p50_ms']:.3f} ms" for r in (report.get("speed") or []) if isinstance(r, dict)]  # fmt: skip
    print("\n".join(summary[-24:]))
    print(json.dumps({k: report.get(k) for k in ("pytest", "train", "stage_seconds")}, default=str)[-3000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
