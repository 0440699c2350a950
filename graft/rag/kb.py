"""A knowledge base: documents chunked, embedded and indexed, kept in one folder.

    GRAFT_HOME/rag/NAME/
      kb.json          settings (embedder, dimension, index kind, chunking), the files indexed (sha256)
                       and the generation G of the data files below
      chunks.G.jsonl   one chunk per line; line i is vector row i
      vectors.G.npy    float32 [chunks, dim], unit rows
      index.G.faiss    the FAISS index built from the vectors
      docs/            documents uploaded through the web app

Adding is incremental: a file whose sha256 is unchanged is skipped, a changed file's chunks are
replaced, a new file's appended; only those are embedded. An update writes generation G+1 beside G
and then replaces kb.json (atomically) to point at it, so an interrupted update leaves generation G
whole and in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from graft.errors import ConfigError, ConflictError, DataError, NotFoundError
from graft.paths import graft_home, safe_name
from graft.progress import NullProgress, Progress
from graft.rag import vectors as vec
from graft.rag.chunking import Chunk, check_sizes, chunk_document
from graft.rag.readers import Skipped, expand, read_file, source_name

FORMAT = 1
MAX_NAME = 100  # a folder name; filesystems stop at 255 bytes


class KnowledgeBaseNotFoundError(NotFoundError):
    def __init__(self, name: str, root: Path):
        known = [p.name for p in sorted(root.glob("*")) if (p / "kb.json").is_file()] if root.is_dir() else []
        super().__init__(f"no knowledge base named {name!r} in {root}",
                         hint=f"known: {', '.join(known)}" if known else "create one with `graft rag index PATHS --name NAME`")


def kb_root(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else graft_home() / "rag"


@lru_cache(maxsize=4)
def embedder_for(model: str):
    """One embedder per model in a process (the server answers many questions with it)."""
    from graft.models.embed import Embedder

    return Embedder(model)


@dataclass
class Hit:
    n: int  # 1-based rank: the number a citation uses
    score: float
    chunk: Chunk

    def to_dict(self) -> dict:
        c = self.chunk
        return {"n": self.n, "score": round(self.score, 4), "id": c.id, "source": c.source, "title": c.title,
                "text": c.text, "page": c.page,
                "line": c.line}


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "skipped": [asdict(s) for s in self.skipped]}


class KnowledgeBase:
    def __init__(self, folder: Path, meta: dict, seen: tuple = ()):
        self.folder, self.meta = folder, meta
        self._seen = seen  # kb.json's stamp when self.meta was read from it or written to it
        self._lock = threading.RLock()  # one writer at a time; searches see a consistent snapshot
        self._chunks: list[Chunk] | None = None
        self._files_of: list[str] = []
        self._vectors: np.ndarray | None = None
        self._index = None

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, embedder: str = "minilm-l6", chunk_size: int = 800, overlap: int = 120,
               index: str = "flat", root: str | Path | None = None) -> "KnowledgeBase":
        folder = kb_root(root) / _name(name)
        if (folder / "kb.json").is_file():
            raise ConflictError(f"knowledge base {name!r} exists ({folder})", hint="add to it with `graft rag index`, "
                                "or remove it first")
        check_sizes(chunk_size, overlap)
        vec.check_kind(index)
        dim = embedder_for(embedder).dim
        meta = {"format": FORMAT, "name": folder.name, "embedder": embedder, "dim": dim, "index": index,
                "chunk_size": chunk_size, "overlap": overlap, "created": _now(), "updated": _now(), "next_id": 0,
                "files": {}}
        folder.mkdir(parents=True, exist_ok=True)
        kb = cls(folder, meta)
        kb._chunks, kb._files_of, kb._vectors = [], [], np.zeros((0, dim), np.float32)
        kb._save()
        return kb

    @classmethod
    def open(cls, name: str, root: str | Path | None = None) -> "KnowledgeBase":
        base = kb_root(root)
        folder = base / _name(name)
        meta_file = folder / "kb.json"
        seen = _stamp(meta_file)  # before reading: an update landing in between is caught up with later
        if not seen:
            raise KnowledgeBaseNotFoundError(name, base)
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{meta_file}: not valid JSON ({e.msg})", hint="rebuild the knowledge base") from e
        if meta.get("format") != FORMAT:
            raise DataError(f"{meta_file}: knowledge-base format {meta.get('format')!r}, this graft reads {FORMAT}")
        return cls(folder, meta, seen)

    @classmethod
    def open_or_create(cls, name: str, root: str | Path | None = None, **settings) -> "KnowledgeBase":
        try:
            kb = cls.open(name, root)
        except KnowledgeBaseNotFoundError:
            return cls.create(name, root=root, **{k: v for k, v in settings.items() if v is not None})
        for key, value in settings.items():
            if value is not None and kb.meta.get(key) != value:
                raise ConfigError(f"knowledge base {name!r} was built with {key}={kb.meta.get(key)!r}, not {value!r}",
                                  hint="index into a new knowledge base, or leave the option out")
        return kb

    @property
    def name(self) -> str:
        return self.folder.name  # a copied or renamed folder is a knowledge base of its new name

    @property
    def docs_dir(self) -> Path:
        return self.folder / "docs"

    def info(self) -> dict:
        with self._lock:
            self._catch_up()
        keys = ("embedder", "dim", "index", "chunk_size", "overlap", "created", "updated")
        return {"name": self.name, **{k: self.meta[k] for k in keys}, "files": len(self.meta["files"]),
                "chunks": sum(f["chunks"] for f in self.meta["files"].values())}

    def files(self) -> list[dict]:
        with self._lock:
            self._catch_up()
        return [{"source": s, **f} for s, f in sorted(self.meta["files"].items())]

    def delete(self) -> None:
        shutil.rmtree(self.folder)

    # -- indexing -------------------------------------------------------------------------------

    def add(self, paths: Iterable[str | Path], progress: Progress | None = None, prune: bool = False) -> IndexReport:
        """Index files and folders: new files added, changed ones re-indexed, unchanged ones skipped.

        With `prune`, files indexed before that are no longer on disk are dropped.
        """
        progress = progress or NullProgress()
        t0 = time.perf_counter()
        files, skipped = expand(paths)
        report = IndexReport(skipped=list(skipped))
        with self._lock, _writing(self.folder):
            self._refresh()
            known = self.meta["files"]
            fresh: dict[str, tuple[Path, str, list[Chunk]]] = {}
            progress.start("read", total=len(files))
            for path in files:
                source = self.source_of(path)
                digest = _sha256(path)
                if known.get(source, {}).get("sha256") == digest:
                    report.unchanged.append(source)
                else:
                    try:
                        docs = read_file(path, source)
                    except DataError as e:
                        report.skipped.append(Skipped(source, str(e)))
                    else:
                        chunks = [c for d in docs for c in chunk_document(d, self.meta["chunk_size"], self.meta["overlap"])]
                        fresh[source] = (path, digest, chunks)
                        (report.updated if source in known else report.added).append(source)
                progress.advance("read")
            progress.finish("read")
            gone = [s for s in known if prune and not Path(known[s]["path"]).is_file()]
            report.removed = gone
            drop = set(fresh) | set(gone)
            new_chunks = [c for _, _, chunks in fresh.values() for c in chunks]
            if drop or new_chunks:
                vectors = self._embed(new_chunks, progress)
                keep = [i for i, f in enumerate(self._files_of) if f not in drop]
                chunks = [self._chunks[i] for i in keep]
                files_of = [self._files_of[i] for i in keep]
                for source, (_, _, cs) in fresh.items():
                    for c in cs:
                        c.id = self.meta["next_id"]
                        self.meta["next_id"] += 1
                    files_of += [source] * len(cs)
                chunks += new_chunks
                for s in drop:
                    known.pop(s, None)
                for source, (path, digest, cs) in fresh.items():
                    known[source] = {"path": str(path.resolve()), "sha256": digest, "chunks": len(cs),
                                     "indexed_at": _now()}
                self._chunks, self._files_of = chunks, files_of
                self._vectors = np.concatenate([self._vectors[keep], vectors]) if len(keep) else vectors
                self._index = None
                self.meta["updated"] = _now()
                report.chunks_embedded = len(new_chunks)
                self._save()
            report.chunks = len(self._chunks)
        report.seconds = round(time.perf_counter() - t0, 2)
        return report

    def reindex(self, kind: str) -> None:
        """Rebuild the FAISS index as `kind` from the stored vectors (nothing is re-embedded)."""
        vec.check_kind(kind)
        with self._lock, _writing(self.folder):
            self._refresh()
            self.meta["index"], self.meta["updated"], self._index = kind, _now(), None
            self._save()

    def source_of(self, path: Path) -> str:
        """How chunks of `path` cite it: an uploaded document by its name in docs/, any other file by
        its path (relative to the working folder when under it)."""
        try:
            return Path(path).resolve().relative_to(self.docs_dir.resolve()).as_posix()
        except ValueError:
            return source_name(Path(path))

    def _embed(self, chunks: Sequence[Chunk], progress: Progress) -> np.ndarray:
        if not chunks:
            return np.zeros((0, self.meta["dim"]), np.float32)
        embedder = self.embedder()
        return embedder.encode([c.embedding_text() for c in chunks], progress=progress)

    def embedder(self):
        embedder = embedder_for(self.meta["embedder"])
        if embedder.dim != self.meta["dim"]:
            raise ConfigError(f"knowledge base {self.name!r} holds {self.meta['dim']}-dimensional vectors, but its "
                              f"embedder {self.meta['embedder']!r} now gives {embedder.dim}",
                              hint="re-index into a new knowledge base")
        return embedder

    def chunks(self) -> list[Chunk]:
        """Every chunk, in vector-row order."""
        with self._lock:
            self._refresh()
            return list(self._chunks)

    def vectors(self) -> np.ndarray:
        """The [chunks, dim] unit embeddings, row i for chunks()[i] (read-only)."""
        with self._lock:
            self._refresh()
            view = self._vectors.view()
            view.flags.writeable = False
            return view

    # -- searching ------------------------------------------------------------------------------

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The k chunks closest in meaning to `query`, best first."""
        if not query or not query.strip():
            raise ConfigError("the query is empty")
        if k < 1:
            raise ConfigError(f"k must be at least 1, not {k}")
        query_vector = self.embedder().encode([query.strip()])[0]
        return self.search_vector(query_vector, k)

    def search_vector(self, query: np.ndarray, k: int = 10) -> list[Hit]:
        if query.shape != (self.meta["dim"],):
            raise ConfigError(f"a query vector of shape {tuple(query.shape)} for knowledge base {self.name!r}, whose "
                              f"vectors have {self.meta['dim']} dimensions")
        with self._lock:
            self._refresh()
            if self._index is None:
                self._index = vec.build(self._vectors, self.meta["index"], self.meta["dim"])
            rows = vec.search(self._index, query, k)
            return [Hit(n, score, self._chunks[row]) for n, (row, score) in enumerate(rows, 1)]

    # -- storage --------------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Adopt an update another process (or KnowledgeBase object) committed since kb.json was read:
        a long-lived object (the server's) then answers from what is on disk. A stat when nothing changed."""
        meta_file = self.folder / "kb.json"
        seen = _stamp(meta_file)
        if seen == self._seen:
            return
        if not seen:
            raise KnowledgeBaseNotFoundError(self.name, self.folder.parent)
        meta = json.loads(meta_file.read_text())
        self._seen = seen
        if meta.get("generation") != self.meta.get("generation"):
            self.meta, self._chunks, self._index = meta, None, None

    def _refresh(self) -> None:
        self._catch_up()
        self._load()

    def _load(self) -> None:
        if self._chunks is not None:
            return
        chunks_file, vectors_file, index_file = self._data_files(self.meta.get("generation", 0))
        for f in (chunks_file, vectors_file):
            if not f.is_file():
                raise DataError(f"{f} is missing: knowledge base {self.name!r} is incomplete", hint="rebuild it")
        chunks, files_of = [], []
        for n, line in enumerate(chunks_file.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                files_of.append(row.pop("file"))
                chunks.append(Chunk(**row))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(f"{chunks_file} line {n}: not a chunk ({e})", hint="rebuild the knowledge base") from e
        vectors = np.load(vectors_file, allow_pickle=False)
        dim = self.meta["dim"]
        if vectors.ndim != 2 or vectors.shape != (len(chunks), dim):
            raise DataError(f"{vectors_file} holds vectors of shape {tuple(vectors.shape)}; knowledge base {self.name!r} "
                            f"expects {len(chunks)} x {dim} (its chunks x its embedding dimension)",
                            hint="rebuild the knowledge base")
        index = vec.load(index_file) if index_file.is_file() else None
        if index is not None and (index.d != dim or index.ntotal != len(chunks)):
            raise DataError(f"{index_file} indexes {index.ntotal} vectors of dimension {index.d}; knowledge base "
                            f"{self.name!r} has {len(chunks)} of dimension {dim}", hint="rebuild the knowledge base")
        self._chunks, self._files_of, self._vectors, self._index = chunks, files_of, vectors, index

    def _data_files(self, generation: int) -> tuple[Path, Path, Path]:
        return tuple(self.folder / f"{stem}.{generation}.{ext}" for stem, ext in
                     (("chunks", "jsonl"), ("vectors", "npy"), ("index", "faiss")))

    def _save(self) -> None:
        if self._index is None:
            self._index = vec.build(self._vectors, self.meta["index"], self.meta["dim"])
        generation = self.meta.get("generation", 0) + 1
        chunks_file, vectors_file, index_file = self._data_files(generation)
        with open(chunks_file, "w", encoding="utf-8") as f:
            for c, file in zip(self._chunks, self._files_of):
                f.write(json.dumps({**c.to_dict(), "file": file}, ensure_ascii=False) + "\n")
        np.save(vectors_file, self._vectors, allow_pickle=False)
        vec.save(self._index, index_file)
        _write(self.folder / "kb.json", json.dumps({**self.meta, "generation": generation}, indent=1))
        self._seen = _stamp(self.folder / "kb.json")
        self.meta["generation"] = generation
        current = {p.name for p in (chunks_file, vectors_file, index_file)}
        for stale in self.folder.glob("*.*.*"):
            if stale.name.split(".")[0] in {"chunks", "vectors", "index"} and stale.name not in current:
                stale.unlink(missing_ok=True)


def list_knowledge_bases(root: str | Path | None = None) -> list[dict]:
    base = kb_root(root)
    out = []
    for folder in sorted(base.glob("*")) if base.is_dir() else []:
        if (folder / "kb.json").is_file():
            try:
                out.append(KnowledgeBase.open(folder.name, base).info())
            except (DataError, KeyError):
                continue  # a broken one is reported when opened by name
    return out


def _name(name: str) -> str:
    if len(name) > MAX_NAME:
        raise ConfigError(f"knowledge base name {name[:20]!r}... is {len(name)} characters; at most {MAX_NAME}")
    try:
        return safe_name(name)
    except ValueError as e:
        raise ConfigError(f"knowledge base name: {e}") from e


def _stamp(meta_file: Path) -> tuple:
    """What tells one kb.json from the next: it is replaced, never edited in place (a new inode). () when absent."""
    try:
        st = meta_file.stat()
    except FileNotFoundError:
        return ()
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextmanager
def _writing(folder: Path):
    """One writer per knowledge base across processes (an advisory lock file; no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
