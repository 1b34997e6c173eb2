"The library's static import graph: no cycles, and no model module imports another model's module except Pyramid-Mamba → MambaAD."
import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1]/'ssm_defects'
MODELS = {'memorymamba', 'mambaad', 'baselines', 'pyramid'}
ALLOWED = {('pyramid', 'mambaad')}

def imports_of(path) -> set:
    "Names of the `ssm_defects` modules `path` imports anywhere in its code (top level or inside functions)."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: found.add(mod.split('.')[0] if mod else None)
            elif mod.startswith('ssm_defects.'): found.add(mod.split('.')[1])
            if mod in ('', 'ssm_defects') and (node.level == 1 or mod == 'ssm_defects'):
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('ssm_defects.')}
        elif isinstance(node, ast.Call) and getattr(node.func, 'attr', None) == 'import_module' and node.args \
                and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith('ssm_defects.'):
            found.add(node.args[0].value.split('.')[1])
    return {m for m in found if m and (LIB/f'{m}.py').exists()} - {path.stem}

GRAPH = {p.stem: imports_of(p) for p in LIB.glob('*.py') if not p.stem.startswith('_')}

def test_no_cycles():
    state = {}
    def visit(m, stack):
        if state.get(m) == 'done': return
        assert state.get(m) != 'open', f"import cycle: {' → '.join(stack + [m])}"
        state[m] = 'open'
        for n in sorted(GRAPH[m]): visit(n, stack + [m])
        state[m] = 'done'
    for m in sorted(GRAPH): visit(m, [])

def test_models_do_not_import_each_other():
    bad = [(m, n) for m in MODELS for n in GRAPH.get(m, ()) if n in MODELS and (m, n) not in ALLOWED]
    assert not bad, f"model modules importing other model modules: {bad}"

def test_graph_sees_the_known_edges():
    assert 'mambaad' in GRAPH['pyramid'] and 'training' in GRAPH['baselines'] and 'scan' in GRAPH['blocks']
