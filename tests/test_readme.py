"""The README's Python example runs as written (on the tiny preset, in a scratch folder)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert 'from_preset("demo"' in example
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example.replace('from_preset("demo"', 'from_preset("tiny"'), "README.md", "exec"), namespace)
    assert (tmp_path / "person.png").is_file()
    assert namespace["hd"].images[0].size == (128, 128)
    assert namespace["tried_on"].shape == namespace["person"].shape
