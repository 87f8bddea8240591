"""A small Colab-like Python environment for the widget tests.

Colab ships ipywidgets 7.7.1 (with numpy 2.1 and matplotlib 3.10), while requirements.txt
installs ipywidgets 8. The widget tests run in both: here, in a virtual environment that sees
exactly the packages of the Python running the tests (tools/envs.py: a ``.pth`` file, so torch
and the course are not installed twice) and overrides just these with Colab's versions. It lives
in ``.cache/`` (ignored by git; ``BATCHNORM_COURSE_COLAB_ENV_DIR`` moves it), is made once
(about 10 s, from PyPI) and reused while it still has those versions and still points at the
same Python's packages.

    python -m tools.colab_env      make (or check) the environment and print its python
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tools import envs

ROOT = Path(__file__).resolve().parent.parent
FOLDER = Path(os.environ.get("BATCHNORM_COURSE_COLAB_ENV_DIR") or ROOT / ".cache" / "colab-like-env")
IPYWIDGETS = "7.7.1"
#: Colab's versions of what the widgets touch. ``--no-deps``: everything else (ipykernel,
#: traitlets, pillow...) comes from the main environment; ipywidgets 7 also needs
#: ipython_genutils. (Its other dependency, widgetsnbextension, is a front end we do not use.)
PACKAGES = [f"ipywidgets=={IPYWIDGETS}", "ipython_genutils==0.2.0", "numpy==2.1.*", "matplotlib==3.10.*"]
#: Printed by the environment's python to show that it has the versions above.
VERSION_PROBE = "import ipywidgets, numpy, matplotlib; print(ipywidgets.__version__, numpy.__version__, matplotlib.__version__)"

CannotMakeEnvironment = envs.EnvironmentProblem
python_of = envs.python_of


def versions(python: Path) -> str | None:
    """``"7.7.1 2.1.3 3.10.9"`` (ipywidgets numpy matplotlib), or None if that python is broken."""
    try:
        return probe(python)
    except envs.EnvironmentProblem:
        return None


def probe(python: Path) -> str:
    """The versions ``python`` has; raises EnvironmentProblem with the probe's traceback."""
    return envs.run_step([str(python), "-c", VERSION_PROBE],
                         f"importing ipywidgets, numpy and matplotlib in {python}").strip()


def is_colab_like(found: str | None) -> bool:
    if not found:
        return False
    ipywidgets, numpy, matplotlib = found.split()
    return ipywidgets == IPYWIDGETS and numpy.startswith("2.1.") and matplotlib.startswith("3.10.")


def ensure(folder: Path = FOLDER) -> Path:
    """The python of the Colab-like environment, made first if needed.

    Raises CannotMakeEnvironment (tools.envs.EnvironmentProblem) naming the step that failed
    and showing its error: making the virtual environment, pip install, or the check that the
    environment has Colab's versions and the kernel it needs."""
    folder = Path(folder)
    python = python_of(folder)
    if envs.sees_the_test_python(folder) and is_colab_like(versions(python)):
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        python = envs.make(folder)
        # pip comes from the tests' Python (through the .pth) and installs into this environment.
        envs.run_step([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                       "--no-deps", *PACKAGES],
                      f"installing Colab's versions into {folder} (pip install {' '.join(PACKAGES)})")
        found = probe(python)
        if not is_colab_like(found):
            raise envs.EnvironmentProblem(
                f"{folder} has ipywidgets, numpy, matplotlib {found} after pip install, not "
                f"{IPYWIDGETS}, 2.1.*, 3.10.*")
        envs.check_imports(python, ["ipykernel_launcher", "pytest", "nbclient"],
                           "the widget tests run there")
    except envs.EnvironmentProblem:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return python


if __name__ == "__main__":
    made = ensure()
    print(made, versions(made))
