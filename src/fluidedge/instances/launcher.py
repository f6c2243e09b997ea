"""The program a shell runs: wait for the go signal, read the assignment, exec the workload.

An OCI process's argv is fixed at ``runc create``; a pooled shell cannot know its workload yet.
So the shell's process is this launcher. The prepare phase already releases ``runc init``
(exec.fifo), so a pooled shell is a *running* container whose launcher is blocked in ``open()``
of the FIFO ``/.fe/go`` (no CPU, a few hundred KiB): ``runc init``'s ~0.65 ms exec is out of the
request path. In the execute phase :func:`signal_go` writes the assignment (argv and env,
NUL-separated, see :func:`fluidedge.instances.bundle.encode_assignment`) into the FIFO, framed
(``a``, its length as 4 bytes little-endian, the bytes); the launcher reads it all (a frame cut
short, e.g. by the daemon's death, fails its start) and ``execve``s the workload. The
assignment never touches a disk: no file for an instance's secrets to rest in, and no file to
create, chmod, chown and write in the request path (each a journal handle on ext4, which waits
when the journal commits: 0.08-0.27 ms measured). A static C launcher costs one tiny exec; when
no C compiler is available the part falls back to a busybox ``sh`` script, which reads the
assignment from the file ``/.fe/assign`` (0600, its user's) after one go line (slower, still
correct).

The launcher lives in the shared read-only root (``/.fe-launcher``), built once per state dir.

**Its identity.** Re-adoption must know whether a container's process is still the launcher
waiting for its go signal (a pooled shell, or a claim that crashed before release) or a
workload: a workload taken for a waiting launcher would be destroyed (an instance row) or
handed to the next request as a shell (a shell row). A command line can be imitated (a
workload may even exec ``/.fe-launcher`` itself: it is in its root). So each shell's launcher
is started with a per-shell random **token** as its argument (``/.fe-launcher <token>``),
recorded in the shell's row and its instance's, and seen by no workload (the launcher's argv is
replaced by the workload's at its ``execve``; the bundle and the store are the host's, 0600),
and :func:`is_waiting_launcher` requires that exact argv *and*, for the C launcher, that the
process's executable (``/proc/<pid>/exe``) be the launcher binary of this state directory
(same device and inode: the bind mount shows the host file). The busybox fallback runs as
``/bin/busybox sh /.fe-launcher <token>`` (its ``#!`` line): there the token alone says it.
Rows written before the token existed are checked against the bare ``/.fe-launcher`` argv and,
for the C launcher, the binary.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import time
from pathlib import Path

from fluidedge.instances.bundle import LAUNCHER_IN_ROOT, launcher_argv
from fluidedge.instances.errors import LauncherGone, RuntimeFailure
from fluidedge.instances.models import MAX_ARGS, MAX_ASSIGNMENT_BYTES, MAX_ENV
from fluidedge.linux.proc import CommandError, run
from fluidedge.linux.procfs import process_running

GO_FIFO = "go"  # in the shell's assignment directory, seen as /.fe/go inside
# The launcher's report back: it opens /.fe/started for writing (close-on-exec) after the go
# signal, so the manager, holding the read end, sees EOF the moment execve succeeds, or reads
# START_FAILED + one errno byte when it fails (see fluidedge.instances.readiness).
STARTED_FIFO = "started"
START_FAILED = b"E"
GO_BYTES = b"g\n"  # the busybox launcher's go line (its assignment is the file)
ASSIGNMENT_TAG = b"a"  # the C launcher's go: this byte, the length (u32 LE), the assignment


def go_frame(assignment: bytes) -> bytes:
    """The C launcher's go signal carrying ``assignment``."""
    return ASSIGNMENT_TAG + len(assignment).to_bytes(4, "little") + assignment


LAUNCHER_ARG = LAUNCHER_IN_ROOT


def make_go_fifo(assign_dir: Path) -> Path:
    """Create the shell's go FIFO (before ``runc create``: the launcher opens it at once) and
    its started FIFO (the launcher's report of its ``execve``)."""
    path = assign_dir / GO_FIFO
    os.mkfifo(path, 0o600)
    os.mkfifo(assign_dir / STARTED_FIFO, 0o600)
    return path


