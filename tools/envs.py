"""Small Python environments the tests make, which see exactly the packages of the Python that
runs the tests.

The Colab simulation (tests/test_structure.py) and the Colab-like widget environment
(tools/colab_env.py) each need a Python of their own that still finds everything installed for
the tests (ipykernel, torch, the course). ``python -m venv --system-site-packages`` is not that:
run from a Python that is itself a virtual environment (the README's ``.venv``), it makes an
environment on top of the *base* interpreter, which sees the base interpreter's site-packages
and not the virtual environment's, so ipykernel is missing there.

``make(folder)`` makes a plain virtual environment instead (no system site-packages, no pip of
its own) and writes one ``.pth`` file into its site-packages that adds the site-packages folders
of the Python running now (``site_folders()``), after its own: what is installed into the new
environment comes first, everything else is found where the tests' Python finds it. The folders
are added with ``site.addsitedir``, so their own ``.pth`` files (editable installs such as the
course's, setuptools' distutils shim) work there too. pip, found the same way, installs into the
new environment and leaves the other folders alone ("outside environment").
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

#: The file in the new environment's site-packages that points at the tests' Python's folders.
PTH_NAME = "_course_sees_the_test_python.pth"


class EnvironmentProblem(RuntimeError):
    """A step of making or checking an environment failed; the message says which and why."""


def python_of(folder: Path) -> Path:
    """The python executable of the virtual environment in ``folder``."""
    return Path(folder) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def site_folders() -> list[str]:
    """The folders the running Python finds installed packages in, in its own search order:
    its site-packages (a virtual environment's, and the base interpreter's too when it was made
    with --system-site-packages), the user site-packages when that is on, purelib and platlib."""
    candidates = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    paths = sysconfig.get_paths()
    candidates += [paths["purelib"], paths["platlib"]]
    normal = lambda path: os.path.normcase(os.path.abspath(path))  # noqa: E731
    wanted = {normal(path) for path in candidates if os.path.isdir(path)}
    ordered = [normal(path) for path in sys.path if path and normal(path) in wanted]
    ordered += sorted(wanted - set(ordered))
    return list(dict.fromkeys(ordered))


def pth_text(folders: list[str] | None = None) -> str:
    """The .pth line that adds ``folders`` (default: ``site_folders()``) with site.addsitedir."""
    folders = site_folders() if folders is None else folders
    return (f"import site; list(map(site.addsitedir, {folders!r}))  "
            f"# written by tools/envs.py: the packages of {sys.prefix}\n")


def site_packages_of(python: Path) -> Path:
    """The site-packages folder of the environment whose interpreter is ``python``."""
    return Path(run_step([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         f"asking {python} for its site-packages folder").strip())


def sees_the_test_python(folder: Path) -> bool:
    """Whether the environment in ``folder`` points at the running Python's folders, as now."""
    python = python_of(folder)
    if not python.exists():
        return False
    try:
        return (site_packages_of(python) / PTH_NAME).read_text(encoding="utf-8") == pth_text()
    except (OSError, EnvironmentProblem):
        return False


def run_step(command: list[str], step: str, **options) -> str:
    """Run ``command``; return its stdout, or raise EnvironmentProblem naming ``step`` with the
    command's exit status and what it printed (the real error, not a guess)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, **options)
    except OSError as error:
        raise EnvironmentProblem(f"{step} failed: {type(error).__name__}: {error}") from error
    if done.returncode != 0:
        output = (done.stdout[-3000:] + done.stderr[-3000:]).strip()
        raise EnvironmentProblem(f"{step} failed: `{' '.join(command)}` exited with status "
                                 f"{done.returncode}:\n{output}")
    return done.stdout


def make(folder: Path) -> Path:
    """Make a virtual environment in ``folder`` that sees the running Python's packages; return
    its python. Raises EnvironmentProblem naming the step that failed."""
    folder = Path(folder)
    run_step([sys.executable, "-m", "venv", "--without-pip", str(folder)],
             f"making a virtual environment in {folder} (python -m venv)")
    python = python_of(folder)
    (site_packages_of(python) / PTH_NAME).write_text(pth_text(), encoding="utf-8")
    return python


def check_imports(python: Path, modules: list[str], why: str) -> None:
    """Raise EnvironmentProblem, with the traceback, if ``python`` cannot import ``modules``."""
    run_step([str(python), "-c", "\n".join(f"import {name}" for name in modules)],
             f"importing {', '.join(modules)} in {python} ({why})")


if __name__ == "__main__":
    print("\n".join(site_folders()))
