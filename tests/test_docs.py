"Every chapter renders to HTML (Quarto is not needed for this check) and the docs sidebar lists exactly the chapters."
import re
from pathlib import Path
import nbformat, pytest, yaml
from nbconvert import HTMLExporter

nbs = Path(__file__).resolve().parents[1]/'nbs'
notebooks = sorted(p.relative_to(nbs).as_posix() for p in nbs.glob('**/*.ipynb')
                   if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts))

@pytest.mark.parametrize('name', notebooks)
def test_notebook_renders_to_html(name):
    nb = nbformat.read(nbs/name, as_version=4)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert len(html) > 10_000 and '<h1' in html
    first = nb.cells[0]
    assert first.cell_type == 'markdown' and first.source.startswith('# '), f"{name}: the first cell must be the chapter title"

def _sidebar_entries(node):
    if isinstance(node, str): yield node
    elif isinstance(node, dict): yield from _sidebar_entries(node.get('contents', []))
    else:
        for n in node: yield from _sidebar_entries(n)

def test_sidebar_lists_every_chapter_once():
    sidebar = yaml.safe_load((nbs/'sidebar.yml').read_text())['website']['sidebar']['contents']
    entries = list(_sidebar_entries(sidebar))
    assert sorted(entries) == notebooks, set(entries) ^ set(notebooks)

def test_quarto_config_points_at_the_sidebar():
    cfg = yaml.safe_load((nbs/'_quarto.yml').read_text())
    assert 'sidebar.yml' in cfg['metadata-files'] and 'nbdev.yml' in cfg['metadata-files']
