"""The ``mindstore`` command: a thin layer over :class:`mindstore.MindStore`.

Every command takes ``--db URL`` (or ``$MINDSTORE_DB``; default: a SQLite file in the user data
directory) and ``--json`` for machine-readable output.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .clitools import DbOpt, JsonOpt, check_folder, fail, open_store, print_json
from .errors import MindStoreError
from .neural.cli import register as register_neural

app = typer.Typer(
    name="mindstore",
    help="A memory that learns and lasts: store, search and edit long-term memories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

UserOpt = Annotated[Optional[str], typer.Option("--user", "-u", help="user_id scope")]
AgentOpt = Annotated[Optional[str], typer.Option("--agent", "-a", help="agent_id scope")]
SessionOpt = Annotated[Optional[str], typer.Option("--session", "-s", help="session_id scope")]
SpaceOpt = Annotated[Optional[str], typer.Option("--space", help="space name (default: the text space 'chat')")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="sentence-transformers model name or path (default: all-MiniLM-L6-v2, bundled)")]


def _scope_str(slot: Any) -> str:
    parts = [f"{k}={v}" for k, v in (("user", slot.user_id), ("agent", slot.agent_id), ("session", slot.session_id)) if v]
    return " ".join(parts) or "-"


def _line(slot: Any, score: float | None = None, cosine: float | None = None) -> str:
    head = f"[{slot.id}]" + (f" {score:.3f}" if score is not None else "")
    body = slot.text if slot.text is not None else f"label={slot.label}"
    when = slot.occurred_at
    tail = ((f", occurred {when:%Y-%m-%d}" if when is not None else "") + (f", superseded by [{slot.superseded_by}]" if slot.superseded_by is not None else "")
            + (f", cosine {cosine:.3f}" if cosine is not None else ""))
    return f"{head} {body}  ({_scope_str(slot)}{tail})"


def _parse_meta(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            fail(f"--meta takes key=value, got {item!r}")
        key, raw = item.split("=", 1)
        if not key.strip():
            fail(f"--meta takes key=value with a key before the '=', got {item!r:.60}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
        except RecursionError:  # the store refuses deep nesting anyway (validate.MAX_DEPTH)
            fail(f"--meta {key}: the JSON value nests too deep; flatten it")
    return out


def _parse_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"--filter takes JSON, e.g. '{{\"role\": \"user\"}}' or '{{\"year\": {{\"$gte\": 2020}}}}': {exc}")
    except RecursionError:
        fail("--filter nests too deep; write it with fewer nested $and / $or")
    return value


@app.command()
def add(
    text: Annotated[list[str], typer.Argument(help="text to remember; several arguments add several memories; '-' reads lines from stdin")],
    db: DbOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", "-m", help="metadata key=value (value parsed as JSON when it can be); repeatable")] = None,
    no_dedup: Annotated[bool, typer.Option("--no-dedup", help="store even near-duplicates of existing memories")] = False,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remember text."""
    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()] if text == ["-"] else text
    with open_store(db, model) as store:
        try:
            slots = store.add_many(texts, user_id=user, agent_id=agent, session_id=session, metadata=_parse_meta(meta), dedup=not no_dedup)
        except MindStoreError as exc:
            fail(str(exc))
        if as_json:
            print_json(slots)
        else:
            for slot in slots:
                typer.echo(f"{slot.change} {_line(slot)}" + (f" (newer version of [{slot.supersedes}])" if slot.supersedes is not None else ""))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for, in plain words")],
    db: DbOpt = None,
    k: Annotated[int, typer.Option("-k", help="how many results")] = 5,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    filter: Annotated[Optional[str], typer.Option("--filter", "-f", help="metadata filter as JSON")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="drop hits below this cosine similarity")] = None,
    now: Annotated[Optional[str], typer.Option("--now", help="when the question is asked (ISO 8601; default: now), for 'last week' and the like")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="only memories that happened at or after this: ISO 8601 or words ('last week')")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="only memories that happened at or before this")] = None,
    by_session: Annotated[bool, typer.Option("--by-session", help="the best memory of each of the K best sessions")] = False,
    superseded: Annotated[bool, typer.Option("--superseded", help="also return memories a newer version replaced")] = False,
    mode: Annotated[Optional[str], typer.Option("--mode", help="hybrid (meaning and words, the default), dense (meaning only) or lexical (words only, BM25)")] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the memories that best answer QUERY (meaning and words, newest version first).

    Each line: [id], the score the hits are ranked by (fused in hybrid mode), the text, then
    the scope and the cosine similarity (what --min-score applies to)."""
    if mode is not None and mode not in ("hybrid", "dense", "lexical"):
        fail(f"--mode takes hybrid, dense or lexical, not {mode!r}")
    with open_store(db, model) as store:
        try:
            hits = store.search(query, k=k, user_id=user, agent_id=agent, session_id=session, filters=_parse_filter(filter), min_score=min_score,
                                now=now, since=since, until=until, group_by="session" if by_session else None, include_superseded=superseded,
                                mode=mode)
        except MindStoreError as exc:
            fail(str(exc))
        if as_json:
            print_json(hits)
        elif not hits:
            typer.echo("no memories found")
        else:
            for hit in hits:
                typer.echo(_line(hit.slot, hit.rank_score, hit.score))


@app.command("list")
def list_(
    db: DbOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    space: SpaceOpt = None,
    filter: Annotated[Optional[str], typer.Option("--filter", "-f", help="metadata filter as JSON")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="slots per page")] = 20,
    cursor: Annotated[Optional[str], typer.Option("--cursor", help="the cursor printed after the previous page")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored memories, oldest first, a page at a time."""
    with open_store(db) as store:
        try:
            page = store.list(user_id=user, agent_id=agent, session_id=session, space=space, filters=_parse_filter(filter), limit=limit, cursor=cursor)
        except MindStoreError as exc:
            fail(str(exc))
        if as_json:
            print_json(page)
            return
        if not page.slots:
            typer.echo("no memories here" + (" after that cursor" if cursor else ""))
        for slot in page.slots:
            typer.echo(_line(slot))
        if page.next_cursor:
            typer.echo(f"-- more: --cursor {page.next_cursor}")


