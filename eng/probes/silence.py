#!/usr/bin/env python3
"""Runs a command in a pseudo-terminal of 120x40 (as a user's terminal; MSBuild's terminal logger stays off in a
terminal without a size) and prints its wall time and the longest time without visible output (escape sequences and
line ends alone do not count). The README's first-run figure was measured so:

    git clone REPO fresh && cd fresh
    env -i HOME=$(mktemp -d) PATH=$PATH TERM=xterm-256color python3 eng/probes/silence.py dotnet run --project src/LlmPq.Host -- demo

The command's output is kept in silence.out beside the working folder."""
import fcntl, os, pty, re, select, struct, sys, termios, time

pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))
    os.execvp(sys.argv[1], sys.argv[1:])
start = last = time.time()
gap, gap_at, out = 0.0, 0.0, b''
while True:
    ready, _, _ = select.select([fd], [], [], 0.5)
    if ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
        if not re.sub(rb'\x1b\[[0-9;?]*[a-zA-Z]|\x1b[=>]|[\r\n]', b'', data).strip():
            continue
        now = time.time()
        if now - last > gap:
            gap, gap_at = now - last, last - start
        last = now
    elif os.waitpid(pid, os.WNOHANG)[0]:
        break
sys.stderr.write(f"total {time.time() - start:.1f} s, longest silence {gap:.1f} s starting at {gap_at:.1f} s\n")
open('silence.out', 'wb').write(out)