def signal_go(fifo: Path, pid: int, go: bytes = GO_BYTES, *, timeout: float = 5.0) -> None:
    """Release a waiting launcher: open the FIFO for writing and write ``go`` (the C
    launcher's :func:`go_frame`, or the busybox launcher's go line).

    ``O_NONBLOCK`` makes the open fail with ENXIO while no reader is there yet (a freshly
    started launcher not yet in ``open()``), so we retry instead of blocking forever on a
    launcher that died. The retries start at 0.1 ms and double up to 10 ms: a launcher about
    to open is met at once, and one that is slow (a loaded or emulated host) is not starved of
    CPU by our polling. A frame larger than the pipe (64 KiB) is written as the launcher reads
    it, within the same ``timeout``.
    """
    deadline = time.monotonic() + timeout
    pause = 0.0001
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise RuntimeFailure(f"go signal {fifo}: {exc.strerror}") from exc
        if not process_running(pid):
            raise LauncherGone(f"go signal {fifo}: launcher {pid} exited before its go")
        if time.monotonic() > deadline:
            raise RuntimeFailure(
                f"go signal {fifo}: launcher {pid} did not open its go FIFO within {timeout:g} s"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
    try:
        view = memoryview(go)
        writable: select.poll | None = None
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:  # the pipe is full: wait for the launcher to read
                if writable is None:
                    writable = select.poll()
                    writable.register(fd, select.POLLOUT)
                left = deadline - time.monotonic()
                if left <= 0 or not writable.poll(min(left, 0.1) * 1000):
                    if not process_running(pid):
                        raise LauncherGone(
                            f"go signal {fifo}: launcher {pid} exited during its go"
                        ) from None
                    if left <= 0:
                        raise RuntimeFailure(
                            f"go signal {fifo}: launcher {pid} did not read its assignment "
                            f"within {timeout:g} s"
                        ) from None
    except OSError as exc:
        if exc.errno == errno.EPIPE and not process_running(pid):
            raise LauncherGone(f"go signal {fifo}: launcher {pid} exited during its go") from exc
        raise RuntimeFailure(f"go signal {fifo}: {exc.strerror}") from exc
    finally:
        os.close(fd)


FileId = tuple[int, int]  # (st_dev, st_ino)


def file_id(path: str | Path) -> FileId | None:
    """The device and inode of the file ``path`` names (following links), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def is_waiting_launcher(
    argv: list[bytes], exe: FileId | None, *, token: str | None, binary: FileId | None
) -> bool:
    """Whether a process with ``argv`` running ``exe`` is the launcher started with ``token``
    (None: a row from before tokens) and not a workload (see the module docstring).

    ``binary``: the C launcher of this state directory; the busybox script runs as
    ``/bin/busybox sh /.fe-launcher <token>``, whose executable is the image's busybox.
    """
    own = [arg.encode() for arg in launcher_argv(token)]
    if argv == own:  # the C launcher, exec'd directly
        return exe is not None and exe == binary
    return argv == [b"/bin/busybox", b"sh", *own]


def _argv(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return raw.removesuffix(b"\0").split(b"\0")


def still_untokened_launcher(pid: int) -> bool:
    """Whether ``pid``, released from a shell made before tokens (and before the started
    FIFO), still has the launcher's bare argv, i.e. has not exec'd its workload yet."""
    argv = _argv(pid)
    return argv is not None and argv[-1:] == [LAUNCHER_ARG.encode()]


# How long :func:`launcher_waiting` waits for a process still in its exec (a shell started
# moments before a restart) to show its new command line.
EXEC_SETTLE_S = 1.0


def _exec_in_progress(argv: list[bytes]) -> bool:
    """An empty command line (``execve`` has installed the new memory map but not yet its
    arguments, or the process is a zombie) or ``runc init`` (the container's init has not
    exec'd the launcher yet): neither is an answer about what the process will be."""
    return argv == [b""] or argv[:2] == [b"runc", b"init"]


def launcher_waiting(pid: int, token: str | None, binary: FileId | None) -> bool:
    """True if ``pid`` is still the waiting launcher started with ``token``
    (:func:`is_waiting_launcher` on its ``/proc`` entries); False if it is gone.

    A process caught inside its exec is given up to :data:`EXEC_SETTLE_S` to finish it, so a
    pool shell started just before a restart is not taken for a stranger."""
    deadline = time.monotonic() + EXEC_SETTLE_S
    argv = _argv(pid)
    while argv is not None and _exec_in_progress(argv) and time.monotonic() < deadline:
        time.sleep(0.005)
        argv = _argv(pid)
    if argv is None:
        return False
    return is_waiting_launcher(argv, file_id(f"/proc/{pid}/exe"), token=token, binary=binary)


_C_TEMPLATE = r"""
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
static char buf[@MAX_BYTES@ + 2]; /* one more byte read = too big */
/* a failure before the exec: 'L' + exit code to the manager (if it waits), a line to stderr */
#define FAIL(code, msg)                                          \
  do {                                                           \
    if (s >= 0) { char w[2] = {'L', (char)(code)}; write(s, w, 2); } \
    write(2, msg, sizeof(msg) - 1);                              \
    return code;                                                 \
  } while (0)
/* read exactly len bytes from fd (0: all of them; -1: EOF or an error first) */
static int full(int fd, char *to, int len) {
  int n = 0;
  while (n < len) {
    ssize_t r = read(fd, to + n, len - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    n += r;
  }
  return 0;
}
int main(void) {
  static char *argv[@MAX_ARGS@ + 1], *envp[@MAX_ENV@ + 1], *all[@MAX_ARGS@ + @MAX_ENV@ + 2];
  char go = 0;
  int g;
  for (;;) { /* wait for the go frame; an open without a byte (EOF) is no signal */
    g = open("/.fe/go", O_RDONLY | O_CLOEXEC);
    if (g < 0) {
      if (errno == EINTR) continue;
      write(2, "fe-launcher: no go fifo\n", 24);
      return 110;
    }
    ssize_t k = read(g, &go, 1);
    if (k == 1) break;
    close(g);
  }
  /* the manager holds the read end while it waits for readiness (ENXIO: nobody waits) */
  int s = open("/.fe/started", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (go != 'a') FAIL(111, "fe-launcher: no assignment\n");
  unsigned char h[4];
  if (full(g, (char *)h, 4) < 0) FAIL(116, "fe-launcher: assignment cut short\n");
  unsigned int n = h[0] | h[1] << 8 | h[2] << 16 | (unsigned int)h[3] << 24;
  if (n > @MAX_BYTES@) FAIL(114, "fe-launcher: assignment too big\n");
  if (full(g, buf, (int)n) < 0) FAIL(116, "fe-launcher: assignment cut short\n");
  close(g);
  buf[n] = 0;
  int c = 0;
  for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
    if (c == @MAX_ARGS@ + @MAX_ENV@ + 1) FAIL(115, "fe-launcher: too many items\n");
    all[c++] = p;
  }
  if (c < 2) FAIL(112, "fe-launcher: empty assignment\n");
  int argc = 0;
  for (char *q = all[0]; *q >= '0' && *q <= '9'; q++) argc = argc * 10 + (*q - '0');
  if (argc < 1 || argc >= c || argc > @MAX_ARGS@ || c - 1 - argc > @MAX_ENV@)
    FAIL(113, "fe-launcher: bad assignment\n");
  int i, e = 0;
  for (i = 0; i < argc; i++) argv[i] = all[1 + i];
  argv[argc] = 0;
  for (i = 1 + argc; i < c; i++) envp[e++] = all[i];
  envp[e] = 0;
  execve(argv[0], argv, envp);
  char why[2] = {'E', (char)errno}; /* success closed s (close-on-exec): the manager's EOF */
  if (s >= 0) write(s, why, 2);
  write(2, "fe-launcher: execve failed\n", 27);
  return 127;
}
"""

# The C launcher's limits are the API's (the request is refused with a 400 beyond them).
C_SOURCE = (
    _C_TEMPLATE.replace("@MAX_BYTES@", str(MAX_ASSIGNMENT_BYTES))
    .replace("@MAX_ARGS@", str(MAX_ARGS))
    .replace("@MAX_ENV@", str(MAX_ENV))
)

# Same contract in busybox sh: wait for a go line on the FIFO, then argc, argv..., env...
# NUL-separated. The workload gets exactly the assignment's environment, like execve(envp) in
# the C launcher: two passes put the env entries first, then the argv, behind ``env -i``
# (nothing of the shell's own PATH, PWD or SHLVL leaks through; ``env`` takes the first word
# without ``=`` as the program, hence the API refuses ``=`` in ``command[0]``).
SH_SOURCE = """#!/bin/busybox sh
[ -p /.fe/go ] || { echo "fe-launcher: no go fifo" >&2; exit 110; }
until IFS= read -r _go < /.fe/go; do :; done
# <> does not block without a reader; closed just before the exec below (the manager's EOF)
[ -p /.fe/started ] && exec 3<>/.fe/started
set --
i=0
n=0
while IFS= read -r -d '' item; do
  if [ $i -eq 0 ]; then n=$item
  elif [ $i -gt $n ]; then set -- "$@" "$item"
  fi
  i=$((i+1))
done < /.fe/assign
i=0
while IFS= read -r -d '' item; do
  if [ $i -gt 0 ] && [ $i -le $n ]; then set -- "$@" "$item"; fi
  i=$((i+1))
done < /.fe/assign
exec /bin/busybox env -i "$@" 3>&-
"""

# Compiled launchers of this process, by compiler and source: every manager's state directory
# gets a copy without running gcc again (a test session makes dozens; under TCG in the VM tier
# a static link takes seconds).
_COMPILED: dict[tuple[str, str], bytes] = {}


def _compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


def _compile(gcc: str, source: Path) -> bytes | None:
    key = (gcc, C_SOURCE)
    if key not in _COMPILED:
        tmp = source.with_name("fe-launcher.tmp")
        try:
            run([gcc, "-static", "-O2", "-s", "-o", str(tmp), str(source)], timeout=120)
        except CommandError:
            tmp.unlink(missing_ok=True)
            return None
        _COMPILED[key] = tmp.read_bytes()
        tmp.unlink()
    return _COMPILED[key]


def build_launcher(directory: Path, kind: str = "auto") -> tuple[Path, str]:
    """Build (or reuse) the launcher in ``directory``; return its path and kind (c or sh).

    ``kind``: ``auto`` (C when a compiler works, else the busybox script), ``c`` (fail without
    a compiler) or ``sh`` (the script, for tests and debugging). A script built earlier for lack
    of a compiler is not reused once a compiler is there: ``auto`` retries the C build.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / "fe-launcher"
    source = directory / "fe-launcher.c"
    kind_file = directory / "fe-launcher.kind"
    gcc = _compiler() if kind != "sh" else None
    if target.exists() and kind_file.exists() and source.exists():
        built = kind_file.read_text()
        current = source.read_text() == C_SOURCE
        if built == "c" and current and kind in ("auto", "c"):
            return target, "c"
        if built == "sh" and target.read_text() == SH_SOURCE and (kind == "sh" or not gcc):
            return target, "sh"
    source.write_text(C_SOURCE)
    binary = _compile(gcc, source) if gcc else None
    if binary is not None:
        tmp = directory / "fe-launcher.new"
        tmp.write_bytes(binary)
        tmp.chmod(0o755)
        os.replace(tmp, target)
        built = "c"
    elif kind == "c":
        raise RuntimeFailure("launcher = 'c' but no working C compiler (gcc, libc6-dev)")
    else:
        if not Path("/bin/busybox").exists():
            raise RuntimeFailure("no C compiler and no /bin/busybox: cannot build the launcher")
        tmp = directory / "fe-launcher.new"
        tmp.write_text(SH_SOURCE)
        tmp.chmod(0o755)
        os.replace(tmp, target)
        built = "sh"
    kind_file.write_text(built)
    return target, built
