#!/usr/bin/env python3
"""`run --interactive` on a real pseudo-terminal: answer "run", "skip", then "continue"."""
import os
import pty
import select
import sys
import tempfile
import time

WORKFLOW = """
task("one"):command(function() log.info("ONE RAN") end):build()
task("two"):command(function() log.info("TWO RAN") end):build()
task("three"):command(function() log.info("THREE RAN") end):build()
task("four"):command(function() log.info("FOUR RAN") end):build()
"""

def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="sloth-interactive.")
    path = os.path.join(work, "wf.sloth")
    with open(path, "w") as f:
        f.write(WORKFLOW)
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(work)
        os.environ["SLOTH_RUNNER_HOME"] = os.path.join(work, "home")
        os.environ["NO_COLOR"] = "1"
        os.execv(binary, [binary, "run", "-f", path, "--interactive"])
    answers = [b"r\n", b"s\n", b"c\n"]
    out = b""
    deadline = time.time() + 30
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
        asked = out.count(b"? run task")
        if answers and asked > 3 - len(answers):
            os.write(fd, answers.pop(0))
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    checks = [
        os.waitstatus_to_exitcode(status) == 0,
        "ONE RAN" in text,
        "TWO RAN" not in text and "skipped at the prompt" in text,
        "THREE RAN" in text and "FOUR RAN" in text,
        text.count("? run task") == 3,  # "continue" stops the questions
    ]
    if not all(checks):
        print(text)
        print("checks:", checks)
        return 1
    print("interactive prompt ok")
    return 0

if __name__ == "__main__":
    sys.exit(main())
