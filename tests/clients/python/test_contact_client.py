"""A Python client, generated from proto/ at test time, driving a real charla-contact server.

This is the cross-language check of the contact API: if the protos and the Rust server disagree
on anything a foreign client relies on (names, field numbers, metadata, error codes, streaming
shapes), a test here fails.
"""

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import jwt
import pytest

REPO = Path(__file__).resolve().parents[3]
PROTO_DIR = REPO / "proto"

# The key set the server trusts (the Rust tests' own), and the audience it requires.
JWKS_PATH = REPO / "shared" / "testing" / "keys" / "test-jwks.json"
AUDIENCE = "charla-test"


def mint(role: str, workspace_id=None, expires_in: int = 600) -> str:
    """A token signed by PyJWT with the key set's HS256 key, as an identity provider would."""
    keys = json.loads(JWKS_PATH.read_text())["keys"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == "test-hs256"))
    claims = {"sub": "python-client", "role": role, "aud": AUDIENCE}
    claims["exp"] = int(time.time()) + expires_in
    if workspace_id:
        claims["workspace_id"] = workspace_id
    return jwt.encode(claims, key.key, algorithm="HS256", headers={"kid": "test-hs256"})


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


# Every call of the session runs in this one workspace, on a database of its own, so the event
# log holds exactly what these tests did.
WORKSPACE_ID = str(uuid.uuid4())
METADATA = bearer(mint("admin", WORKSPACE_ID))

# Bounds that keep a broken server from hanging the run; none of them measures anything.
READY_TIMEOUT_S = 30
CALL_TIMEOUT_S = 10
STREAM_TIMEOUT_S = 20
SHUTDOWN_TIMEOUT_S = 15
# Longer than the server's request timeout (30 s): the server answers an import before it.
IMPORT_TIMEOUT_S = 60


def contact_binary() -> Path:
    explicit = os.environ.get("CHARLA_CONTACT_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/charla/target")
    return Path(target) / "debug" / "charla-contact"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


class Api:
    """The generated modules the tests use."""

    def __init__(self):
        self.pb = importlib.import_module("charla.contact.v1.contact_pb2")
        self.resources = importlib.import_module("charla.contact.v1.resources_pb2")
        self.grpc = importlib.import_module("charla.contact.v1.contact_pb2_grpc")


