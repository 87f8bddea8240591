"""A small Colab-like Python environment for the widget tests.

Colab ships ipywidgets 7.7.1 (with numpy 2.1 and matplotlib 3.10), while requirements.txt
installs ipywidgets 8. The widget tests run in both: here, in a virtual environment that sees
the installed packages (``--system-site-packages``, so torch and the course are not installed
twice) and overrides just these three with Colab's versions. It lives in ``.cache/`` (ignored
by git), is made once (about 10 s, from PyPI) and reused while it still has those versions.

    python -m tools.colab_env      make (or check) the environment and print its python
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / ".cache" / "colab-like-env"
IPYWIDGETS = "7.7.1"
#: Colab's versions of what the widgets touch. ``--no-deps``: everything else (ipykernel,
#: traitlets, pillow...) comes from the main environment; ipywidgets 7 also needs
#: ipython_genutils. (Its other dependency, widgetsnbextension, is a front end we do not use.)
PACKAGES = [f"ipywidgets=={IPYWIDGETS}", "ipython_genutils==0.2.0", "numpy==2.1.*", "matplotlib==3.10.*"]
#: Printed by the environment's python to show that it has the versions above.
VERSION_PROBE = "import ipywidgets, numpy, matplotlib; print(ipywidgets.__version__, numpy.__version__, matplotlib.__version__)"


class CannotMakeEnvironment(RuntimeError):
    """The environment could not be made (typically: PyPI could not be reached)."""


def python_of(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def versions(python: Path) -> str | None:
    """``"7.7.1 2.1.3 3.10.9"`` (ipywidgets numpy matplotlib), or None if that python is broken."""
    if not python.exists():
        return None
    result = subprocess.run([str(python), "-c", VERSION_PROBE], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def is_colab_like(found: str | None) -> bool:
    if not found:
        return False
    ipywidgets, numpy, matplotlib = found.split()
    return ipywidgets == IPYWIDGETS and numpy.startswith("2.1.") and matplotlib.startswith("3.10.")


def ensure(folder: Path = FOLDER) -> Path:
    """The python of the Colab-like environment, made first if needed."""
    python = python_of(folder)
    if is_colab_like(versions(python)):
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # --without-pip: the main environment's pip (visible through system site-packages)
    # installs into this environment all the same, and making the venv takes a second.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(folder)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", *PACKAGES],
        capture_output=True, text=True)
    found = versions(python)
    if install.returncode != 0 or not is_colab_like(found):
        shutil.rmtree(folder, ignore_errors=True)
        raise CannotMakeEnvironment(
            f"could not make the Colab-like environment in {folder} "
            f"(pip install {' '.join(PACKAGES)}; is PyPI reachable?):\n"
            f"{install.stdout[-2000:]}{install.stderr[-2000:]}")
    return python


if __name__ == "__main__":
    made = ensure()
    print(made, versions(made))
