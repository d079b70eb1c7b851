"""What can be checked of the Docker image without a Docker daemon: what goes in, what stays out, the pins."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
RUNTIME_PACKAGES = ("connector", "accounting", "integrations")


def test_the_build_context_leaves_out_secrets_state_and_development_code():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", "var", ".venv", ".git", "tests", "bench", "simulators"} <= ignored


def test_the_image_copies_an_allow_list_not_the_whole_context():
    copies = re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.MULTILINE)
    sources = {src.rstrip("/") for line in copies for src in line.split()[:-1]}
    assert sources == {"pyproject.toml", "uv.lock", "manage.py", *RUNTIME_PACKAGES, "examples"}


def test_runtime_code_imports_nothing_the_image_leaves_out():
    left_out = {"tests", "bench", "simulators"}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                for name in names:
                    assert name.split(".")[0] not in left_out, f"{path.relative_to(ROOT)} imports {name}"


def test_two_stages_a_pinned_uv_and_the_healthcheck():
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.MULTILINE)) == 2
    pinned = re.search(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE, re.MULTILINE).group(1)
    assert 'pip install --no-cache-dir "uv==${UV_VERSION}"' in DOCKERFILE
    assert f'UV_VERSION="${{UV_VERSION:-{pinned}}}"' in (ROOT / "bin" / "_uv").read_text()  # one pin for both
    assert 'CMD ["python", "-m", "connector.healthcheck"]' in DOCKERFILE
