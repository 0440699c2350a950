"""`graft rag index|ask|search|eval|list|show|remove|template`: answer questions from your documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graft.cli.progress import RichProgress

out = Console()
app = typer.Typer(help="Retrieval-augmented answers: index documents into a knowledge base, ask it questions.",
                  no_args_is_help=True)

ROOT_HELP = "folder of knowledge bases (default: GRAFT_HOME/rag)"


@app.command("index")
def index(
    paths: list[Path] = typer.Argument(..., help="files and folders: .txt .md .html .pdf, and .json/.jsonl records"),
    name: str = typer.Option(..., "--name", "-n", help="the knowledge base (created when new)"),
    embedder: Optional[str] = typer.Option(None, help="sentence-embedding model for a new knowledge base "
                                           "(default: the bundled minilm-l6; any sentence-transformers model)"),
    chunk_size: Optional[int] = typer.Option(None, help="most characters in a chunk (new knowledge base; default 800)"),
    overlap: Optional[int] = typer.Option(None, help="characters a chunk repeats of the one before (default 120)"),
    index_kind: Optional[str] = typer.Option(None, "--index", help="flat (exact, default) | ivf | hnsw (large corpora)"),
    prune: bool = typer.Option(False, help="drop files indexed before that are no longer on disk"),
    root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Add documents to a knowledge base: new files are indexed, changed ones re-indexed, the rest skipped."""
    from graft.rag import KnowledgeBase
    from graft.rag.readers import expand

    expand(paths)  # a mistyped path fails here, before a new knowledge base is made for nothing
    kb = KnowledgeBase.open_or_create(name, root, embedder=embedder, chunk_size=chunk_size, overlap=overlap,
                                      index=index_kind)
    with RichProgress() as progress:
        report = kb.add(paths, progress=progress, prune=prune)
    if as_json:
        print(json.dumps({"kb": kb.info(), **report.to_dict()}, indent=1))
        return
    for s in report.skipped:
        out.print(f"[yellow]skipped {escape(s.path)}: {escape(s.reason)}[/yellow]", highlight=False)
    out.print(f"{kb.name}: {len(report.added)} added, {len(report.updated)} re-indexed, {len(report.unchanged)} "
              f"unchanged, {len(report.removed)} removed, {len(report.skipped)} skipped; {report.chunks_embedded} "
              f"chunks embedded in {report.seconds:.1f} s; {report.chunks} chunks in all ({kb.folder})", highlight=False)


@app.command("reindex")
def reindex(
    kb_name: str = typer.Argument(..., metavar="KB"),
    index_kind: str = typer.Option(..., "--index", help="flat | ivf | hnsw"),
    root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
) -> None:
    """Rebuild a knowledge base's index as another kind from its stored vectors (no re-embedding)."""
    from graft.rag import KnowledgeBase

    kb = KnowledgeBase.open(kb_name, root)
    before = kb.meta["index"]
    kb.reindex(index_kind)
    out.print(f"{kb.name}: {before} -> {index_kind} index over {kb.info()['chunks']} chunks")


@app.command("ask")
def ask(
    kb_name: str = typer.Argument(..., metavar="KB", help="the knowledge base"),
    question: str = typer.Argument(..., help="the question"),
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m", help="run folder, adapter folder or model"),
    template: Optional[Path] = typer.Option(None, help="prompt template YAML (see `graft rag template`)"),
    k: Optional[int] = typer.Option(None, "-k", help="chunks retrieved (default: the template's, 10)"),
    max_tokens: Optional[int] = typer.Option(None, help="longest answer in tokens (default: the template's)"),
    temperature: Optional[float] = typer.Option(None, help="0 = greedy (default: the template's)"),
    show_prompt: bool = typer.Option(False, help="print the prompt sent to the model"),
    root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="print answer and sources as JSON (no streaming)"),
) -> None:
    """Retrieve the chunks closest to QUESTION, answer from them, and list the sources used."""
    from graft.inference import load_for_inference, stream_reply
    from graft.rag import KnowledgeBase, answer, build_prompt, fit_to_context, load_template

    kb = KnowledgeBase.open(kb_name, root)
    tmpl = load_template(template)
    loaded = load_for_inference(model, merge=True).generative()
    max_new = max_tokens or tmpl.generation.max_tokens
    tmpl = fit_to_context(tmpl, loaded.model, loaded.tokenizer, question, max_new)
    prompt = build_prompt(kb, question, tmpl, loaded.tokenizer, k)
    prompt.generation["max_new_tokens"] = max_new
    if temperature is not None:
        prompt.generation["temperature"] = temperature
    if show_prompt and not as_json:
        for m in prompt.messages:
            out.print(f"[dim]--- {m['role']}\n{escape(m['content'])}[/dim]", highlight=False)

    def generate(messages, **options):
        return stream_reply(loaded.model, loaded.tokenizer, messages, **options)

    result = answer(prompt, generate, None if as_json else lambda piece: print(piece, end="", flush=True))
    if as_json:
        print(json.dumps({"question": question, "model": model, **result.to_dict()}, indent=1))
        return
    print()
    table = Table("", "source", "score", "cited", title="sources", title_justify="left", box=None)
    for hit in result.sources:
        c = hit.chunk
        where = _cite(c)
        table.add_row(f"[{hit.n}]", escape(where), f"{hit.score:.3f}", "yes" if hit.n in result.cited else "")
    out.print(table)
    if prompt.left_out:
        out.print(f"[dim]{prompt.left_out} more retrieved chunks did not fit the template's context budget[/dim]")


