"""The program a shell runs: read the assignment, exec the workload.

An OCI process's argv is fixed at ``runc create``; a pooled shell cannot know its workload yet.
So the shell's process is this launcher: when the execute phase has written ``/.fe/assign``
(argv and env, NUL-separated, see :func:`fluidedge.instances.bundle.encode_assignment`) and
released the shell, ``runc init`` execs the launcher, which reads the file and ``execve``s the
workload. A static C launcher costs one tiny exec; when no C compiler is available the part falls
back to a busybox ``sh`` script doing the same (slower, still correct).

The launcher lives in the shared read-only root (``/.fe-launcher``), built once per state dir.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fluidedge.instances.errors import RuntimeFailure
from fluidedge.linux.proc import CommandError, run

C_SOURCE = r"""
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
static char buf[131072];
int main(void) {
  static char *argv[1024], *envp[1024], *all[2048];
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

# Same contract in busybox sh: argc, argv..., env... NUL-separated.
SH_SOURCE = """#!/bin/busybox sh
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
