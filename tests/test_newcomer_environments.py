"""The README's test command works in the Pythons newcomers run it with.

Two tests build Python environments of their own and so depend on how the Python running them
was made: the simulated Colab (tests/test_structure.py) and the Colab-like widget environment
(tests/test_widgets.py, tools/colab_env.py). Both used to run ``python -m venv
--system-site-packages``, which from inside a virtual environment sees the *base* interpreter's
packages, not the environment's: they failed in the README's own ``.venv``. Here they run
again, in a temporary folder, under

- a fresh virtual environment made by the base interpreter (a pyenv or system Python), the
  README's ``python -m venv .venv``;
- a virtual environment made from inside another virtual environment;
- the base interpreter itself, without a virtual environment (packages in its user site).

Installing the requirements into each would take minutes and a download; instead each gets
one ``.pth`` file that adds the folders holding the packages of the Python running this test
(the virtual environments are made ``--without-pip``): it then has the packages ``pip install
-r requirements-dev.txt`` would have installed, at the same versions (ensurepip's own pip and
setuptools are older and would shadow them). What matters here stays as a newcomer has it: a
Python whose base interpreter has none of the test packages.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import envs

ROOT = Path(__file__).resolve().parent.parent
#: The two tests that make environments of their own.
TESTS = [
    "tests/test_structure.py::test_setup_cell_in_a_simulated_colab_clones_installs_and_finds_the_data",
    "tests/test_widgets.py::test_widgets_also_work_with_colab_s_ipywidgets_7_7_1_numpy_2_1_matplotlib_3_10",
]


def base_python() -> Path:
    """The interpreter the running Python's virtual environment was made from (pyenv's or the
    system's), or the running Python itself when it is not a virtual environment."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (getattr(sys, "_base_executable", None),
                      Path(sys.base_prefix) / "bin" / version, Path(sys.base_prefix) / "bin" / "python3"):
        if candidate and Path(candidate).is_file():
            check = subprocess.run([str(candidate), "-c", "import sys; print(sys.prefix == sys.base_prefix)"],
                                   capture_output=True, text=True)
            if check.stdout.strip() == "True":
                return Path(candidate)
    pytest.fail(f"could not find the base interpreter of {sys.executable} (sys.base_prefix "
                f"{sys.base_prefix})")


def venv(maker: Path, folder: Path) -> Path:
    """``maker -m venv folder`` (as a newcomer types it, without pip); returns its python."""
    envs.run_step([str(maker), "-m", "venv", "--without-pip", str(folder)],
                  f"{maker} -m venv {folder}")
    return envs.python_of(folder)


def in_venv(python: Path) -> tuple[Path, Path, dict]:
    """(python, where its packages go, environment variables) for a virtual environment."""
    activated = {"VIRTUAL_ENV": str(python.parent.parent),  # as `source .venv/bin/activate` does
                 "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return python, envs.site_packages_of(python), activated


def fresh_venv(tmp_path: Path):
    return in_venv(venv(base_python(), tmp_path / "fresh-venv"))


def venv_inside_a_venv(tmp_path: Path):
    outer = venv(base_python(), tmp_path / "outer-venv")
    return in_venv(venv(outer, tmp_path / "inner-venv"))


def plain_python(tmp_path: Path):
    """The base interpreter itself, no virtual environment; its packages in the user
    site-packages (``pip install --user``), which PYTHONUSERBASE puts in the temporary folder."""
    python = base_python()
    env = {"PYTHONUSERBASE": str(tmp_path / "user-base")}
    user_site = envs.run_step([str(python), "-c", "import site; print(site.getusersitepackages())"],
                              "asking the base Python for its user site-packages",
                              env={**os.environ, **env}).strip()
    Path(user_site).mkdir(parents=True)
    return python, Path(user_site), env


@pytest.mark.parametrize("make", [fresh_venv, venv_inside_a_venv, plain_python],
                         ids=["fresh venv from the base Python", "venv made inside another venv",
                              "the base Python without a venv"])
def test_environment_making_tests_pass_in_a_newcomer_s_python(make, tmp_path, record_timing):
    started = time.perf_counter()
    python, packages, variables = make(tmp_path)
    # Its packages: the ones the Python running this test has (in place of installing them).
    (packages / "_course_test_packages.pth").write_text(
        f"import site; list(map(site.addsitedir, {envs.site_folders()!r}))\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST_", "BATCHNORM_COURSE_", "VIRTUAL_ENV", "PYTHONUSERBASE"))}
    env.update(variables)
    env.update({
        "BATCHNORM_COURSE_REQUIRE_COLAB_ENV": "1",
        "BATCHNORM_COURSE_COLAB_ENV_DIR": str(tmp_path / "colab-like-env"),
    })
    command = [str(python), "-m", "pytest", *TESTS, "-p", "no:cacheprovider", "-o", "addopts=",
               "-q", "-ra"]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    record_timing("the tests that make environments, in a newcomer's Python", make.__name__,
                  time.perf_counter() - started)
    lines = run.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    assert run.returncode == 0 and summary.startswith("2 passed") and "skipped" not in summary, (
        f"with {python} ({make.__name__}):\n{' '.join(command)}\n{run.stdout[-8000:]}{run.stderr[-2000:]}")
