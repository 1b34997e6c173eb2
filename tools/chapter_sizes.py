"""Source lines (outputs excluded) and the longest code cell of every notebook, against the chapters' aim (≤ ~600
lines, code cells ≤ ~40 lines):  python tools/chapter_sizes.py"""
import json
from pathlib import Path

nbs = Path(__file__).resolve().parents[1]/'nbs'
for f in sorted(nbs.glob('**/*.ipynb')):
    if any(p.startswith(('_', '.')) for p in f.relative_to(nbs).parts): continue
    cells = json.loads(f.read_text())['cells']
    lines = [len(''.join(c['source']).splitlines()) for c in cells]
    code = [n for n, c in zip(lines, cells) if c['cell_type'] == 'code']
    flag = ' *' if sum(lines) > 600 or max(code, default=0) > 40 else ''
    print(f"{str(f.relative_to(nbs)):38s} {sum(lines):5d} lines, longest code cell {max(code, default=0):3d}{flag}")
