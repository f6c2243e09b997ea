"""The program a shell runs: wait for the go signal, read the assignment, exec the workload.

An OCI process's argv is fixed at ``runc create``; a pooled shell cannot know its workload yet.
So the shell's process is this launcher. The prepare phase already releases ``runc init``
(exec.fifo), so a pooled shell is a *running* container whose launcher is blocked in ``open()``
of the FIFO ``/.fe/go`` (no CPU, a few hundred KiB): ``runc init``'s ~0.65 ms exec is out of the
request path. The execute phase writes ``/.fe/assign`` (argv and env, NUL-separated, see
:func:`fluidedge.instances.bundle.encode_assignment`), then :func:`signal_go` writes one byte to
the FIFO; the launcher reads the file and ``execve``s the workload. A static C launcher costs
one tiny exec; when no C compiler is available the part falls back to a busybox ``sh`` script
doing the same (slower, still correct).

The launcher lives in the shared read-only root (``/.fe-launcher``), built once per state dir.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

from fluidedge.instances.errors import RuntimeFailure
from fluidedge.instances.runc import process_running
from fluidedge.linux.proc import CommandError, run

GO_FIFO = "go"  # in the shell's assignment directory, seen as /.fe/go inside
GO_BYTES = b"g\n"  # one byte for the C launcher, one line for busybox sh's ``read``
LAUNCHER_ARG = "/.fe-launcher"


def make_go_fifo(assign_dir: Path) -> Path:
    """Create the shell's go FIFO (before ``runc create``: the launcher opens it at once)."""
    path = assign_dir / GO_FIFO
    os.mkfifo(path, 0o600)
    return path


def signal_go(fifo: Path, pid: int, *, timeout: float = 5.0) -> None:
    """Release a waiting launcher: open the FIFO for writing and write the go byte.

    ``O_NONBLOCK`` makes the open fail with ENXIO while no reader is there yet (a freshly
    started launcher not yet in ``open()``), so we retry briefly instead of blocking forever
    on a launcher that died.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise RuntimeFailure(f"go signal {fifo}: {exc.strerror}") from exc
        if time.monotonic() > deadline or not process_running(pid):
            raise RuntimeFailure(f"go signal {fifo}: launcher {pid} is not waiting")
        time.sleep(0.0001)
    try:
        os.write(fd, GO_BYTES)
    except OSError as exc:
        raise RuntimeFailure(f"go signal {fifo}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def launcher_waiting(pid: int) -> bool:
    """True if ``pid`` still runs the launcher (C or busybox sh), i.e. no workload exec'd yet."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = handle.read().split(b"\0")
    except OSError:
        return False
    return LAUNCHER_ARG.encode() in args


C_SOURCE = r"""
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
static char buf[131072];
int main(void) {
  static char *argv[1024], *envp[1024], *all[2048];
  for (;;) { /* wait for the go byte; an open without a byte (EOF) is no signal */
    char go;
    int g = open("/.fe/go", O_RDONLY | O_CLOEXEC);
    if (g < 0) {
      if (errno == EINTR) continue;
      write(2, "fe-launcher: no go fifo\n", 24);
      return 110;
    }
    ssize_t k = read(g, &go, 1);
    close(g);
    if (k == 1) break;
  }
  int fd = open("/.fe/assign", O_RDONLY | O_CLOEXEC);
  if (fd < 0) { write(2, "fe-launcher: no assignment\n", 27); return 111; }
  int n = 0, r;
  while (n < (int)sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) n += r;
  close(fd);
  buf[n] = 0;
  int c = 0;
  for (char *p = buf; p < buf + n && c < 2047; p += strlen(p) + 1) all[c++] = p;
  if (c < 2) { write(2, "fe-launcher: empty assignment\n", 30); return 112; }
  int argc = 0;
  for (char *q = all[0]; *q >= '0' && *q <= '9'; q++) argc = argc * 10 + (*q - '0');
  if (argc < 1 || argc >= c || argc > 1023) return 113;
  int i, e = 0;
  for (i = 0; i < argc; i++) argv[i] = all[1 + i];
  argv[argc] = 0;
  for (i = 1 + argc; i < c && e < 1023; i++) envp[e++] = all[i];
  envp[e] = 0;
  execve(argv[0], argv, envp);
  write(2, "fe-launcher: execve failed\n", 27);
  return 127;
}
"""

# Same contract in busybox sh: wait for a go line on the FIFO, then argc, argv..., env...
# NUL-separated.
SH_SOURCE = """#!/bin/busybox sh
[ -p /.fe/go ] || { echo "fe-launcher: no go fifo" >&2; exit 110; }
until IFS= read -r _go < /.fe/go; do :; done
set --
i=0
n=0
while IFS= read -r -d '' item; do
  if [ $i -eq 0 ]; then n=$item
  elif [ $i -le $n ]; then set -- "$@" "$item"
  else export "$item"
  fi
  i=$((i+1))
done < /.fe/assign
exec "$@"
"""


def build_launcher(directory: Path) -> tuple[Path, str]:
    """Build (or reuse) the launcher in ``directory``; return its path and kind (c or sh)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "fe-launcher"
    source = directory / "fe-launcher.c"
    kind_file = directory / "fe-launcher.kind"
    if (
        target.exists()
        and kind_file.exists()
        and source.exists()
        and (source.read_text() == C_SOURCE or kind_file.read_text() == "sh")
    ):
        return target, kind_file.read_text()
    source.write_text(C_SOURCE)
    gcc = shutil.which("gcc") or shutil.which("cc")
    kind = "sh"
    if gcc:
        tmp = directory / "fe-launcher.tmp"
        try:
            run([gcc, "-static", "-O2", "-s", "-o", str(tmp), str(source)], timeout=120)
            os.replace(tmp, target)
            kind = "c"
        except CommandError:
            tmp.unlink(missing_ok=True)
    if kind == "sh":
        if not Path("/bin/busybox").exists():
            raise RuntimeFailure("no C compiler and no /bin/busybox: cannot build the launcher")
        target.write_text(SH_SOURCE)
    target.chmod(0o755)
    kind_file.write_text(kind)
    return target, kind