@pytest.fixture(scope="session")
def api(tmp_path_factory) -> Api:
    """Generates the Python messages and stubs from proto/ and makes them importable."""
    import grpc_tools

    out = tmp_path_factory.mktemp("generated")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(
        str(path.relative_to(PROTO_DIR))
        for pattern in ("charla/contact/v1/*.proto", "google/api/*.proto", "google/rpc/*.proto")
        for path in PROTO_DIR.glob(pattern)
    )
    assert sources, f"no .proto files found under {PROTO_DIR}"
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--proto_path={well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *sources,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, f"protoc failed:\n{generated.stderr}"

    # No __init__.py is generated, so `charla` and the generated `google.api`/`google.rpc` are
    # namespace packages; `google` merges with the installed protobuf runtime's `google.protobuf`.
    sys.path.insert(0, str(out))
    importlib.invalidate_caches()
    return Api()


@pytest.fixture(scope="session")
def server_addr(tmp_path_factory):
    """Runs charla-contact on a fresh SQLite file and a free port; stops it with SIGTERM."""
    binary = contact_binary()
    if not binary.is_file():
        pytest.fail(
            f"charla-contact not found at {binary}: build it (cargo build -p charla-contact) "
            "or set CHARLA_CONTACT_BIN"
        )
    workdir = tmp_path_factory.mktemp("server")
    addr = f"127.0.0.1:{free_port()}"
    env = dict(os.environ)
    env["CHARLA_DATABASE_URL"] = f"sqlite:{workdir / 'contact.db'}"
    env["CHARLA_LISTEN_ADDR"] = addr
    env["CHARLA_AUTH_JWKS"] = str(JWKS_PATH)
    env["CHARLA_AUTH_AUDIENCE"] = AUDIENCE
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(binary)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
    try:
        yield addr, process, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        log_text = log_path.read_text(errors="replace")
        assert code is not None, f"server ignored SIGTERM for {SHUTDOWN_TIMEOUT_S}s:\n{log_text}"
        assert code == 0, f"server exited {code} after SIGTERM:\n{log_text}"


@pytest.fixture(scope="session")
def stub(api, server_addr):
    """A ContactService stub on a channel the server has accepted."""
    addr, process, log_path = server_addr
    channel = grpc.insecure_channel(addr)
    ready = grpc.channel_ready_future(channel)
    # Wait in short slices so a server that dies at start-up fails the run at once.
    for _ in range(READY_TIMEOUT_S * 4):
        try:
            ready.result(timeout=0.25)
            break
        except grpc.FutureTimeoutError:
            if process.poll() is not None:
                break
    if not ready.done() or process.poll() is not None:
        ready.cancel()
        channel.close()
        state = "running" if process.poll() is None else f"exited {process.returncode}"
        pytest.fail(
            f"server at {addr} not ready ({state}):\n" + log_path.read_text(errors="replace")
        )
    try:
        yield api.grpc.ContactServiceStub(channel)
    finally:
        channel.close()


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def identity(api: Api, channel_type: str, external_id: str, channel_id: str = "main"):
    return api.resources.ChannelIdentity(
        channel_type=api.resources.ChannelType.Value(channel_type),
        channel_id=channel_id,
        external_id=external_id,
    )


def identity_keys(contact):
    return {(i.channel_type, i.channel_id, i.external_id) for i in contact.identities}


def create(api: Api, stub, first_name: str, *identities, **fields):
    request = api.pb.CreateContactRequest(
        contact=api.resources.Contact(first_name=first_name, identities=list(identities), **fields)
    )
    return stub.CreateContact(request, metadata=METADATA, timeout=CALL_TIMEOUT_S).contact


def get(api: Api, stub, contact_id: str):
    request = api.pb.GetContactRequest(contact_id=contact_id)
    return stub.GetContact(request, metadata=METADATA, timeout=CALL_TIMEOUT_S).contact


def resolve(api: Api, stub, ident, first_name: str = ""):
    request = api.pb.ResolveContactRequest(
        identity=ident, profile=api.resources.Contact(first_name=first_name)
    )
    return stub.ResolveContact(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)


def merge(api: Api, stub, primary_id: str, secondary_id: str):
    request = api.pb.MergeContactsRequest(
        primary_contact_id=primary_id, secondary_contact_id=secondary_id
    )
    return stub.MergeContacts(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_create_contact_with_whatsapp_identity(api, stub):
    whatsapp = identity(api, "CHANNEL_TYPE_WHATSAPP", unique("593"), channel_id="wa-main")

    contact = create(api, stub, "Susana", whatsapp, email="Susana@Example.com")

    assert uuid.UUID(contact.contact_id)
    assert contact.workspace_id == WORKSPACE_ID
    assert contact.first_name == "Susana"
    assert contact.email == "susana@example.com"  # stored lower-cased
    assert contact.status == api.resources.CONTACT_STATUS_ACTIVE
    assert identity_keys(contact) == identity_keys(api.resources.Contact(identities=[whatsapp]))
    assert contact.HasField("create_time")
    assert get(api, stub, contact.contact_id) == contact


def test_resolve_known_and_new_identities(api, stub):
    known = identity(api, "CHANNEL_TYPE_WHATSAPP", unique("593"))
    owner = create(api, stub, "Quim", known)

    found = resolve(api, stub, known, first_name="ignored for a known identity")
    assert found.created is False
    assert found.contact.contact_id == owner.contact_id
    assert found.contact.first_name == "Quim"

    new = identity(api, "CHANNEL_TYPE_TELEGRAM", unique("tg"), channel_id="bot")
    made = resolve(api, stub, new, first_name="Rosa")
    assert made.created is True
    assert made.contact.contact_id != owner.contact_id
    assert made.contact.first_name == "Rosa"
    assert identity_keys(made.contact) == identity_keys(api.resources.Contact(identities=[new]))

    again = resolve(api, stub, new)
    assert again.created is False
    assert again.contact.contact_id == made.contact.contact_id


def test_import_reports_each_row(api, stub):
    rows = [
        api.resources.Contact(first_name="Ana", email="ana@example.com"),
        api.resources.Contact(first_name="Bea", email="not-an-email"),
        api.resources.Contact(
            first_name="Caio", identities=[identity(api, "CHANNEL_TYPE_SMS", unique("+5939"))]
        ),
    ]
    requests = (api.pb.ImportContactsRequest(contact=row) for row in rows)

    response = stub.ImportContacts(requests, metadata=METADATA, timeout=CALL_TIMEOUT_S)

    assert (response.created_count, response.failed_count) == (2, 1)
    assert not response.stopped_early
    assert [result.row for result in response.results] == [0, 1, 2]
    outcome = api.pb.ImportOutcome
    assert [result.outcome for result in response.results] == [
        outcome.Value("IMPORT_OUTCOME_IMPORTED"),
        outcome.Value("IMPORT_OUTCOME_REFUSED"),
        outcome.Value("IMPORT_OUTCOME_IMPORTED"),
    ]
    ok_first, bad, ok_last = response.results
    for ok, row in ((ok_first, rows[0]), (ok_last, rows[2])):
        assert not ok.HasField("error")
        assert get(api, stub, ok.contact_id).first_name == row.first_name
    assert bad.contact_id == ""
    assert bad.HasField("error")
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] == 3
    assert "contact.email" in bad.error.message


def import_all(api, stub, rows):
    """Imports `rows` (external id, contact) one per message, the way the contract says: when
    the server answers early, the rows after its last result are sent again in a new call.
    Returns every row's result, in order, and how many calls it took."""
    results, calls = [], 0
    while len(results) < len(rows):
        rest = rows[len(results):]
        requests = (
            api.pb.ImportContactsRequest(external_id=external_id, contact=contact)
            for external_id, contact in rest
        )
        response = stub.ImportContacts(requests, metadata=METADATA, timeout=IMPORT_TIMEOUT_S)
        calls += 1
        assert response.results, "every call handles rows"
        assert len(response.results) == len(rest) or response.stopped_early
        assert [result.row for result in response.results] == list(range(len(response.results)))
        results.extend(response.results)
    return results, calls


def listed_with_tag(api, stub, tag: str):
    contacts, token = [], ""
    while True:
        page = stub.ListContacts(
            api.pb.ListContactsRequest(tag=tag, page_size=1000, page_token=token),
            metadata=METADATA,
            timeout=CALL_TIMEOUT_S,
        )
        contacts.extend(page.contacts)
        token = page.next_page_token
        if not token:
            return contacts


def test_import_of_thousands_of_small_rows_lands_each_row_once(api, stub):
    # grpcio sends each row in a DATA frame of its own; the server used to close the connection
    # (GOAWAY too_many_data_frames) once about 2,300 of them waited unread.
    tag = unique("bulk")
    rows = [
        (f"{tag}-{i}", api.resources.Contact(first_name=f"Row {i}", tags=[tag]))
        for i in range(5000)
    ]

    results, _ = import_all(api, stub, rows)

    outcome = api.pb.ImportOutcome
    assert [r.external_id for r in results] == [external_id for external_id, _ in rows]
    assert all(r.outcome == outcome.Value("IMPORT_OUTCOME_IMPORTED") for r in results)
    ids = [r.contact_id for r in results]
    assert len(set(ids)) == len(rows)
    assert sorted(c.contact_id for c in listed_with_tag(api, stub, tag)) == sorted(ids)

    # A retried import finds each row by its external id and writes nothing.
    again, _ = import_all(api, stub, rows[:1000])
    assert all(r.outcome == outcome.Value("IMPORT_OUTCOME_UNCHANGED") for r in again)
    assert [r.contact_id for r in again] == ids[:1000]
    assert len(listed_with_tag(api, stub, tag)) == len(rows)


def test_merge_marks_secondary_merged_into_primary(api, stub):
    whatsapp = identity(api, "CHANNEL_TYPE_WHATSAPP", unique("593"))
    telegram = identity(api, "CHANNEL_TYPE_TELEGRAM", unique("tg"), channel_id="bot")
    primary = create(api, stub, "Susana", whatsapp)
    secondary = create(api, stub, "Susi", telegram, email="susana@example.com")

    merged = merge(api, stub, primary.contact_id, secondary.contact_id)

    assert merged.secondary.contact_id == secondary.contact_id
    assert merged.secondary.status == api.resources.CONTACT_STATUS_MERGED
    assert merged.secondary.merged_into_contact_id == primary.contact_id
    assert merged.primary.contact_id == primary.contact_id
    assert merged.primary.status == api.resources.CONTACT_STATUS_ACTIVE
    assert merged.primary.email == "susana@example.com"  # filled from the secondary
    assert identity_keys(merged.primary) == identity_keys(
        api.resources.Contact(identities=[whatsapp, telegram])
    )

    again = get(api, stub, secondary.contact_id)
    assert again.status == api.resources.CONTACT_STATUS_MERGED
    assert again.merged_into_contact_id == primary.contact_id
    # The secondary's identity now resolves to the primary.
    assert resolve(api, stub, telegram).contact.contact_id == primary.contact_id


def test_stream_replays_the_log_without_gaps_then_follows(api, stub):
    primary = create(api, stub, "Lia")
    secondary = create(api, stub, "Lia (duplicate)")
    merge(api, stub, primary.contact_id, secondary.contact_id)

    # The call's deadline bounds every read below, so a stalled stream fails instead of hanging.
    call = stub.StreamContactEvents(
        api.pb.StreamContactEventsRequest(), metadata=METADATA, timeout=STREAM_TIMEOUT_S
    )
    try:
        # Replay: read up to and including the merge this test just made, the newest event.
        events = []
        for response in call:
            events.append(response.event)
            if (
                response.event.WhichOneof("payload") == "merged"
                and response.event.merged.secondary_contact_id == secondary.contact_id
            ):
                break
        else:
            pytest.fail("the stream ended before the merge event arrived")

        # Live: a change made now is pushed on the open stream, next in sequence.
        late = create(api, stub, "Nico")
        pushed = next(call).event
    finally:
        call.cancel()

    partitions = {event.partition for event in events}
    assert len(partitions) == 1, f"one workspace, one partition; got {partitions}"
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert all(event.workspace_id == WORKSPACE_ID for event in events)
    kinds = [event.WhichOneof("payload") for event in events]
    assert {"created", "updated", "merged"} <= set(kinds)

    merged_event = events[-1]
    assert merged_event.contact_id == secondary.contact_id
    assert merged_event.merged.primary_contact_id == primary.contact_id
    created_ids = {e.created.contact.contact_id for e in events if e.HasField("created")}
    assert {primary.contact_id, secondary.contact_id} <= created_ids

    assert pushed.partition == merged_event.partition
    assert pushed.sequence == merged_event.sequence + 1
    assert pushed.WhichOneof("payload") == "created"
    assert pushed.created.contact.contact_id == late.contact_id


def test_get_contact_with_malformed_id_is_invalid_argument(api, stub):
    with pytest.raises(grpc.RpcError) as failure:
        stub.GetContact(
            api.pb.GetContactRequest(contact_id="nope"), metadata=METADATA, timeout=CALL_TIMEOUT_S
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contact_id" in failure.value.details()


def test_calls_need_a_valid_token_of_a_role_that_may_make_them(api, stub):
    listing = api.pb.ListContactsRequest()
    cases = [
        ((), grpc.StatusCode.UNAUTHENTICATED, "authorization"),
        (bearer(mint("admin", WORKSPACE_ID, expires_in=-120)), grpc.StatusCode.UNAUTHENTICATED, "expired"),
        (bearer("not.a.jwt"), grpc.StatusCode.UNAUTHENTICATED, "JWT"),
    ]
    for metadata, code, words in cases:
        with pytest.raises(grpc.RpcError) as failure:
            stub.ListContacts(listing, metadata=metadata, timeout=CALL_TIMEOUT_S)
        assert failure.value.code() == code, failure.value.details()
        assert words in failure.value.details()

    # An agent reads contacts but may not delete them.
    agent = bearer(mint("agent", WORKSPACE_ID))
    contact = create(api, stub, "Agent-visible")
    got = stub.GetContact(
        api.pb.GetContactRequest(contact_id=contact.contact_id), metadata=agent, timeout=CALL_TIMEOUT_S
    )
    assert got.contact.contact_id == contact.contact_id
    with pytest.raises(grpc.RpcError) as failure:
        stub.DeleteContact(
            api.pb.DeleteContactRequest(contact_id=contact.contact_id),
            metadata=agent,
            timeout=CALL_TIMEOUT_S,
        )
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in failure.value.details()

    # Another workspace's admin doesn't see this workspace's contact.
    other = bearer(mint("admin", str(uuid.uuid4())))
    with pytest.raises(grpc.RpcError) as failure:
        stub.GetContact(
            api.pb.GetContactRequest(contact_id=contact.contact_id), metadata=other, timeout=CALL_TIMEOUT_S
        )
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
