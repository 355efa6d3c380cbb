"""Asks gRPC servers whether they are healthy, as Kubernetes' gRPC probes do.

Usage: health_probe.py [--wait SECONDS] ADDRESS[=SERVICE]...

Calls grpc.health.v1.Health/Check on each ADDRESS (host:port) for SERVICE (the whole server
when omitted), retrying until every one answers SERVING or the wait is over. Prints each answer
and exits 0 only if all are SERVING.
"""

import argparse
import sys
import time

import grpc

# grpc.health.v1.HealthCheckResponse.ServingStatus
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVING = 1


def encode_request(service: str) -> bytes:
    """A HealthCheckRequest: field 1, `service`, a string (absent when empty)."""
    if not service:
        return b""
    name = service.encode()
    if len(name) > 127:
        raise ValueError("service names this long need a multi-byte length")
    return b"\x0a" + bytes([len(name)]) + name


def decode_status(response: bytes) -> int:
    """The `status` of a HealthCheckResponse: field 1, a varint (absent means UNKNOWN)."""
    if not response:
        return 0
    if response[0] != 0x08 or len(response) < 2:
        raise ValueError(f"not a HealthCheckResponse: {response!r}")
    return response[1]


def check(address: str, service: str) -> str:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            response = call(encode_request(service), timeout=2)
        except grpc.RpcError as error:
            return f"error {error.code().name}"
    return STATUS_NAMES.get(decode_status(response), "unknown status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=30.0)
    parser.add_argument("targets", nargs="+", metavar="ADDRESS[=SERVICE]")
    args = parser.parse_args()
    targets = [(t.partition("=")[0], t.partition("=")[2]) for t in args.targets]
    deadline = time.monotonic() + args.wait
    while True:
        answers = [(address, service, check(address, service)) for address, service in targets]
        if all(answer == "SERVING" for _, _, answer in answers) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for address, service, answer in answers:
        print(f"  {address} {service or '(server)'}: {answer}")
    return 0 if all(answer == "SERVING" for _, _, answer in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
