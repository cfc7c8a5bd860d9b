"""The files beside the weights (config, generation config, tokenizer, code files, model card), written by a child
process while the converter copies the weights.

Those files need transformers (its configuration and tokenizer classes, about three seconds of imports); the
weights need neither it nor torch (`weights`). So `codellama-convert` starts this module as a child
process at launch: it imports what it needs and loads the tokenizer while the parent checks the input and copies
the weights, then, once
the parent has sent it the job (one JSON line on stdin), writes its files into the parent's staging directory with
the same function the in-process conversion uses (`convert.write_metadata`), so the output is the same bytes.

The parent moves the staging directory into place only once both have succeeded. A failure in the child is
reported by the parent as the same one-line error; a parent that fails or is interrupted kills the child first;
and on Linux a child whose parent dies (even by SIGKILL) is killed by the kernel (`PR_SET_PDEATHSIG`), so no orphan
keeps writing. A child that never receives a job (end of stdin) exits without writing anything.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from .. import DEFER_REGISTRATION_ENV
from .errors import ConversionError

_PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent exits


class MetadataProcess:
    """The child process that writes a conversion's metadata; a context manager that never leaves it running."""

    def __init__(self, input_dir: Path) -> None:
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop) a file, not a pipe: a chatty child can never block on it
        env = {**os.environ, DEFER_REGISTRATION_ENV: "1"}  # its output does not depend on the registration
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(os.getpid()), str(input_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._errors,
            env=env,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def start_writing(self, **job: Any) -> None:
        """Send the job: `input_dir`, `staging` and the keywords of `convert.write_metadata` (`ConversionJob.metadata`)."""
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it died already: `wait` reports how
            self._process.stdin.write(json.dumps(job).encode() + b"\n")
            self._process.stdin.close()

    def wait(self) -> None:
        """Wait until the files are written; raises the child's ConversionError (or a RuntimeError) if it failed."""
        code = self._process.wait()
        if code == 0:
            return
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        if code == 1 and lines and lines[-1].startswith(_ERROR_PREFIX):
            raise ConversionError(lines[-1].removeprefix(_ERROR_PREFIX))
        detail = "\n".join(lines[-20:]) or f"exit status {code}"
        raise RuntimeError(f"the process writing the config and tokenizer failed:\n{detail}")

    def stop(self) -> None:
        """Kill the child if it is still running, and reap it."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        self._errors.close()

    def __enter__(self) -> MetadataProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


_ERROR_PREFIX = "ConversionError: "


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _main(parent: int, input_dir: Path) -> int:
    _die_with_parent(parent)
    # A short-lived process whose objects are nearly all kept (modules, one tokenizer): the cycle collector would
    # only walk them again and again, a quarter of the import time.
    gc.disable()
    # The slow imports, made while the parent checks the input and copies the weights.
    from .convert import load_tokenizer, write_metadata
    from .meta_checkpoint import MetaCheckpoint

    # So is the tokenizer (half a second): it depends on tokenizer.model alone. The parent checks the input
    # meanwhile; if the file is unreadable here, the parent refuses it, or the job loads it again and says why.
    try:
        tokenizer = load_tokenizer(input_dir / "tokenizer.model")
    except Exception:
        tokenizer = None
    line = sys.stdin.readline()
    if not line:  # the parent gave up (bad input, a fallback, an interrupt): nothing to write
        return 0
    job = json.loads(line)
    try:
        checkpoint = MetaCheckpoint.open(job.pop("input_dir"))
        staging = Path(job.pop("staging"))
        if checkpoint.tokenizer_path.resolve() != (input_dir / "tokenizer.model").resolve():
            tokenizer = None
        write_metadata(checkpoint, staging, tokenizer=tokenizer, **job)
    except ConversionError as error:
        print(f"{_ERROR_PREFIX}{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(int(sys.argv[1]), Path(sys.argv[2])))


__all__ = ["MetadataProcess"]
