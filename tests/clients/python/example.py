"""A Python client of charla's three services: a start for a team's own backend.

    python example.py --contact localhost:50051 --conversation localhost:50052 \\
        --metrics localhost:50053 --jwks charla-data/jwks.json --workspace WORKSPACE_ID

It generates the Python messages and stubs from proto/ (grpcio-tools), then, in the workspace:
resolves a WhatsApp sender to a contact, records the contact's message (which opens a
conversation) and an agent's answer, closes the conversation, reads the day's dashboard from the
metrics service, and makes one call with bad input to show the error details a client gets: a
google.rpc.BadRequest naming each wrong field. Each step prints one JSON line.

Tokens: every call carries `authorization: Bearer <JWT>`. Here the token is signed with a key of
the JWKS file, as an identity provider would sign it (PyJWT; `charla up` makes charla-data/jwks.json,
one HS256 key). With your own identity provider, pass its token with --token instead.
Needs: requirements.txt (grpcio, grpcio-tools, grpcio-status, PyJWT).
"""

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import jwt
from google.rpc import error_details_pb2
from grpc_status import rpc_status

PROTO_DIR = Path(__file__).resolve().parents[3] / "proto"
# Bounds that keep a call from hanging the example.
CALL_TIMEOUT_S = 10
METRICS_WAIT_S = 30


def generate_stubs(out: Path):
    """Generates charla's messages and stubs into `out` and makes them importable. The google.api
    and google.rpc types come from googleapis-common-protos, so only charla's files are written."""
    import grpc_tools

    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.glob("charla/*/v1/*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={PROTO_DIR}",
         f"--proto_path={well_known}", f"--python_out={out}", f"--grpc_python_out={out}", *sources],
        check=True,
    )
    sys.path.insert(0, str(out))
    importlib.invalidate_caches()


def mint_token(jwks_path: Path, workspace_id: str, role: str = "admin", hours: int = 1) -> str:
    """A JWT for `role` in `workspace_id`, signed with the JWKS file's first HS256 key. charla reads
    the workspace and the role from the claims; `kid` tells it which key to check with."""
    key = next(k for k in json.loads(jwks_path.read_text())["keys"] if k.get("alg", "HS256") == "HS256")
    claims = {"sub": "python-example", "workspace_id": workspace_id, "role": role,
              "exp": int(time.time()) + hours * 3600}
    return jwt.encode(claims, jwt.PyJWK(key).key, algorithm="HS256", headers={"kid": key["kid"]})


def field_violations(error: grpc.RpcError):
    """The fields a refused call named, from the google.rpc.Status in its trailers
    (`grpc-status-details-bin`): [(field, description)], empty when it carries no BadRequest."""
    status = rpc_status.from_call(error)
    violations = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations += [(v.field, v.description) for v in bad_request.field_violations]
    return violations


def show(step: str, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def run(args, token: str):
    from charla.contact.v1 import contact_pb2, contact_pb2_grpc, resources_pb2 as contact_res
    from charla.conversation.v1 import conversation_pb2, conversation_pb2_grpc
    from charla.conversation.v1 import resources_pb2 as conversation_res
    from charla.metrics.v1 import metrics_pb2, metrics_pb2_grpc

    metadata = (("authorization", f"Bearer {token}"),)
    contacts = contact_pb2_grpc.ContactServiceStub(grpc.insecure_channel(args.contact))
    conversations = conversation_pb2_grpc.ConversationServiceStub(grpc.insecure_channel(args.conversation))
    metrics = metrics_pb2_grpc.MetricsServiceStub(grpc.insecure_channel(args.metrics))
    call = dict(metadata=metadata, timeout=CALL_TIMEOUT_S)

    # A WhatsApp message from a number charla may not know yet: the contact behind it.
    sender = f"5939{uuid.uuid4().int % 10**8:08d}"
    resolved = contacts.ResolveContact(contact_pb2.ResolveContactRequest(
        identity=contact_res.ChannelIdentity(channel_type=contact_res.CHANNEL_TYPE_WHATSAPP,
                                             channel_id="wa-main", external_id=sender),
        profile=contact_res.Contact(first_name="Susana")), **call)
    contact_id = resolved.contact.contact_id
    show("resolved contact", contact_id=contact_id, created=resolved.created)

    # Her message opens a conversation; an agent's answer is its first response.
    channel = conversation_res.Channel(channel_type=contact_res.CHANNEL_TYPE_WHATSAPP, channel_id="wa-main")
    inbound = conversations.RecordMessage(conversation_pb2.RecordMessageRequest(
        message_id=f"wamid.{sender}", contact_id=contact_id, channel=channel,
        direction=conversation_res.MESSAGE_DIRECTION_INBOUND,
        author_kind=conversation_res.AUTHOR_KIND_CONTACT), **call)
    conversation_id = inbound.conversation.conversation_id
    show("message recorded", conversation_id=conversation_id, opened=inbound.opened_conversation)
    conversations.RecordMessage(conversation_pb2.RecordMessageRequest(
        message_id=f"out.{sender}", contact_id=contact_id, channel=channel,
        direction=conversation_res.MESSAGE_DIRECTION_OUTBOUND,
        author_kind=conversation_res.AUTHOR_KIND_USER, author_id="ana"), **call)
    closed = conversations.CloseConversation(conversation_pb2.CloseConversationRequest(
        conversation_id=conversation_id, source=conversation_res.CLOSE_SOURCE_USER, actor_id="ana"), **call)
    show("conversation closed", status=conversation_res.ConversationStatus.Name(closed.conversation.status))

    # The metrics service follows the conversations' events: the close shows within a moment.
    deadline = time.monotonic() + METRICS_WAIT_S
    while True:
        dashboard = metrics.GetDashboard(metrics_pb2.GetDashboardRequest(time_zone=args.time_zone), **call).dashboard
        if dashboard.closed_today_count >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    show("dashboard", opened_today=dashboard.opened_today_count, closed_today=dashboard.closed_today_count)

    # Bad input is INVALID_ARGUMENT with a google.rpc.BadRequest naming each wrong field.
    try:
        contacts.CreateContact(contact_pb2.CreateContactRequest(
            contact=contact_res.Contact(first_name="Bea", email="not-an-email")), **call)
        show("bad input accepted")
    except grpc.RpcError as error:
        show("bad input refused", code=error.code().name, violations=field_violations(error))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contact", default="localhost:50051")
    parser.add_argument("--conversation", default="localhost:50052")
    parser.add_argument("--metrics", default="localhost:50053")
    parser.add_argument("--workspace", help="the workspace to call in (a UUID)")
    parser.add_argument("--jwks", type=Path, default=Path("charla-data/jwks.json"),
                        help="key set to sign a token with (charla up's by default)")
    parser.add_argument("--token", help="a token to call with instead (from your identity provider)")
    parser.add_argument("--time-zone", default="America/Guayaquil")
    args = parser.parse_args()
    if not args.token and not args.workspace:
        parser.error("--workspace is needed to sign a token (or pass --token)")
    token = args.token or mint_token(args.jwks, args.workspace)
    with tempfile.TemporaryDirectory() as out:
        generate_stubs(Path(out))
        run(args, token)


if __name__ == "__main__":
    main()
