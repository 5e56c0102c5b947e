#!/usr/bin/env python3
"""Runs the examples of one documentation page, so the docs cannot drift from the code.

Every ```lua block whose first line is `-- example: NAME` is written to a file and run with
run_workflow_file.sh (which honours `-- test:` directives inside the block). Other blocks are
illustrations and are not run.

    run_doc_examples.py BINARY PAGE.md
"""
import os
import re
import subprocess
import sys
import tempfile

def main():
    binary, page = sys.argv[1], sys.argv[2]
    text = open(page, encoding="utf-8").read()
    blocks = re.findall(r"```lua\n(.*?)```", text, flags=re.S)
    examples = [b for b in blocks if b.startswith("-- example:")]
    if not examples:
        print(f"{page}: no runnable examples")
        return 0
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_workflow_file.sh")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sloth-doc.") as tmp:
        for block in examples:
            name = block.splitlines()[0].split(":", 1)[1].strip()
            path = os.path.join(tmp, f"{name}.sloth")
            with open(path, "w", encoding="utf-8") as f:
                f.write(block)
            result = subprocess.run(["bash", runner, binary, path], capture_output=True, text=True)
            status = "ok" if result.returncode == 0 else "FAILED"
            print(f"{status} {page} example {name}")
            if result.returncode != 0:
                failed += 1
                print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
