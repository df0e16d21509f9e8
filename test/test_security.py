"""Safe by default (docs/security.md): weights only from safetensors, never ``trust_remote_code``,
no shell, and damaged or unsafe model files refused with the file named."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from proassist_ros.model import load, save
from proassist_ros.model.safetensors_io import load_safetensors

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "proassist_ros").rglob("*.py")) + sorted((REPO / "bench").glob("*.py"))
TOKENIZERS = {"AutoTokenizer"}  # tokenizer files are JSON: no weights, nothing to unpickle


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    return ast.unparse(func)


def test_the_sources_never_unpickle_weights_or_run_remote_code():
    problems = []
    for path in SOURCES:
        rel = path.relative_to(REPO)
        for call in _calls(path):
            name = _name(call.func)
            kw = {k.arg: k.value for k in call.keywords if k.arg}
            if name in ("torch.load", "pickle.load", "pickle.loads"):
                problems.append(f"{rel}:{call.lineno}: {name}")
            if name in ("numpy.load", "np.load") and "allow_pickle" in kw:  # numpy refuses by default
                problems.append(f"{rel}:{call.lineno}: {name} with allow_pickle")
            if "trust_remote_code" in kw and not (isinstance(kw["trust_remote_code"], ast.Constant)
                                                  and kw["trust_remote_code"].value is False):
                problems.append(f"{rel}:{call.lineno}: trust_remote_code not literally False")
            if name.endswith(".from_pretrained") and name.split(".")[0] not in TOKENIZERS:
                safe = isinstance(kw.get("use_safetensors"), ast.Constant) and kw["use_safetensors"].value is True
                if not safe and "gguf_file" not in kw:  # GGUF: a tensor format, no code either
                    problems.append(f"{rel}:{call.lineno}: {name} without use_safetensors=True")
            if name in ("os.system", "os.popen") or (name.startswith("subprocess.") and
                                                     isinstance(kw.get("shell"), ast.Constant)
                                                     and kw["shell"].value is True):
                problems.append(f"{rel}:{call.lineno}: {name} through a shell")
            if name == "load_file" and rel.name != "safetensors_io.py":
                problems.append(f"{rel}:{call.lineno}: load_file outside model/safetensors_io.py")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt") / "tiny"
    save(load("tiny", tokens_per_frame=1, seed=0), d)
    return d


def test_a_truncated_weights_file_is_named_in_the_error(checkpoint, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(checkpoint, bad)
    weights = next(bad.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"{weights}: corrupt or truncated safetensors"):
        load(str(bad))
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=weights.name):
        load(str(bad))


def test_pickled_weights_are_never_read(tmp_path):
    pickled = tmp_path / "pytorch_model.bin"
    pickled.write_bytes(b"\x80\x04K\x01.")  # a valid pickle: it must not even be opened
    with pytest.raises(ValueError, match="only .safetensors"):
        load_safetensors(pickled)
