"The README opens with the install and test commands that CI runs, and is what tools/readme.py makes of nbs/index.ipynb."
import re, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]

def ci_var(name):
    return re.search(rf"^{name}='([^']*)'", (root/'.ci'/'run').read_text(), re.M).group(1)

def test_readme_commands_are_the_ci_commands():
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)\n```", (root/'README.md').read_text(), re.S)
    assert ci_var('INSTALL') in blocks[0], (blocks[0], ci_var('INSTALL'))
    assert blocks[1].strip() == ci_var('TESTS')

def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(root/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
