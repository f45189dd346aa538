"""The loopback Hub, exercised through the real clients: huggingface_hub, transformers, datasets.

Each test gets a fresh server (``loopback_hub`` fixture) with the libraries pointed at it; a test
that downloads calls :func:`hub_env` again first so that the bytes it checks come from the
server, not from the cache the upload left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

from tests.support.hub_server import LoopbackHub, hub_env


def _tiny_bert_config(**kwargs):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        **kwargs,
    )


def _write_folder(folder: Path) -> dict[str, bytes]:
    files = {
        "config.json": b'{"hello": "world"}\n',
        "weights.safetensors": os.urandom(2048),  # binary + .safetensors: stored with LFS
        "nested/notes.txt": b"line one\nline two\n",
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def test_create_upload_download_roundtrip(
    loopback_hub: LoopbackHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = HfApi()
    repo_id = api.create_repo("tester/roundtrip").repo_id
    assert repo_id == "tester/roundtrip"
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(repo_id)
    assert conflict.value.response.status_code == 409
    assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id

    api.upload_file(path_or_fileobj=b"single file\n", path_in_repo="single.txt", repo_id=repo_id)
    folder = tmp_path / "folder"
    written = _write_folder(folder)
    api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="add folder")

    stored = loopback_hub.files(repo_id)
    assert {k: v for k, v in stored.items() if k in written} == written
    assert stored["single.txt"] == b"single file\n"
    assert loopback_hub.lfs_files(repo_id) == {"weights.safetensors"}
    assert [c.title for c in loopback_hub.commits(repo_id)] == [
        "add folder",
        "Upload single.txt with huggingface_hub",
        "initial commit",
    ]

    hub_env(monkeypatch, loopback_hub, tmp_path / "fresh-cache")
    assert Path(hf_hub_download(repo_id, "weights.safetensors")).read_bytes() == written["weights.safetensors"]
    snapshot = Path(snapshot_download(repo_id))
    downloaded = {p.relative_to(snapshot).as_posix(): p.read_bytes() for p in snapshot.rglob("*") if p.is_file()}
    assert downloaded == stored

    # Partial reads (HfFileSystem uses Range requests) and the errors the client maps.
    with HfFileSystem().open(f"{repo_id}/weights.safetensors", "rb") as remote:
        remote.seek(100)
        assert remote.read(50) == written["weights.safetensors"][100:150]
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/nope", "config.json")

    # a bare name lands in the token owner's namespace; private repos hide from anonymous readers
    assert api.create_repo("bare-name").repo_id == f"{loopback_hub.user}/bare-name"
    secret = api.create_repo("tester/secret", private=True).repo_id
    api.upload_file(path_or_fileobj=b"s", path_in_repo="s.txt", repo_id=secret)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(secret, "s.txt", token=False)
    assert Path(hf_hub_download(secret, "s.txt")).read_bytes() == b"s"

    # delete_patterns turn into deletedFile lines of the commit
    (folder / "config.json").unlink()
    api.upload_folder(folder_path=folder, repo_id=repo_id, delete_patterns=["*.json"])
    assert "config.json" not in loopback_hub.files(repo_id)


def test_branches_tags_history_and_tree_metadata(loopback_hub: LoopbackHub) -> None:
    api = HfApi()
    repo_id = api.create_repo("tester/history").repo_id
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="docs/a.txt", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="docs/a.txt", repo_id=repo_id, revision="dev")
    api.create_tag(repo_id, tag="v1.0", revision=first.oid)

    refs = api.list_repo_refs(repo_id)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", first.oid)]
    assert loopback_hub.files(repo_id)["docs/a.txt"] == b"v1"
    assert loopback_hub.files(repo_id, revision="dev")["docs/a.txt"] == b"v2"
    assert Path(hf_hub_download(repo_id, "docs/a.txt", revision="v1.0")).read_bytes() == b"v1"

    commits = api.list_repo_commits(repo_id, revision="dev")
    assert [c.title for c in commits][-1] == "initial commit" and len(commits) == 3
    entries = {e.path: e for e in api.list_repo_tree(repo_id, recursive=True, expand=True, revision="dev")}
    assert set(entries) == {".gitattributes", "docs", "docs/a.txt"}
    assert entries["docs/a.txt"].last_commit.oid == commits[0].commit_id
    assert entries[".gitattributes"].last_commit.title == "initial commit"
    (info,) = api.get_paths_info(repo_id, ["docs/a.txt", "missing.txt"])
    assert (info.path, info.size, info.lfs) == ("docs/a.txt", 2, None)

    # a commit based on a stale parent is refused (412), as datasets' retry loop expects
    from huggingface_hub import CommitOperationAdd

    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(
            repo_id,
            operations=[CommitOperationAdd("b.txt", b"b")],
            commit_message="stale",
            parent_commit=loopback_hub.commits(repo_id)[-1].oid,
        )
    assert stale.value.response.status_code == 412


def test_model_push_to_hub_and_from_pretrained(
    loopback_hub: LoopbackHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModel, BertModel

    torch.manual_seed(0)
    model = BertModel(_tiny_bert_config()).eval()
    model.push_to_hub("tester/tiny-bert")
    assert {"config.json", "model.safetensors", "README.md"} <= set(loopback_hub.files("tester/tiny-bert"))
    assert "model.safetensors" in loopback_hub.lfs_files("tester/tiny-bert")

    hub_env(monkeypatch, loopback_hub, tmp_path / "fresh-cache")
    reloaded = AutoModel.from_pretrained("tester/tiny-bert").eval()
    input_ids = torch.tensor([[1, 5, 7, 2, 0]])
    with torch.no_grad():
        expected = model(input_ids=input_ids).last_hidden_state
        actual = reloaded(input_ids=input_ids).last_hidden_state
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_tokenizer_push_and_reload(loopback_hub: LoopbackHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer, BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "long", "range", "arena", "attention"]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(tokens)})
    tokenizer.push_to_hub("tester/tiny-tokenizer")

    hub_env(monkeypatch, loopback_hub, tmp_path / "fresh-cache")
    reloaded = AutoTokenizer.from_pretrained("tester/tiny-tokenizer")
    text = "long range attention arena unknownword"
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded.convert_ids_to_tokens(reloaded(text)["input_ids"])[1:4] == ["long", "range", "attention"]


def test_dataset_push_to_hub_and_load_dataset(
    loopback_hub: LoopbackHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    rows = {
        "train": {"text": ["a b", "c d e", "f"], "label": [0, 1, 0]},
        "test": {"text": ["g h", "i"], "label": [1, 1]},
    }
    dataset = datasets.DatasetDict({split: datasets.Dataset.from_dict(r) for split, r in rows.items()})
    dataset.push_to_hub("tester/tiny-lra", config_name="x")
    stored = loopback_hub.files("tester/tiny-lra", repo_type="dataset")
    assert "README.md" in stored and any(p.startswith("x/train-") and p.endswith(".parquet") for p in stored)
    assert b"config_name: x" in stored["README.md"]

    hub_env(monkeypatch, loopback_hub, tmp_path / "fresh-cache")
    reloaded = datasets.load_dataset("tester/tiny-lra", "x")
    assert set(reloaded) == {"train", "test"}
    for split, expected in rows.items():
        assert reloaded[split].to_dict() == expected


@pytest.mark.slow
def test_trainer_pushes_checkpoints(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    import datasets
    from transformers import BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = BertForSequenceClassification(_tiny_bert_config(num_labels=2))
    train = datasets.Dataset.from_dict(
        {
            "input_ids": [[2, 5 + i % 4, 6, 3] for i in range(8)],
            "attention_mask": [[1, 1, 1, 1]] * 8,
            "labels": [i % 2 for i in range(8)],
        }
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        per_device_train_batch_size=4,
        save_strategy="steps",
        save_steps=1,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        push_to_hub=True,
        hub_model_id="tester/trainer-run",
        hub_strategy="checkpoint",
        hub_always_push=True,  # push at both saves even if the first push is still running
    )
    trainer = Trainer(model=model, args=args, train_dataset=train)
    trainer.train()  # waits for the background pushes before returning

    files = loopback_hub.files("tester/trainer-run")
    assert "model.safetensors" in files
    assert "last-checkpoint/model.safetensors" in files
    assert "last-checkpoint/trainer_state.json" in files
    titles = [c.title for c in loopback_hub.commits("tester/trainer-run")]
    assert "Training in progress, step 2" in titles
    assert "Training in progress, step 2, checkpoint" in titles

    trainer.push_to_hub(commit_message="End of training")
    files = loopback_hub.files("tester/trainer-run")
    assert loopback_hub.commits("tester/trainer-run")[0].title == "End of training"
    assert "README.md" in files and files["model.safetensors"] == (tmp_path / "run" / "model.safetensors").read_bytes()