@app.command()
def show(id: Annotated[int, typer.Argument(help="slot id")], db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Show one memory with its metadata and usage."""
    with open_store(db) as store:
        try:
            slot = store.get(id)
        except MindStoreError as exc:
            fail(str(exc))
        if as_json:
            print_json(slot)
            return
        typer.echo(f"id:       {slot.id}\nspace:    {slot.space}\nscope:    {_scope_str(slot)}")
        if slot.text is not None:
            typer.echo(f"text:     {slot.text}")
        if slot.label is not None:
            typer.echo(f"label:    {slot.label}")
        typer.echo(f"metadata: {json.dumps(slot.metadata, ensure_ascii=False)}")
        typer.echo(f"usage:    reads={slot.usage.reads} writes={slot.usage.writes} last_access={slot.usage.last_access}")
        typer.echo(f"created:  {slot.created_at}\nupdated:  {slot.updated_at}")


@app.command()
def edit(
    id: Annotated[int, typer.Argument(help="slot id")],
    text: Annotated[Optional[str], typer.Option("--text", "-t", help="new text (re-embedded)")] = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", "-m", help="metadata key=value, replacing all metadata; repeatable")] = None,
    db: DbOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a memory's text and/or metadata (history keeps the old version)."""
    with open_store(db, model) as store:
        try:
            slot = store.update(id, text=text, metadata=_parse_meta(meta))
        except MindStoreError as exc:
            fail(str(exc))
        print_json(slot) if as_json else typer.echo(f"updated {_line(slot)}")


@app.command()
def rm(
    ids: Annotated[Optional[list[int]], typer.Argument(help="slot ids to delete")] = None,
    db: DbOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    all_in_scope: Annotated[bool, typer.Option("--all", help="delete every memory of the given scope")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation with --all")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete memories by id, or a whole scope with --all."""
    if not ids and not all_in_scope:
        fail("give slot ids, or --all with --user/--agent/--session")
    with open_store(db) as store:
        try:
            if all_in_scope:
                if not (user or agent or session):
                    fail("--all needs --user, --agent or --session")
                n = store.count(user_id=user, agent_id=agent, session_id=session)
                if not yes and not typer.confirm(f"delete {n} memories?"):
                    raise typer.Exit(1)
                deleted = store.delete_all(user_id=user, agent_id=agent, session_id=session)
            else:
                deleted = store.delete_many(ids or [])  # all or none: one unknown id deletes nothing
        except MindStoreError as exc:
            fail(str(exc))
        print_json({"deleted": deleted}) if as_json else typer.echo(f"deleted {deleted}")


@app.command()
def history(id: Annotated[int, typer.Argument(help="slot id (deleted slots keep their history)")], db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Show every change of a memory, oldest first."""
    with open_store(db) as store:
        try:
            events = store.history(id)
        except MindStoreError as exc:
            fail(str(exc))
        if as_json:
            print_json(events)
            return
        for e in events:
            by = (e.new_metadata or {}).get("superseded_by")
            change = {"add": e.new_text, "reinforce": e.new_text, "delete": e.old_text,
                      "supersede": f"by [{by}] {e.new_text or ''}".rstrip(), "restore": "current again"}.get(e.kind, f"{e.old_text!r} -> {e.new_text!r}")
            typer.echo(f"{e.at:%Y-%m-%d %H:%M:%S} {e.kind:<9} {change}")


@app.command("export")
def export_(path: Annotated[Path, typer.Argument(help="JSON Lines file to write")], db: DbOpt = None) -> None:
    """Write the whole store (slots, keys, history) to a JSON Lines file."""
    with open_store(db) as store:
        typer.echo(f"exported {store.export(path)} slots to {path}")


@app.command("import")
def import_(path: Annotated[Path, typer.Argument(help="JSON Lines file written by export")], db: DbOpt = None) -> None:
    """Load a file written by export (ids are kept; nothing is loaded if any line is bad)."""
    with open_store(db) as store:
        try:
            n = store.import_(path)
        except MindStoreError as exc:
            fail(str(exc))
        typer.echo(f"imported {n} slots from {path}")


@app.command()
def stats(
    db: DbOpt = None,
    as_json: JsonOpt = False,
    recall_sample: Annotated[int, typer.Option("--recall-sample", help="queries for measuring an approximate index's recall@10 against exact (0: skip)")] = 100,
) -> None:
    """Spaces, slot counts, key index state and recall, file sizes and usage."""
    from .db import sqlite_path
    from .store import MindStore
    from .validate import MAX_K

    if not 0 <= recall_sample <= MAX_K:
        fail(f"--recall-sample takes a number of queries from 0 to {MAX_K}, not {recall_sample}")
    with open_store(db) as store:
        store: MindStore
        path = sqlite_path(store.url)
        from sqlalchemy.engine import make_url

        info = {"url": make_url(store.url).render_as_string(hide_password=True), "database_bytes": path.stat().st_size if path is not None and path.exists() else None,
                "spaces": [dataclasses.asdict(s) for s in store.spaces()]}
        for sp in info["spaces"]:
            sp["index"] = dataclasses.asdict(store.index_info(sp["name"], recall_sample=recall_sample)) if sp["count"] or sp["name"] != store.space else None
            sp["usage"] = store.usage_histogram(sp["name"])
        if as_json:
            print_json(info)
            return
        typer.echo(info["url"] + (f" ({info['database_bytes'] / 2**20:.1f} MiB)" if info["database_bytes"] is not None else ""))
        for sp in info["spaces"]:
            line = f"space {sp['name']}: {sp['count']} slots, dim {sp['dim']}, keys from {sp['key_source']}"
            ix = sp["index"]
            if ix is not None:
                line += f", index {ix['keys']} ({ix['kind']}{', training IVF lists' if ix['training'] else ''}) on {ix['device']}"
                if ix["recall_at_10"] is not None and ix["kind"] != "flat":
                    line += f", recall@10 {ix['recall_at_10']:.3f}"
                if ix["file_bytes"] is not None:
                    line += f", file {ix['file_bytes'] / 2**20:.1f} MiB"
                if ix["advice"]:
                    line += f"\n  {ix['advice']}"
            typer.echo(line)
            typer.echo("  uses (reads + writes): " + ", ".join(f"{k}: {v}" for k, v in sp["usage"].items()))


@app.command()
def reindex(
    db: DbOpt = None,
    model: ModelOpt = None,
    force: Annotated[bool, typer.Option("--force", help="re-embed every memory even when the model is unchanged")] = False,
    key_index: Annotated[Optional[str], typer.Option("--key-index", help="move the text space's keys, without re-embedding, to "
                                                     "pgvector (searched in PostgreSQL, shared by every process; needs a "
                                                     "postgresql+psycopg:// store whose server has pgvector) or back to faiss")] = None,
) -> None:
    """Re-embed the memories with --model when it differs from the one they were embedded with
    (or when their keys are of mixed sizes); --force re-embeds them all. --key-index moves the
    keys to another key index."""
    if key_index is not None and key_index not in ("pgvector", "faiss"):
        fail(f"--key-index must be pgvector or faiss, not {key_index!r}")
    with open_store(db, model, reindex=True) as store:
        if key_index is not None:
            try:
                n = store.move_keys(key_index)
            except MindStoreError as exc:
                fail(str(exc))
            typer.echo(f"text space {store.space!r}: {n} keys now in the {key_index} key index")
        elif force:
            try:
                n = store.reindex()
            except MindStoreError as exc:
                fail(str(exc))
            typer.echo(f"re-embedded {n} slots of text space {store.space!r} with {store.embedder_name}")
        else:
            typer.echo(f"text space {store.space!r} is embedded with {store.embedder_name}: {store.count()} slots "
                       "(re-embedded on open only if the model changed; --force re-embeds them all)")


@app.command()
def tui(db: DbOpt = None) -> None:
    """Browse, search, edit and delete memories in the terminal (press ? inside for help)."""
    from .tui.app import run

    run(db)


@app.command()
def mcp(
    db: DbOpt = None,
    transport: Annotated[str, typer.Option("--transport", "-t", help="stdio (for desktop and IDE agents) or http (streamable HTTP on 127.0.0.1)")] = "stdio",
    port: Annotated[int, typer.Option("--port", help="port for --transport http (bound to 127.0.0.1 only)")] = 8765,
    agent: AgentOpt = None,
) -> None:
    """Serve the store as a Model Context Protocol server: add, search, list, update and delete
    memories per user (needs the mcp extra: pip install 'mindstore[mcp]')."""
    if transport not in ("stdio", "http"):
        fail(f"--transport takes stdio or http, not {transport!r}")
    if not 1 <= port <= 65535:
        fail(f"--port takes a TCP port from 1 to 65535, not {port}")
    try:
        from .integrations.mcp import serve
    except ImportError as exc:
        fail(f"the MCP server needs the mcp package: pip install -e '.[mcp]' ({exc})")
    check_folder(db)
    try:
        serve(db, transport=transport, port=port, agent_id=agent)  # type: ignore[arg-type]
    except MindStoreError as exc:
        fail(str(exc))


@app.command()
def demo(
    db: Annotated[Optional[str], typer.Option("--db", help="store to use (default: a fresh SQLite file in a temporary directory)")] = None,
) -> None:
    """Show MindStore at work: remember facts for two users, search, update, reopen."""
    import tempfile

    tmp = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="mindstore-demo-")
        db = f"sqlite:///{tmp.name}/demo.db"
    facts = {
        "alice": ["Alice is allergic to peanuts", "Alice works as a nurse in Lisbon", "Alice's daughter Mia turns six in March", "Alice prefers trains to planes"],
        "bob": ["Bob is vegetarian", "Bob plays bass in a jazz trio", "Bob is training for the Berlin marathon", "Bob's cat is called Pixel"],
    }
    with open_store(db) as store:
        typer.echo(f"store: {store.url}")  # once opened: an unusable --db (a lone surrogate, say) is an error line, not a crash here
        for user, texts in facts.items():
            store.add_many(texts, user_id=user)
            typer.echo(f"remembered {len(texts)} facts for {user}")
        for user, q in (("alice", "does she have any food allergies?"), ("bob", "does he eat meat?"), ("alice", "how does she like to travel?")):
            hit = store.search(q, user_id=user, k=1)[0]
            typer.echo(f"{user}: {q!r} -> {hit.slot.text!r} (score {hit.score:.2f})")
        typer.echo(f"scoping: bob's memories never answer for alice -> {[h.slot.text for h in store.search('Pixel the cat', user_id='alice', k=2)]}")
        slot = store.search("where does alice work?", user_id="alice", k=1)[0].slot
        store.update(slot.id, text="Alice works as a nurse in Porto")
        typer.echo(f"updated [{slot.id}] {slot.text!r} -> 'Alice works as a nurse in Porto'; history: {[e.kind for e in store.history(slot.id)]}")
    with open_store(db) as store:
        hit = store.search("which city does alice work in?", user_id="alice", k=1)[0]
        typer.echo(f"after reopening: 'which city does alice work in?' -> {hit.slot.text!r}; {store.count()} slots in all")
    if tmp is not None:
        tmp.cleanup()


# The neural-memory commands (train, evaluate, bind, recall). Registering them imports no torch
# (each command imports it when run), so nothing here is optional and nothing is caught: an
# ImportError is a bug and surfaces. torch is a dependency of mindstore; without it those four
# commands fail with its ModuleNotFoundError when run, and every other command works.
register_neural(app)


def main() -> None:
    try:
        app()
    except MindStoreError as exc:  # one not caught by its command: still a message, not a traceback
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