def _cite(chunk) -> str:
    """source, then page (PDF) or line (when past the first), then the heading path."""
    where = f" p. {chunk.page}" if chunk.page else (f":{chunk.line}" if chunk.line and chunk.line > 1 else "")
    return chunk.source + where + (f" ({chunk.title})" if chunk.title else "")


@app.command("search")
def search(
    kb_name: str = typer.Argument(..., metavar="KB"),
    query: str = typer.Argument(...),
    k: int = typer.Option(5, "-k", help="chunks to show"),
    root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the chunks closest in meaning to QUERY (retrieval only, no model)."""
    from graft.rag import KnowledgeBase

    hits = KnowledgeBase.open(kb_name, root).search(query, k)
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], indent=1))
        return
    for h in hits:
        c = h.chunk
        out.print(f"[bold][{h.n}] {escape(_cite(c))}[/bold]  "
                  f"[dim]score {h.score:.3f}[/dim]", highlight=False)
        snippet = " ".join(c.text.split())
        out.print(escape(snippet[:300] + ("..." if len(snippet) > 300 else "")), highlight=False)


@app.command("eval")
def eval_command(
    kb_name: str = typer.Argument(..., metavar="KB"),
    questions: Path = typer.Argument(..., help="JSONL: {question, source, contains?} per line"),
    ks: str = typer.Option("1,3,5,10", "--k", help="cut-offs for recall@k, comma-separated"),
    misses: bool = typer.Option(False, help="list the questions whose source was not in the top k"),
    root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Retrieval quality on questions with known sources: recall@k and MRR."""
    from graft.errors import ConfigError
    from graft.rag import KnowledgeBase, evaluate_retrieval

    try:
        cutoffs = sorted({int(x) for x in ks.split(",") if x.strip()})
    except ValueError as e:
        raise ConfigError(f"--k {ks!r}: expected whole numbers separated by commas") from e
    if not cutoffs or cutoffs[0] < 1:
        raise ConfigError(f"--k {ks!r}: cut-offs must be 1 or more")
    kb = KnowledgeBase.open(kb_name, root)
    with RichProgress() as progress:
        result = evaluate_retrieval(kb, questions, cutoffs, progress)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    table = Table("questions", *[f"recall@{k}" for k in cutoffs], "MRR", box=None)
    table.add_row(str(result["questions"]), *[f"{result[f'recall@{k}']:.1%}" for k in cutoffs], f"{result['mrr']:.3f}")
    out.print(table)
    if misses:
        depth = cutoffs[-1]
        for q in result["per_question"]:
            if q["rank"] is None:
                out.print(f"[yellow]not in top {depth}:[/yellow] {escape(q['question'])} [dim]({escape(q['source'])})[/dim]",
                          highlight=False)


@app.command("list")
def list_command(root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """The knowledge bases."""
    from graft.rag import kb_root, list_knowledge_bases

    kbs = list_knowledge_bases(root)
    if as_json:
        print(json.dumps(kbs, indent=1))
        return
    if not kbs:
        out.print(f"no knowledge bases in {kb_root(root)}; create one with `graft rag index PATHS --name NAME`")
        return
    table = Table("name", "files", "chunks", "embedder", "index", "updated", box=None)
    for kb in kbs:
        table.add_row(kb["name"], str(kb["files"]), str(kb["chunks"]), kb["embedder"], kb["index"], kb["updated"])
    out.print(table)


@app.command("show")
def show(kb_name: str = typer.Argument(..., metavar="KB"), root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """A knowledge base's settings and the files it holds."""
    from graft.rag import KnowledgeBase

    kb = KnowledgeBase.open(kb_name, root)
    if as_json:
        print(json.dumps({**kb.info(), "files": kb.files()}, indent=1))
        return
    info = kb.info()
    out.print(f"{info['name']}: {info['chunks']} chunks from {info['files']} files; embedder {info['embedder']} "
              f"({info['dim']} dims), {info['index']} index, chunks of {info['chunk_size']} characters overlapping "
              f"{info['overlap']}; {kb.folder}", highlight=False)
    for f in kb.files():
        out.print(f"  {escape(f['source'])}  [dim]{f['chunks']} chunks, indexed {f['indexed_at']}[/dim]", highlight=False)


@app.command("remove")
def remove(kb_name: str = typer.Argument(..., metavar="KB"), root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
           yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Delete a knowledge base (its index and uploaded documents; your own files are untouched)."""
    from graft.rag import KnowledgeBase

    kb = KnowledgeBase.open(kb_name, root)
    if not yes and not typer.confirm(f"delete knowledge base {kb.name} ({kb.folder})?"):
        raise typer.Exit(1)
    kb.delete()
    out.print(f"deleted {kb.name}")


@app.command("template")
def template() -> None:
    """Print the default prompt template (copy it, edit it, pass it with `graft rag ask --template`)."""
    from graft.rag.template import DEFAULT

    print(DEFAULT.read_text(encoding="utf-8"), end="")


@app.command("dataset")
def dataset(
    kb_name: str = typer.Argument(..., metavar="KB", help="the knowledge base the questions are answered from"),
    pairs: Path = typer.Argument(..., metavar="PAIRS", help="JSONL of {question, answer, source}, or a JSON/JSONL "
                                 "record collection indexed in KB (instruction + input = question, output = answer)"),
    output: Path = typer.Option(..., "--output", "-o", help="training rows (JSONL, messages format)"),
    k: int = typer.Option(3, "-k", help="sources in each prompt"),
    holdout: int = typer.Option(50, help="rows held out (written beside OUTPUT as NAME.heldout.jsonl)"),
    limit: Optional[int] = typer.Option(None, help="at most this many training rows"),
    max_tokens: Optional[int] = typer.Option(None, help="skip rows longer than this many tokens (prompt and answer)"),
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m",
                              help="the model to be tuned: its tokenizer counts the context budget and --max-tokens"),
    template: Optional[Path] = typer.Option(None, help="prompt template YAML (the one you will ask with)"),
    seed: int = typer.Option(0, help="order of the pairs, the held-out choice and inserted-source positions"),
    shuffle: bool = typer.Option(False, help="sources in random order, not best first (so the gold one is not "
                                 "nearly always [1]); the held-out questions stay the same"),
    root: Optional[Path] = typer.Option(None, help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Fine-tuning rows that answer from numbered sources and cite the gold one ("... [2]"); train on them with
    `graft train --data OUTPUT --eval-data NAME.heldout.jsonl`."""
    from graft.errors import ConfigError
    from graft.models.load import load_tokenizer
    from graft.rag import KnowledgeBase, load_template
    from graft.rag.dataset import build_dataset, heldout_path, read_pairs, write_rows

    if k < 1 or holdout < 0 or (limit is not None and limit < 1):
        raise ConfigError("-k and --limit must be 1 or more, --holdout 0 or more")
    kb = KnowledgeBase.open(kb_name, root)
    tmpl = load_template(template)
    tokenizer = load_tokenizer(model)
    with RichProgress() as progress:
        train_rows, held_rows, report = build_dataset(kb, read_pairs(pairs, kb), tmpl, tokenizer, k, holdout, limit,
                                                      max_tokens, seed, shuffle, progress)
    if not train_rows:
        raise ConfigError(f"no training rows left from {pairs}", hint="lower --holdout, or raise --max-tokens")
    write_rows(output, train_rows)
    held_file = heldout_path(output)
    if held_rows:
        write_rows(held_file, held_rows)
    if as_json:
        print(json.dumps({**report.to_dict(), "output": str(output), "heldout_output": str(held_file) if held_rows
                          else None}, indent=1))
        return
    out.print(f"{report.train} training rows -> {output}; {report.heldout} held out -> "
              f"{held_file if held_rows else '(none)'}", highlight=False)
    out.print(f"{report.pairs} pairs read; gold source put in where retrieval missed it: {report.gold_inserted}; "
              f"skipped: {report.over_budget} gold past the context budget, {report.too_long} too long, "
              f"{report.duplicates} repeated questions", highlight=False)
    out.print("gold source number: " + ", ".join(f"[{n}] {c}" for n, c in report.gold_position.items()),
              highlight=False)
