"""Start the example: the database with 2000 followers, the dev server, and a worker.

    python3 examples/blog/run.py            # then open http://127.0.0.1:8000/

E-mails land as .eml files in examples/blog/.data/outbox (the embedded default);
set MAILSPOOL_TRANSPORT=smtp://... to deliver for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def in_project_venv() -> None:
    """Re-run this script with the project's virtualenv, set up by dev.py on first use."""
    try:
        import django  # noqa: F401

        import mailspool  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT))
        from dev import PYTHON, ensure_venv

        ensure_venv("test")
        os.execv(str(PYTHON), [str(PYTHON), __file__, *sys.argv[1:]])  # noqa: S606 - no shell wanted


def main() -> None:
    in_project_venv()
    sys.path.insert(0, str(HERE))
    import blog

    blog.seed(int(os.environ.get("BLOG_FOLLOWERS", "2000")))
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    worker = subprocess.Popen([sys.executable, str(HERE / "blog.py"), "mailspool_worker"], env=env)
    try:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "blog.py"),
                "runserver",
                "--noreload",
                os.environ.get("BLOG_ADDRESS", "127.0.0.1:8000"),
            ],
            env=env,
            check=False,
        )
    except KeyboardInterrupt:
        pass
    finally:
        worker.terminate()
        worker.wait(30)


if __name__ == "__main__":
    main()
