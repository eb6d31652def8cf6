"""MindStore's LangChain VectorStore, retriever and chat history, with LangChain's own standard
test suites (langchain-tests) where one exists, on real SQLite and PostgreSQL stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_tests.integration_tests.retrievers import RetrieversIntegrationTests
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from mindstore import Config, MindStore
from mindstore.integrations.langchain import (
    MindStoreChatMessageHistory,
    MindStoreEmbeddings,
    MindStoreRetriever,
    MindStoreVectorStore,
)

# The standard suites hold async tests; anyio runs them (and leaves the sync ones alone).
pytestmark = pytest.mark.anyio


class TestMindStoreVectorStoreStandard(VectorStoreIntegrationTests):
    """LangChain's conformance suite for vector stores, unchanged. MindStore embeds with its own
    model, so the suite's fake embeddings are not used; its expectations hold with MiniLM."""

    @pytest.fixture
    def vectorstore(self, store: MindStore) -> Iterator[MindStoreVectorStore]:
        yield MindStoreVectorStore(store, user_id="standard-suite")


class TestMindStoreRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's conformance suite for retrievers, over a store holding a few memories."""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _memories(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        folder = tmp_path_factory.mktemp("retriever")
        with MindStore(f"sqlite:///{folder / 'memory.db'}", config=Config(index_dir=folder / "index")) as store:
            store.add_many(["Alice is allergic to peanuts", "Alice works as a nurse", "Alice lives in Lisbon", "Alice likes trains"], user_id="alice")
            store.add("Bob is vegetarian", user_id="bob")
            cls.store = store
            yield

    @property
    def retriever_constructor(self) -> type[MindStoreRetriever]:
        return MindStoreRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"store": type(self).store, "user_id": "alice"}

    @property
    def retriever_query_example(self) -> str:
        return "what does alice do?"


@pytest.fixture
def vs(store: MindStore) -> MindStoreVectorStore:
    return MindStoreVectorStore(store, user_id="alice")


def test_search_never_crosses_scopes(store: MindStore) -> None:
    alice, bob = MindStoreVectorStore(store, user_id="alice"), MindStoreVectorStore(store, user_id="bob")
    a_ids = alice.add_texts(["Alice is allergic to peanuts"], ids=["diet"])
    bob.add_texts(["Bob is allergic to shellfish"], ids=["diet"])  # same id, another scope
    assert [d.page_content for d in alice.similarity_search("allergy", k=5)] == ["Alice is allergic to peanuts"]
    assert [d.page_content for d in bob.get_by_ids(a_ids)] == ["Bob is allergic to shellfish"]
    bob.delete(["diet"])
    assert [d.page_content for d in alice.get_by_ids(["diet"])] == ["Alice is allergic to peanuts"]
    slot_id = store.add("Bob's cat is called Pixel", user_id="bob").id
    assert alice.get_by_ids([str(slot_id)]) == [] and alice.similarity_search("Pixel the cat", k=5)[0].page_content.startswith("Alice")
    assert MindStoreRetriever(store=store, user_id="alice", k=5).invoke("cat") == alice.similarity_search("cat", k=5)


def test_memories_written_elsewhere_are_documents_by_slot_id(vs: MindStoreVectorStore, store: MindStore) -> None:
    slot = store.add("Alice prefers trains to planes", user_id="alice", metadata={"source": "chat"})
    [doc] = vs.similarity_search("how does alice travel?", k=1)
    assert doc == Document(id=str(slot.id), page_content="Alice prefers trains to planes", metadata={"source": "chat"})
    assert vs.get_by_ids([str(slot.id)]) == [doc]
    vs.delete([str(slot.id)])
    assert store.count(user_id="alice") == 0


def test_replacing_a_document_keeps_its_history(vs: MindStoreVectorStore, store: MindStore) -> None:
    vs.add_texts(["Alice works in Lisbon"], [{"year": 2024}], ids=["job"])
    vs.add_texts(["Alice works in Porto"], [{"year": 2026}], ids=["job"])
    [slot] = store.list(user_id="alice").slots
    assert [e.kind for e in store.history(slot.id)] == ["add", "update"] and slot.text == "Alice works in Porto"
    assert vs.add_texts(["a", "b"], ids=["x", "x"]) == ["x", "x"] and [d.page_content for d in vs.get_by_ids(["x"])] == ["b"]


