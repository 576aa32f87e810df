"""Layout, layering, extras, the README's two commands, Docker paths, and the wheel's contents."""

import ast
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.conftest import REPO, run_cli
from upscaler.models import list_models

README = (REPO / "README.md").read_text()


def test_fixed_top_level_layout():
    for name in ("pyproject.toml", "README.md", "upscaler", "training", "export", "server", "tests", "docker"):
        assert (REPO / name).exists(), name


def test_core_never_imports_training_export_or_server():
    offenders = []
    for path in (REPO / "upscaler").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("training", "export", "server")]
    assert offenders == []


def test_torch_is_imported_only_in_torch_modules():
    allowed = {"archs/plainsr.py", "archs/temporal.py", "archs/accum.py", "runtime/torch_engine.py"}  # networks, engine
    for path in (REPO / "upscaler").rglob("*.py"):
        top_level = [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top_level if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in top_level if isinstance(n, ast.ImportFrom) and n.module]
        if any(n.split(".")[0] == "torch" for n in names):
            assert path.relative_to(REPO / "upscaler").as_posix() in allowed, path


def test_extras_keep_torch_out_of_cpu_inference():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    assert "torch" not in base and "onnx>" not in base
    for needed in ("onnxruntime", "opencv-python-headless", "numpy"):
        assert needed in base
    extras = project["optional-dependencies"]
    assert {"torch", "train", "export", "dev"} <= set(extras)
    assert any("torch" in d for d in extras["torch"]) and any("onnx" in d for d in extras["export"])
    assert project["scripts"]["upscaler"] == "upscaler.cli:main"


def setup_commands() -> list[str]:
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    commands = setup_commands()
    assert len(commands) == 2
    assert "upscaler serve" in commands[0] and "pytest" in commands[1]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == commands[1]


def test_readme_quality_table_is_the_manifest():
    table = run_cli("models", "--markdown").stdout.strip()
    assert table in README
    assert all(m.name in table for m in list_models("frame"))


def test_docker_files_name_existing_paths():
    for dockerfile in (REPO / "docker").glob("*Dockerfile*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), f"{dockerfile.name}: {source}"


#: The Python of the base images we use (NVIDIA's TensorRT images: their release notes; 24.12 on: Ubuntu 24.04).
BASE_PYTHON = {"python:3.11-slim": "3.11", "nvcr.io/nvidia/tensorrt:24.08-py3": "3.10",
               "nvcr.io/nvidia/tensorrt:25.01-py3": "3.12"}  # fmt: skip


@pytest.mark.parametrize("name", ["cpu.Dockerfile", "gpu.Dockerfile"])
def test_docker_base_images_have_a_python_the_package_installs_on(name):
    from packaging.specifiers import SpecifierSet

    lines = (REPO / "docker" / name).read_text().splitlines()
    base = next(line.split()[1] for line in lines if line.startswith("FROM"))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert base in BASE_PYTHON, f"{name}: add {base}'s Python to BASE_PYTHON"
    assert BASE_PYTHON[base] in SpecifierSet(requires), f"{base} has Python {BASE_PYTHON[base]}, {requires} needed"
    assert "3.10" not in SpecifierSet(requires)  # the table can fail: the old base is refused


@pytest.mark.parametrize("name", ["cpu.Dockerfile", "gpu.Dockerfile"])
def test_docker_images_run_existing_commands_and_check_a_real_route(name):
    import json

    from server.app import create_app
    from server.settings import Settings
    from upscaler.cli import build_parser

    text = (REPO / "docker" / name).read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    command = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert entry == ["upscaler"]
    args = build_parser().parse_args(command)  # exits (fails the test) on an unknown subcommand or flag
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert re.search(r"^USER upscaler$", text, re.M), "the image must not run as root"
    route = re.search(r"http://127\.0\.0\.1:8000(/\w+)", text).group(1)
    assert route in {r.path for r in create_app(Settings()).routes}
    assert "pip install ." in text or "pip install '.[" in text  # installs as the README does


def test_compose_names_existing_dockerfiles_settings_and_models():
    from server.settings import ENV_PREFIX, Settings
    from upscaler.models import get_model

    text = (REPO / "docker" / "compose.yaml").read_text()
    for dockerfile in re.findall(r"dockerfile: (\S+)", text):
        assert (REPO / dockerfile).is_file(), dockerfile
    known = {ENV_PREFIX + f.upper() for f in Settings.__dataclass_fields__}
    for var, value in re.findall(r"(UPSCALER_\w+): \"([^\"]*)\"", text):
        assert var in known, var
        if var == "UPSCALER_MODELS":
            for model in value.split(","):
                get_model(model)


@pytest.mark.timeout(300)
def test_wheel_ships_the_models_and_configs(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("upscaler-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "upscaler/models/manifest.json" in names
    for model in list_models():
        assert f"upscaler/models/weights/{model.weights.path.name}" in names
        assert f"upscaler/models/weights/{model.onnx.path.name}" in names
    assert any(n.startswith("upscaler/samples/") and n.endswith(".png") for n in names)
    assert any(n.startswith("training/configs/") for n in names)
    assert "server/app.py" in names
    assert not any(n.startswith("tests/") for n in names)


def test_first_command_serves_and_the_readme_curl_upscales_the_sample(tmp_path):
    """The README's first command starts the service; its curl example gets the sample back 4x."""
    from tests.server_helpers import serve
    from upscaler import decode_image

    first = setup_commands()[0]
    serve_args = first.split("upscaler serve", 1)[1].split()
    assert "--port" not in serve_args  # the default port, which the curl example uses
    curl = next(line for line in README.splitlines() if line.startswith("curl ") and "/v1/upscale" in line)
    sample = re.search(r"--data-binary @(\S+)", curl).group(1)
    content_type = re.search(r'-H "Content-Type: ([^"]+)"', curl).group(1)
    assert (REPO / sample).is_file() and "localhost:8000/v1/upscale" in curl
    with serve(tmp_path, *serve_args) as server, server.client() as client:
        reply = client.post("/v1/upscale", content=(REPO / sample).read_bytes(), headers={"Content-Type": content_type})
    assert reply.status_code == 200, reply.text
    assert decode_image(reply.content).shape == (436, 1024, 3)


def test_cli_upscales_the_bundled_sample(tmp_path):
    sample = REPO / "upscaler" / "samples" / "sintel-alley-256x109.png"
    result = run_cli("upscale", str(sample), "-o", str(tmp_path / "x4.png"))
    assert result.returncode == 0, result.stderr
    from upscaler import read_image

    assert read_image(tmp_path / "x4.png").shape == (436, 1024, 3)
