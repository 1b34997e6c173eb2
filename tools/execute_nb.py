"""Execute notebooks in place, refreshing the outputs of the cells `nbdev-test` runs and keeping the committed
outputs of the cells it skips (flagged `slow` or `cuda`, unless asked for with --flags).

Usage: python tools/execute_nb.py nbs/11_mambaad.ipynb [more.ipynb ...] [--flags slow] [--cells ID ...] [--timeout 900]
--cells runs the listed flagged cells (by cell id) as well, without the other flagged cells: for a self-contained
experiment cell added to a notebook whose other long runs need not be repeated.
Run from the repository root; each notebook runs in its own kernel with the notebook's folder as working directory.
"""
import argparse, re, copy
from pathlib import Path
import nbformat
from nbclient import NotebookClient

SKIP_DEFAULT = ('slow', 'cuda')

def cell_flags(source: str) -> set:
    "Flags of a code cell: the words of its first line when that line is `#| flag ...` (nbdev's test flags)."
    first = source.lstrip().splitlines()[0] if source.strip() else ''
    m = re.match(r'#\|\s*([\w\s-]+)$', first)
    return set(m.group(1).split()) if m else set()

def execute(path, run_flags=(), timeout=900, cells=()):
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    skip = set(SKIP_DEFAULT) - set(run_flags)
    kept = {}
    for i, c in enumerate(nb.cells):
        if c.cell_type == 'code' and cell_flags(c.source) & skip and c.get('id') not in cells:
            kept[i] = (c.source, copy.deepcopy(c.outputs), c.get('execution_count'))
            c.source = ''                      # skipped: nothing runs, its committed outputs come back below
    try: NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    finally:                                   # on an error too: the outputs up to the failing cell are not lost
        for i, (src, outs, count) in kept.items():
            nb.cells[i].source, nb.cells[i].outputs, nb.cells[i].execution_count = src, outs, count
        nbformat.write(nb, path)
    print(f"executed {path} ({len(kept)} cells skipped, outputs kept)")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('notebooks', nargs='+'); p.add_argument('--flags', nargs='*', default=[]); p.add_argument('--cells', nargs='*', default=[]); p.add_argument('--timeout', type=int, default=900)
    a = p.parse_args()
    for nbp in a.notebooks: execute(nbp, a.flags, a.timeout, a.cells)