def test_scores_filters_mmr_and_vectors(vs: MindStoreVectorStore) -> None:
    vs.add_texts(
        ["Alice is allergic to peanuts", "Alice is allergic to peanuts and nuts", "Alice works as a nurse", "Alice likes trains"],
        [{"year": 2024}, {"year": 2025}, {"year": 2020}, {"year": 2021}],
    )
    scored = vs.similarity_search_with_score("peanut allergy", k=4)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True) and -1 <= scored[-1][1] <= scored[0][1] <= 1
    assert {d.metadata["year"] for d in vs.similarity_search("peanut allergy", k=4, filter={"year": {"$lt": 2022}})} == {2020, 2021}
    relevant = vs.similarity_search_with_relevance_scores("peanut allergy", k=4, score_threshold=0.5)
    assert relevant and all(s >= 0.5 for _, s in relevant)
    mmr = vs.max_marginal_relevance_search("peanut allergy", k=2, fetch_k=4, lambda_mult=0.1)
    assert mmr[0].metadata["year"] in (2024, 2025) and mmr[1].page_content != "Alice is allergic to peanuts and nuts"
    query = MindStoreEmbeddings(vs.store).embed_query("peanut allergy")
    assert vs.similarity_search_by_vector(query, k=1)[0].metadata["year"] in (2024, 2025)
    assert vs.as_retriever(search_type="mmr", search_kwargs={"k": 1}).invoke("trains")[0].page_content == "Alice likes trains"


async def test_async_and_batch_methods(vs: MindStoreVectorStore) -> None:
    ids = await vs.aadd_texts(["Alice is allergic to peanuts", "Alice likes trains"])
    assert [d.id for d in await vs.aget_by_ids(ids)] == ids
    assert (await vs.asimilarity_search_with_score("trains", k=1))[0][0].id == ids[1]
    await vs.adelete([ids[1]])
    assert [d.id for d in await vs.asimilarity_search("trains", k=5)] == [ids[0]]
    retriever = vs.as_retriever(search_kwargs={"k": 1})
    batches = await retriever.abatch(["peanuts", "allergy"])
    assert [[d.id for d in b] for b in batches] == [[ids[0]], [ids[0]]]
    assert [[d.id for d in b] for b in retriever.batch(["peanuts"])] == [[ids[0]]]


def test_from_texts_and_delete_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    vs = MindStoreVectorStore.from_texts(["Alice likes trains"], metadatas=[{"k": 1}], ids=["t"], url=url, user_id="alice")
    assert vs.get_by_ids(["t"])[0].metadata == {"k": 1}
    vs.delete()
    assert vs.similarity_search("trains") == []
    vs.store.close()


def test_bad_input_raises_documented_exceptions(vs: MindStoreVectorStore, store: MindStore) -> None:
    vs.add_texts(["Alice likes trains"], ids=["t"])
    before = store.count()
    with pytest.raises(ValueError):
        vs.add_texts([""])
    with pytest.raises(ValueError):
        vs.add_texts([42])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        vs.add_texts(["a", "b"], metadatas=[{}])
    with pytest.raises(ValueError):
        vs.add_texts(["a"], metadatas=[{"when": object()}])
    with pytest.raises(ValueError):  # a replacement and a bad text in one call: neither is applied
        vs.add_texts(["Alice likes planes", "  "], ids=["t", "u"])
    with pytest.raises(ValueError):
        vs.add_texts(["Alice likes planes", "b"], [{}, {"x": float("nan")}], ids=["t", "u"])
    assert vs.get_by_ids(["t"])[0].page_content == "Alice likes trains"
    with pytest.raises(ValueError):
        vs.similarity_search("trains", filter={"year": {"$regex": "x"}})
    with pytest.raises(ValueError):
        vs.similarity_search("", k=1)
    with pytest.raises(ValueError):
        vs.similarity_search("trains", k=0)
    with pytest.raises(ValueError):
        vs.get_by_ids("t")  # a string is not a list of ids
    with pytest.raises(ValueError):
        MindStoreVectorStore(store).delete()  # no scope: would empty the whole space
    with pytest.raises(ValueError):
        MindStoreVectorStore.from_texts(["x"], DeterministicFakeEmbedding(size=6), store=store)
    assert store.count() == before


