"""Latency of small and multi-segment answers: ListContacts of 1 and of 20 contacts, 200 calls each.

Run: ~/.cache/charla/python-venv/bin/python tests/clients/python/bench_latency.py PATH/TO/charla-contact
(the venv is the one run.sh makes). Prints p50 and p90 per answer size. Before TCP_NODELAY on
accepted sockets, answers over one segment waited for the client's delayed ACK (~40 ms).
"""
import importlib, subprocess, tempfile
from pathlib import Path
import json, time, statistics, subprocess, os, socket, uuid, sys
import grpc, jwt
REPO = Path(__file__).resolve().parents[3]
OUT = tempfile.mkdtemp()
import grpc_tools
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={REPO / 'proto'}",
                f"--proto_path={Path(grpc_tools.__file__).parent / '_proto'}", f"--python_out={OUT}",
                f"--grpc_python_out={OUT}",
                *[str(p.relative_to(REPO / "proto")) for g in ("charla/contact/v1/*.proto", "google/api/*.proto", "google/rpc/*.proto")
                  for p in (REPO / "proto").glob(g)]], check=True)
sys.path.insert(0, OUT)
from charla.contact.v1 import contact_pb2 as pb, contact_pb2_grpc as rpc, resources_pb2 as res
keys = json.load(open(str(REPO / "shared/testing/keys/test-jwks.json")))["keys"]
key = jwt.PyJWK(next(k for k in keys if k["kid"] == "test-hs256"))
ws = str(uuid.uuid4())
tok = jwt.encode({"role": "admin", "workspace_id": ws, "aud": "charla-test", "exp": int(time.time()) + 600}, key.key, algorithm="HS256", headers={"kid": "test-hs256"})
md = (("authorization", "Bearer " + tok),)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, CHARLA_DATABASE_URL="sqlite:%s/c.db" % OUT, CHARLA_LISTEN_ADDR="127.0.0.1:%d" % port,
           CHARLA_AUTH_JWKS=str(REPO / "shared/testing/keys/test-jwks.json"), CHARLA_AUTH_AUDIENCE="charla-test", RUST_LOG="error")
p = subprocess.Popen([sys.argv[1]], env=env)
ch = grpc.insecure_channel("127.0.0.1:%d" % port); grpc.channel_ready_future(ch).result(timeout=30)
stub = rpc.ContactServiceStub(ch)
for i in range(20):
    stub.CreateContact(pb.CreateContactRequest(contact=res.Contact(first_name="Name%d" % i, email="n%d@example.com" % i)), metadata=md)
for size in (1, 20):
    lat = []
    for _ in range(200):
        t = time.perf_counter(); r = stub.ListContacts(pb.ListContactsRequest(page_size=size), metadata=md); lat.append((time.perf_counter() - t) * 1000)
    print("ListContacts page_size=%d (%d bytes): p50 %.2f ms, p90 %.2f ms" % (size, r.ByteSize(), statistics.median(lat), sorted(lat)[180]))
p.terminate(); p.wait()