# -- chat history ----------------------------------------------------------------------------


def test_chat_history_keeps_a_sessions_messages_whole(store: MindStore) -> None:
    history = MindStoreChatMessageHistory(store, user_id="alice", session_id="s1")
    assert history.messages == []
    tool_call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Lisbon"}, "id": "call_1"}])
    history.add_user_message("I'm allergic to peanuts")
    history.add_ai_message("Noted.")
    history.add_messages([tool_call, ToolMessage("sunny", tool_call_id="call_1"), HumanMessage("ok")])
    assert history.messages == [HumanMessage("I'm allergic to peanuts"), AIMessage("Noted."), tool_call, ToolMessage("sunny", tool_call_id="call_1"), HumanMessage("ok")]
    other = MindStoreChatMessageHistory(store, user_id="alice", session_id="s2")
    assert other.messages == [] and MindStoreChatMessageHistory(store, user_id="bob", session_id="s1").messages == []
    store.add("Alice lives in Lisbon", user_id="alice", session_id="s1")  # not a message of the history
    history.clear()
    assert history.messages == [] and store.count(user_id="alice") == 1


async def test_chat_history_async(store: MindStore) -> None:
    history = MindStoreChatMessageHistory(store, user_id="alice", session_id="s1")
    await history.aadd_messages([HumanMessage("hello there"), AIMessage("hi!")])
    assert [m.content for m in await history.aget_messages()] == ["hello there", "hi!"]
    await history.aclear()
    assert await history.aget_messages() == []


def test_chat_history_pulls_memories_from_other_sessions(store: MindStore) -> None:
    store.add("Alice is allergic to peanuts", user_id="alice")
    store.add("Bob is allergic to shellfish", user_id="bob")
    MindStoreChatMessageHistory(store, user_id="alice", session_id="monday").add_user_message("I moved to Vienna last month")
    today = MindStoreChatMessageHistory(store, user_id="alice", session_id="tuesday", k=2)
    assert today.memory_message() is None  # nothing asked yet
    today.add_user_message("Can you suggest a dinner place near my home? No nuts please.")
    message = today.memory_message()
    assert isinstance(message, SystemMessage)
    assert "Alice is allergic to peanuts" in message.content and "Vienna" in message.content
    assert "shellfish" not in message.content and "suggest a dinner" not in message.content  # bob's, and this session's own


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_chat_history_with_runnable_with_message_history(store: MindStore) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
    chain = RunnableWithMessageHistory(
        prompt | FakeListChatModel(responses=["Nice to meet you, Alice.", "You are Alice."]),
        lambda session_id: MindStoreChatMessageHistory(store, user_id="alice", session_id=session_id),
        input_messages_key="input",
        history_messages_key="history",
    )
    config = {"configurable": {"session_id": "s1"}}
    chain.invoke({"input": "My name is Alice"}, config=config)
    chain.invoke({"input": "What is my name?"}, config=config)
    history = MindStoreChatMessageHistory(store, user_id="alice", session_id="s1").messages
    assert [m.content for m in history] == ["My name is Alice", "Nice to meet you, Alice.", "What is my name?", "You are Alice."]


def test_chat_history_bad_input(store: MindStore) -> None:
    with pytest.raises(ValueError):
        MindStoreChatMessageHistory(store, user_id="", session_id="s")
    history = MindStoreChatMessageHistory(store, user_id="alice", session_id="s")
    with pytest.raises(ValueError):
        history.add_messages(["not a message"])  # type: ignore[list-item]
    assert history.messages == []
